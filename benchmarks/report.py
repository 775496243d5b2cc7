"""`python -m benchmarks.report`: tables and plots from benchmarks/results/*.jsonl into docs/benchmarks.md.

Every number in the report is read from a results file; each file starts with the run's machine,
versions and configuration.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.suite import FAMILIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
PLOTS = DOCS / "plots"


def load(name: str, results: Path = RESULTS) -> tuple[list[dict], list[dict]]:
    """The run headers and the case lines of results/NAME.jsonl ([], [] if it is absent)."""
    runs: list[dict] = []
    rows: list[dict] = []
    if not (results / f"{name}.jsonl").is_file():
        return runs, rows
    for line in (results / f"{name}.jsonl").read_text().splitlines():
        record = json.loads(line)
        (runs if "run" in record else rows).append(record.get("run", record))
    return runs, rows


def label(row: dict) -> str:
    switches = ",".join(f"{k}={v}" for k, v in sorted((row.get("switches") or {}).items()))
    return row["policy"] + (f" [{switches}]" if switches else "")


def accuracy_table(rows: list[dict], task: str) -> tuple[str, dict]:
    cells: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for r in rows:
        if r.get("task") == task and "correct" in r:
            cells[(label(r), r["length"])].append(bool(r["correct"]))
    policies = sorted({p for p, _ in cells})
    lengths = sorted({n for _, n in cells})
    lines = ["| policy | " + " | ".join(f"{n:,}" for n in lengths) + " |", "|---" * (len(lengths) + 1) + "|"]
    for p in policies:
        vals = [cells.get((p, n)) for n in lengths]
        lines.append(f"| {p} | " + " | ".join(share(sum(v), len(v)) if v else "–" for v in vals) + " |")
    return "\n".join(lines), cells


def resource_table(rows: list[dict], policy: str = "acre", task: str = "passkey") -> str:
    by_len: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("policy") == policy and r.get("task") == task and "correct" in r and not r.get("switches"):
            by_len[r["length"]].append(r)
    lines = [
        "| tokens | found | peak RSS | pot | span index | L2 on flash | L2 read / question | ingest tok/s | "
        "first token s | decode tok/s |",
        "|---" * 10 + "|",
    ]
    for n in sorted(by_len):
        rs = by_len[n]
        decode = [r["decode_tok_s"] for r in rs if r.get("decode_tok_s")]
        decode_text = f"{np.mean(decode):.1f}" if decode else "–"
        lines.append(
            f"| {rs[0]['document_tokens']:,} | {found(rs)} "
            f"| {max(r['peak_rss_bytes'] for r in rs) / 2**20:,.0f} MiB "
            f"| {rs[0]['pot_bytes'] / 2**20:.1f} MiB | {max(r['index_bytes'] for r in rs) / 2**20:.2f} MiB "
            f"| {max(r['l2_disk_bytes'] for r in rs) / 2**20:,.0f} MiB "
            f"| {np.mean([r['l2_bytes_read'] for r in rs]):,.0f} B{read_time(rs)} "
            f"| {np.mean([r['ingest_tok_s'] for r in rs]):.0f} "
            f"| {np.mean([r['first_token_s'] for r in rs]):.2f} | {decode_text} |"
        )
    return "\n".join(lines)


def heatmaps(rows: list[dict], task: str, out: Path) -> None:
    graded = [r for r in rows if r.get("task") == task and "correct" in r]
    policies = sorted({label(r) for r in graded})
    lengths = sorted({r["length"] for r in graded})  # one axis for all: a cell not run stays grey
    depths = sorted({r["depth"] for r in graded})
    cmap = plt.get_cmap("RdYlGn").copy()
    cmap.set_bad("#dddddd")
    fig, axes = plt.subplots(1, len(policies), figsize=(3.2 * len(policies), 2.8), squeeze=False)
    for ax, p in zip(axes[0], policies, strict=True):
        grid = np.full((len(depths), len(lengths)), np.nan)
        for r in graded:
            if label(r) == p:
                grid[depths.index(r["depth"]), lengths.index(r["length"])] = float(r["correct"])
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(lengths)), [f"{n // 1000}k" for n in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
        ax.set_title(p, fontsize=9)
        ax.set_xlabel("document tokens")
    axes[0][0].set_ylabel("needle depth")
    fig.suptitle(f"{task}: found (green), not found (red), not run (grey); SmolLM2-135M")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def length_plot(series: dict[str, dict[int, float]], ylabel: str, title: str, out: Path) -> None:
    """One line per series of {document tokens: value}, log length axis."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, points in sorted(series.items()):
        lengths = sorted(points)
        ax.plot(lengths, [points[n] for n in lengths], marker="o", label=key)
    ax.set_xscale("log")
    ax.set_xlabel("document tokens")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def rss_plot(rows: list[dict], out: Path) -> None:
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for r in rows:
        if "peak_rss_bytes" in r and r.get("task") == "passkey":
            points = series[label(r)]
            points[r["length"]] = max(points.get(r["length"], 0), r["peak_rss_bytes"] / 2**20)
    length_plot(series, "peak RSS (MiB)", "peak RSS against document length", out)


def crash_summary(results: Path) -> str:
    runs, rows = load("crash", results)
    if not runs:
        return "Not run yet: `python -m benchmarks.crash --trials 200`."
    r = runs[-1]
    return (
        f"`python -m benchmarks.crash --trials {r['trials']}` (`benchmarks/results/crash.jsonl`): "
        f"{r['trials']} ingests of a {r['tokens']:,}-token document SIGKILLed at seeded random moments "
        f"({r['killed_mid_ingest']} of them mid-ingest). Spans served after a kill that differ from an "
        f"uninterrupted run: **{r['wrong_spans_served']}**; spans refused by their checksum: "
        f"{r['refused_spans']}; ingests resumed from a checkpoint: {r['resumed_from_checkpoint']}; "
        f"stores byte-identical to the uninterrupted run after resuming: "
        f"{r['spans_identical_after_resume']}/{r['trials']}; "
        f"same answer: {r['answers_matching']}/{r['trials']}."
    )


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


def quantization_section(results: Path) -> str:
    path = results / "quantization.jsonl"  # one record per line, each with its run id and environment
    if not path.is_file():
        return "Not run yet: `benchmarks/quantization.sh`."
    every = [json.loads(line) for line in path.read_text().splitlines()]
    last = every[-1]["run"]
    rows = [r for r in every if r["run"] == last]
    cpus = rows[0]["env"]["cpus"]
    lines = [f"`benchmarks/quantization.sh` (`benchmarks/results/quantization.jsonl`), {cpus} CPUs."]
    lines += ["", f"Sizes, speed and pass key from the last run ({last}):", ""]
    lines += md_table(
        ["bundle (scheme)", "KV", "model.pte", "whole bundle"],
        [
            [
                r["bundle"],
                r["kv_dtype"],
                f"{r['pte_bytes'] / 1e6:,.1f} MB",
                f"{r['bundle_bytes'] / 1e6:,.1f} MB",
            ]
            for r in rows
            if r["kind"] == "size"
        ],
    )
    speed = [r for r in rows if r["kind"] == "speed"]
    if speed:
        base = speed[0]["baseline"]
        lines += [f"ExecuTorch programs one after another in one process, ratios against {base}:", ""]
        lines += md_table(
            ["bundle", "ingest tok/s", "ratio", "decode tok/s", "ratio"],
            [
                [
                    r["bundle"],
                    f"{r['ingest_tok_s']:.0f}",
                    f"{r['ingest_ratio']:.2f}",
                    f"{r['decode_tok_s']:.1f}",
                    f"{r['decode_ratio']:.2f}",
                ]
                for r in speed
            ],
        )
    for r in (r for r in rows if r["kind"] == "passkey"):
        lines.append(
            f"Pass key at {r['length']:,} tokens (acre, ExecuTorch, depths 10/50/90%), {r['bundle']}: "
            f"{r['correct']}/{r['of']}."
        )
    quality = [r for r in every if r["kind"] == "quality"]
    lines += ["", "Next-token distributions against fp32 eager through the decode entry point, all runs:", ""]
    lines += md_table(
        ["run", "program", "source", "positions", "mean KL (nats)", "KL p95", "top-1 agreement"],
        [
            [
                r["run"],
                r.get("bundle") or r.get("scheme"),
                r["source"],
                str(r["positions"]),
                f"{r['kl_mean']:.4f}",
                f"{r['kl_p95']:.4f}",
                f"{r['top1_agreement']:.1%}",
            ]
            for r in quality
        ],
    )
    return "\n".join(lines)


def found(rows: list[dict]) -> str:
    graded = [r for r in rows if "correct" in r]
    return share(sum(bool(r["correct"]) for r in graded), len(graded)) if graded else "–"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a share k/n (95% for z = 1.96): unlike k/n +- 2 standard errors it
    stays inside [0, 1] and is honest about 0/n and n/n with few cases."""
    if n <= 0:
        raise ValueError("an interval needs at least one case")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def share(k: int, n: int) -> str:
    """Found over cases with its Wilson 95% interval, as "k/n [lo–hi%]"."""
    lo, hi = wilson(k, n)
    return f"{k}/{n} [{lo * 100:.0f}–{hi * 100:.0f}%]"


def read_time(rows: list[dict]) -> str:
    times = [r["l2_read_s"] for r in rows if "l2_read_s" in r]
    return f" in {np.mean(times) * 1e3:.2f} ms" if times else ""


def ablation_section(results: Path) -> str:
    runs, rows = load("ablation", results)
    if not rows:
        return "Not run yet: `benchmarks/ablation.sh`."
    lengths = sorted({r["length"] for r in rows if "correct" in r})
    _, reference = load("accuracy", results)  # the unablated acre, same prompts, pot and depths
    depths = {r["depth"] for r in rows}
    reference = [
        r for r in reference if r.get("policy") == "acre" and not r.get("switches") and r["depth"] in depths
    ]  # fmt: skip
    tasks = sorted({r["task"] for r in rows if "correct" in r})
    table = []
    for name, mine in [("acre (all parts on)", reference)] + [
        (label(r), [x for x in rows if label(x) == label(r)]) for r in {label(r): r for r in rows}.values()
    ]:
        table.append(
            [name]
            + [
                found([r for r in mine if r["task"] == t and r["length"] == n])
                for t in tasks
                for n in lengths
            ]
        )
    header = ["acre with", *(f"{t} {n // 1000}k" for t in tasks for n in lengths)]
    intro = (
        "`benchmarks/ablation.sh` (`benchmarks/results/ablation.jsonl`): one part of acre's span "
        "scoring or refill turned off at a time; same prompts, 1,024-slot pot and eager engine as "
        f"the accuracy tables (the first row is their acre). {config_line(runs)}"
    )
    return "\n".join([intro, "", *md_table(header, table), "", ABLATION_TEXT])


def potsize_section(results: Path, plots: Path) -> str:
    runs, rows = load("potsizes", results)
    rows = [r for r in rows if "correct" in r]
    if not rows:
        return "Not run yet: `benchmarks/potsizes.sh`."
    tasks = sorted({r["task"] for r in rows})
    pots = sorted({r["pot_slots"] for r in rows})
    lengths = sorted({r["length"] for r in rows})
    policies = sorted({label(r) for r in rows}, key=lambda p: (p != "acre", p))

    def cell(policy: str, pot: int, task: str | None = None) -> list[dict]:
        return [
            r for r in rows
            if label(r) == policy and r["pot_slots"] == pot and (task is None or r["task"] == task)
        ]  # fmt: skip

    table = [
        [policy, f"{pot:,}", *(found(cell(policy, pot, t)) for t in tasks),
         f"{max(r['peak_rss_bytes'] for r in cell(policy, pot)) / 2**20:,.0f} MiB",
         f"{np.mean([len(r['spans']) for r in cell(policy, pot)]):.1f}"]
        for policy in policies
        for pot in pots
        if cell(policy, pot)
    ]  # fmt: skip
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    styles = ["-", "--", ":", "-."]
    for i, policy in enumerate(policies):
        for j, t in enumerate(tasks):
            have = [pot for pot in pots if cell(policy, pot, t)]
            share = [np.mean([r["correct"] for r in cell(policy, pot, t)]) for pot in have]
            ax.plot(have, share, marker="o", linestyle=styles[j % len(styles)], color=f"C{i}",
                    label=f"{policy}, {t}")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(pots, [str(p) for p in pots])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("pot slots")
    ax.set_ylabel("share found")
    ax.set_title(f"{', '.join(f'{n // 1000}k' for n in lengths)}-token documents against pot size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(plots / "accuracy_vs_pot.png", dpi=110)
    plt.close(fig)
    intro = (
        "`benchmarks/potsizes.sh` (`benchmarks/results/potsizes.jsonl`): the bounded policies, eager "
        f"engine, {', '.join(f'{n:,}' for n in lengths)}-token documents, depths 10/50/90%; the "
        "256-slot pot is exported with 32-token chunks, the others with 128, all with the same "
        "retrieval heads. A policy with no row for a pot was not run on it (streaming and infinipot "
        f"on 1,024 slots are in the accuracy tables above, at 8k). {config_line(runs)}"
    )
    header = ["policy", "pot slots", *tasks, "peak RSS", "spans refilled"]
    return "\n".join(
        [intro, "", *md_table(header, table), "![accuracy against pot size](plots/accuracy_vs_pot.png)"]
    )


# ---- the suite (benchmarks/suite.py): families x peers, with intervals --------------------------
POLICY_ORDER = ("acre", "full", "bm25", "embedding", "streaming", "infinipot", "llamacpp", "nocontext")
SUITE_RUNS = {  # results file: what it is
    "suite": "the suite (`benchmarks/suite.sh`)",
    "suite_pilot": "a pilot on the real model, fewer cases",
    "suite_variants": "acre's switches tried on the dev split, beside acre's rows of the same program "
    "(`benchmarks/results/suite_first.jsonl`, the suite's first run)",
    "suite_first": "the suite's first run (2k, three families, the program shipped then)",
}
FAMILY_TEXT = {
    "single": "one fact (number, code, name, place or phrase) from 15 templates, question worded like it",
    "distractors": "four facts of one template about four subjects of one sort; one is asked",
    "multivalue": "three values for one key spread over the document; all must be named",
    "twohop": "bAbI task 2: two supporting facts (and a few other statements) scattered in order",
    "multidoc": "a SQuAD paragraph or NQ-open passage among Wikipedia paragraphs without its answer",
    "paraphrase": "a fact and a question sharing no content word but a person's name",
    "questions": "three facts of three templates about three subjects, a third of the document apart; "
    "each is asked in turn of one ingest",
}


def policy_key(name: str) -> tuple[int, str]:
    base = name.split(" [")[0]
    return (POLICY_ORDER.index(base) if base in POLICY_ORDER else len(POLICY_ORDER), name)


def grid(rows: list[dict]) -> list[str]:
    """Policies by length: found / cases [Wilson 95%]; the cases a policy skipped are counted apart."""
    policies = sorted({label(r) for r in rows}, key=policy_key)
    lengths = sorted({r["length"] for r in rows})
    table = []
    for p in policies:
        cells = []
        for n in lengths:
            mine = [r for r in rows if label(r) == p and r["length"] == n]
            graded = [r for r in mine if "correct" in r]
            unfit = len(mine) - len(graded)  # `full` where a document does not fit its window
            text = found(graded) if graded else "does not fit" if mine else "–"
            cells.append(text + (f" ({unfit} did not fit)" if graded and unfit else ""))
        table.append([p, *cells])
    return md_table(["policy", *(f"{n:,} tokens" for n in lengths)], table)


def kind_grid(rows: list[dict]) -> list[str]:
    """Policies by the kind of the answer (number, code, name, place, phrase), all lengths together."""
    kinds = sorted({r["kind"] for r in rows})
    table = [
        [p, *(found([r for r in rows if label(r) == p and r["kind"] == k]) for k in kinds)]
        for p in sorted({label(r) for r in rows}, key=policy_key)
    ]
    return md_table(["policy", *kinds], table)


def stage_table(rows: list[dict]) -> list[str]:
    """Where acre's misses were lost, and how often each peer had the evidence in front of it."""
    table = []
    order = {f: i for i, f in enumerate(FAMILIES)}
    keys = sorted({(r["family"], r["length"]) for r in rows}, key=lambda k: (order[k[0]], k[1]))
    for family, n in keys:
        cell = [r for r in rows if r["family"] == family and r["length"] == n and "correct" in r]
        acre = [r for r in cell if label(r) == "acre" and "evidence_shown" in r]
        misses = [r for r in acre if not r["correct"]]
        lost = sum(not r["evidence_shown"] for r in misses)
        peers = []
        for peer in ("bm25", "embedding"):
            had = [r["evidence_shown"] for r in cell if label(r) == peer and "evidence_shown" in r]
            peers.append(share(sum(had), len(had)) if had else "–")
        shown = [r["evidence_shown"] for r in acre]
        table.append([
            family, f"{n:,}", share(sum(shown), len(shown)) if shown else "–",
            f"{len(misses)}" if acre else "–", f"{lost}" if acre else "–",
            f"{len(misses) - lost}" if acre else "–", *peers,
        ])  # fmt: skip
    header = [
        "family", "tokens", "acre: evidence in the pot", "acre misses", "of them: not refilled",
        "refilled, answer wrong", "bm25: evidence retrieved", "embedding: evidence retrieved",
    ]  # fmt: skip
    return md_table(header, table)


def run_command(run: dict) -> str:
    c = run["config"]
    parts = ["python -m benchmarks", f"--bundle {c['bundle']}", f"--engine {c['engine']}",
             "--tasks " + " ".join(c["tasks"]), "--policies " + " ".join(c["policies"]),
             "--lengths " + " ".join(map(str, c["lengths"])), f"--cases {c.get('cases')}",
             f"--split {c.get('split')}", f"--seed {c['seed']}", f"--name {c['name']}",
             *(f"--switch {sw}" for sw in c.get("switch") or [])]  # fmt: skip
    return " ".join(parts)


def suite_section(results: Path, name: str, beside: list[dict] | None = None) -> str:
    """`beside`: rows of another run shown with these where they share a family, length and split."""
    runs, rows = load(name, results)
    rows = [r for r in rows if r.get("family")]
    cells = {(r["family"], r["length"], r.get("split")) for r in rows}
    rows += [r for r in beside or [] if (r.get("family"), r.get("length"), r.get("split")) in cells]
    if not rows:
        return "Not run yet: `benchmarks/suite.sh`." if name == "suite" else ""
    lines = [f"`benchmarks/results/{name}.jsonl`: {SUITE_RUNS.get(name, name)}. Each cell: cases found / "
             "cases run [Wilson 95% interval]. Every line of the file records its case's family, seed, "
             "split, haystack and depth, so any case can be made again (`benchmarks.suite.make_case`). "
             f"{config_line(runs)} Commands, in the order run:", ""]  # fmt: skip
    lines += [f"    {run_command(r)}" for r in runs if "config" in r and r["config"].get("cases")]
    for split in sorted({r.get("split") for r in rows}):
        mine = [r for r in rows if r.get("split") == split]
        lines += ["", f"### {split} split: every family together", "", *grid(mine)]
        for family in [f for f in FAMILIES if any(r["family"] == f for r in mine)]:
            of_family = [r for r in mine if r["family"] == family]
            lines += ["", f"**{family}**: {FAMILY_TEXT[family]}.", "", *grid(of_family)]
            if family == "single":
                lines += ["By the kind of answer, every length together:", "", *kind_grid(of_family)]
        lines += ["", f"### {split} split: where the evidence was", "",
                  "The evidence is the sentence(s) a right answer needs. acre's miss was lost before the "
                  "answer if its evidence was not in the pot when the answer was decoded (not refilled, nor "
                  "in the sinks or the recent window), and by the model reading it otherwise. A RAG peer "
                  "had it if the chunks it retrieved hold it whole.", "", *stage_table(mine)]  # fmt: skip
    return "\n".join(lines)


def acre_pairs(rows: list[dict], others: list[dict], switches: dict | None = None) -> list[tuple[dict, dict]]:
    """(row, other) of acre on the very same case (seed, family, length, split): rows with no switches,
    others with `switches` (none by default)."""

    def key(r: dict) -> tuple:
        return (r["family"], r["length"], r.get("split"), r["seed"])

    def acre_with(r: dict, want: dict) -> bool:
        return r.get("policy") == "acre" and (r.get("switches") or {}) == want and "correct" in r

    by_case = {key(r): r for r in others if acre_with(r, switches or {})}
    return [(r, by_case[key(r)]) for r in rows if acre_with(r, {}) and key(r) in by_case]


def paired_section(results: Path, tried: str, shipped: list[dict], switches: dict | None = None) -> str:
    """`shipped` (acre's rows of the suite) against acre's rows of results/TRIED.jsonl (a change of the
    runtime, or the policy `switches`), case by case on the cases both ran, which only this tells apart."""
    runs, rows = load(tried, results)
    pairs = acre_pairs(shipped, rows, switches)
    if not pairs:
        return ""
    table = []
    order = {f: i for i, f in enumerate(FAMILIES)}
    cells = sorted({(a["family"], a["length"]) for a, _ in pairs}, key=lambda k: (order[k[0]], k[1]))
    for family, n in [*cells, ("all", None)]:
        mine = [(a, b) for a, b in pairs if family == "all" or (a["family"], a["length"]) == (family, n)]
        table.append([
            family, f"{n:,}" if n else "", found([a for a, _ in mine]), found([b for _, b in mine]),
            str(sum(a["correct"] and not b["correct"] for a, b in mine)),
            str(sum(b["correct"] and not a["correct"] for a, b in mine)),
            f"{sum(a['evidence_shown'] for a, _ in mine)} / {sum(b['evidence_shown'] for _, b in mine)}",
        ])  # fmt: skip
    header = [
        "family",
        "tokens",
        "shipped",
        "tried",
        "only shipped",
        "only tried",
        "evidence shown (shipped/tried)",
    ]
    intro = f"The suite's acre rows (shipped) against `benchmarks/results/{tried}.jsonl` (tried), same cases."
    return "\n".join([f"{intro} {config_line(runs)}", "", *md_table(header, table)])


def engine_section(results: Path, shipped: str = "suite", eager: str = "suite_eager") -> str:
    """The shipped program against the eager fp32 module on the very cases (same seed, family, length,
    split; acre with no switches): of the cases the eager engine found, how many the program found,
    over all of them and over those where both refilled the same spans (there only the weights differ)."""
    eager_runs, eager_rows = load(eager, results)
    pick = [r for r in load(shipped, results)[1] if r.get("engine") == "executorch"]
    pairs = acre_pairs(eager_rows, pick)
    if not pairs:
        return ""
    table = []
    for family in [f for f in FAMILIES if any(e["family"] == f for e, _ in pairs)] + ["all"]:
        mine = [(e, s) for e, s in pairs if family in ("all", e["family"])]
        same = [(e, s) for e, s in mine if e["spans"] == s["spans"]]
        kept = [s["correct"] for e, s in mine if e["correct"]]
        kept_same = [s["correct"] for e, s in same if e["correct"]]
        table.append([
            family, str(len(mine)), found([e for e, _ in mine]), found([s for _, s in mine]),
            share(sum(kept), len(kept)) if kept else "–", f"{len(same)}",
            share(sum(kept_same), len(kept_same)) if kept_same else "–",
        ])  # fmt: skip
    header = [
        "family", "cases", "eager fp32 found", "shipped program found", "shipped found of eager's",
        "same spans refilled", "shipped found of eager's, same spans",
    ]  # fmt: skip
    commands = [f"    {run_command(r)}" for r in eager_runs if "config" in r and r["config"].get("cases")]
    return "\n".join([
        f"`benchmarks/results/{eager}.jsonl` (eager engine: the fp32 module) against the executorch rows "
        f"of `benchmarks/results/{shipped}.jsonl` (the shipped program), acre, case by case. "
        f"{config_line(eager_runs)} Commands:", "", *commands, "", *md_table(header, table),
    ])  # fmt: skip


def llamacpp_rss(rows: list[dict]) -> str:
    """llama.cpp's own peak RSS; rows before `rss_source` took ru_maxrss, inherited over exec."""
    own = [r["peak_rss_bytes"] for r in rows if r.get("rss_source") == "VmHWM"]
    return f"{max(own) / 2**20:,.0f}" if own else "–"


def anchor_section(results: Path, plots: Path) -> str:
    runs, rows = load("anchor", results)
    rows = [r for r in rows if "correct" in r]
    if not rows:
        return "Not run yet: `benchmarks/anchor.sh`."
    by = defaultdict(list)
    for r in rows:
        by[(r["policy"], r.get("engine"), r["length"])].append(r)
    acre_engine = next((e for p, e, _ in by if p == "acre"), None)
    table = []
    for n in sorted({r["length"] for r in rows}):
        base, mine = by.get(("llamacpp", "llama.cpp", n), []), by.get(("acre", acre_engine, n), [])
        if not base or not mine:
            continue

        def mean(rs: list[dict], key: str) -> float:
            return float(np.mean([r[key] for r in rs if r.get(key)]))

        table.append([
            f"{n:,}",
            f"{found(base)} / {found(mine)}",
            f"{mean(base, 'ingest_tok_s'):.0f} / {mean(mine, 'ingest_tok_s'):.0f} "
            f"(**{mean(mine, 'ingest_tok_s') / mean(base, 'ingest_tok_s'):.2f}x**)",
            f"{mean(base, 'first_token_s'):.2f} / {mean(mine, 'first_token_s'):.2f} s",
            f"{mean(base, 'decode_tok_s'):.1f} / {mean(mine, 'decode_tok_s'):.1f} "
            f"(**{mean(mine, 'decode_tok_s') / mean(base, 'decode_tok_s'):.2f}x**)",
            f"{llamacpp_rss(base)} / {max(r['peak_rss_bytes'] for r in mine) / 2**20:,.0f} MiB",
        ])  # fmt: skip
    threads = sorted({r.get("threads") for r in rows if r["policy"] == "llamacpp"})
    intro = (
        "`benchmarks/anchor.sh` (`benchmarks/results/anchor.jsonl`): llama.cpp (llama-cpp-python 0.3.36, "
        f"{'/'.join(map(str, threads))} threads, the same Q4_1 GGUF, full attention, n_ctx 8,192) and acre "
        f"({acre_engine}, the shipped quantized program, 1,024-slot pot) one after the other on the same "
        "pass-key and needle prompts (the same token ids). Each cell: llama.cpp / acre, ratio acre ÷ "
        "llama.cpp. llama.cpp's ingest is its prefill of document and question together, and its first "
        "token comes after that prefill; acre's first token is timed from the question, after ingest. "
        "The peak RSS of llama.cpp is its whole process; acre's is reset after the program is loaded. "
        f"{config_line(runs)}"
    )
    header = ["tokens", "found", "ingest tok/s", "first token", "decode tok/s", "peak RSS"]
    return "\n".join([intro, "", *md_table(header, table)])


def ingest_plot(results: Path, out: Path) -> bool:
    """Ingest tokens/s against length: llama.cpp and acre from the anchor run (the same run, so they
    compare), and acre's program at 8k-128k from the memory run. The accuracy runs are left out: they
    span sessions whose shared machine ran at different speeds."""
    series: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name in ("anchor", "memory"):
        for r in load(name, results)[1]:
            if r.get("ingest_tok_s") and not r.get("switches"):
                series[f"{r['policy']} ({r.get('engine')}, {name})"][r["length"]].append(r["ingest_tok_s"])
    if not series:
        return False
    medians = {key: {n: float(np.median(v)) for n, v in points.items()} for key, points in series.items()}
    length_plot(medians, "ingest tokens/s (median)", "ingest speed against length, 2 cores", out)
    return True


EARLIER_MEMORY = {
    "memory_before_malloc_fix": "the shipped quantized program before glibc's mmap threshold was "
    "pinned (acre/runtime/malloc.py): heap fragments of per-step buffers made the peak erratic",
    "memory_reps_copy": "with the threshold pinned, while the span representatives were still "
    "stacked into a second copy for the index at the end of ingest",
}


def earlier_memory_runs(results: Path) -> str:
    parts = []
    for name, what in EARLIER_MEMORY.items():
        runs, rows = load(name, results)
        if rows:
            parts.append(
                f"`benchmarks/results/{name}.jsonl`: {what} ({config_line(runs)}):\n\n{resource_table(rows)}"
            )
    return "\n\n".join(parts)


def config_line(runs: list[dict]) -> str:
    if not runs:
        return ""
    m = runs[-1]["machine"]
    commits = sorted({r["machine"].get("commit") for r in runs})
    return f"Machine: {m.get('cpus')} CPUs; commit {', '.join(commits)}; versions {m.get('versions')}."


SELECTION_TEXT = """A question's refill budget (6 spans of 64 tokens with the default pot) goes to the 6 best
spans: the 0.9-mass cut reaches the budget for nearly every question, since the attention part of
the score is spread over every span, and the first two cores' neighbours fill it, so a third value
of a key is rarely refilled. Tried: no core under 0.4 of the best (`min_spans` still makes two),
every core first, then the carried spans of a dialogue, then the neighbours ring by ring. Chosen on
the dev split and then run once on the held-out split; "only tried" counts the cases the tried rule
answered and the shipped one did not. Not kept: the real-model dialogue test's third turn
(tests/test_real_model.py) echoed its question instead of answering it (docs/design-notes.md)."""
REUSE_TEXT = """`refill_mode=reuse` writes the spans' K/V, as ingest computed them, into the refill slots; the
default re-encodes their tokens over the sinks (three 128-row steps for 384 tokens), which is most of
the first answer token's time. Run on the dev split, 2k, the same cases as the shipped rows, from a
copy of the shipped bundle without its `short` method (so only the refill differs): the median first
token went from 1.67 s to 0.38 s (both measured while other work ran), and 4 more answers were lost
than gained, most in paraphrase. Re-encoding stays the default; reuse stays an option (its store
keeps K/V, 44x the flash)."""
QUESTION_FIRST_TEXT = """`question_first=true` also prefilled the question after the sinks, before the
refilled spans were re-encoded, so that they were read knowing it (the query-aware contextualization of
*Lost in the Middle*), and asked it again after them. Dev split, 2k, 30 cases a family, the same program
and cases for both: the suite's command with and without `--switch question_first=true`
(`benchmarks/results/suite_question_first.jsonl`; "shipped" is that export's own acre rows). It lost
far more answers than it gained, most in paraphrase and in the questions family, with the same spans
refilled in 209 of 210 cases: the switch was taken out of the core again."""
NEEDLE_TEXT = (
    'The sentence "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a '
    'sunny day." hidden in the essays of shared/data; the question: "What is the best thing to do in '
    'San Francisco?"; correct if the reply names Dolores Park.'
)
NEEDLES_TEXT = (
    "Three needle sentences with different facts (the one above, Grandma Rosa's secret soup "
    "ingredient, where a lighthouse keeper keeps his spare key) a third of the document apart; the "
    "question asks for the one at the depth, and which of the three is asked turns with the case."
)
SQUAD_TEXT = (
    "A gold paragraph among other SQuAD paragraphs (those holding a gold answer dropped); correct if a "
    "gold answer is in the reply (normalised). "
)


ABLATION_TEXT = """The switches (acre/runtime/policies.py): `use_attention` the question's attention on the
spans' L1 entries (ACRE); `use_index` the span index searched with probe queries; `use_probes` the
ActQKV probe queries (off: the question's last token probes alone); `use_tree` the index's top-down
search (off: every span scored flat); `use_lexical` BM25 of the question's token ids; `refill_mode=reuse`
copies the spans' stored K/V back instead of re-encoding their token ids in the pot's context. At 8k
the scoring signals cover for each other except BM25, which the needle needs; reusing stored K/V
loses the pass key although the same spans come back. Longer documents separate the signals further:
at 32k the needle was 0/3 while BM25 entered as a share of its sum
(`benchmarks/results/accuracy_bm25_share.jsonl`) and 3/3 since it enters as a softmax of its
standard scores (docs/design-notes.md)."""


def main(results: Path = RESULTS, docs: Path = DOCS) -> Path:
    plots = docs / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    runs, rows = load("accuracy", results)
    _, memory_rows = load("memory", results)
    old_runs, old_rows = load("bicache", results)
    _, old_needle_rows = load("needle_before_lexical", results)
    _, share_rows = load("accuracy_bm25_share", results)
    fp32_runs, fp32_rows = load("memory_fp32", results)
    tables = {task: accuracy_table(rows, task)[0] for task in ("passkey", "needle", "needles", "squad")}
    present = {task for task in tables if any(r.get("task") == task and "correct" in r for r in rows)}
    for task in present:
        heatmaps(rows, task, plots / f"{task}_heatmap.png")
    if memory_rows:
        rss_plot(memory_rows, plots / "rss_vs_length.png")
    squad_rows = [r for r in rows if r.get("task") == "squad" and "f1" in r]
    squad_f1 = (
        "Mean token F1 by policy: "
        + ", ".join(
            f"{p} {np.mean([r['f1'] for r in squad_rows if label(r) == p]):.2f}"
            for p in sorted({label(r) for r in squad_rows})
        )
        if squad_rows
        else ""
    )

    def section(task: str, title: str, text: str) -> str:
        if task not in present:
            return f"### {title}\n\nNot run yet.\n"
        return f"### {title}\n\n{text}\n\n{tables[task]}\n\n![{task} heatmap](plots/{task}_heatmap.png)\n"

    memory_machine = config_line(load("memory", results)[0])
    has_ingest = ingest_plot(results, plots / "ingest_vs_length.png")
    ingest_figure = "![ingest speed](plots/ingest_vs_length.png)" if has_ingest else ""
    pilot = suite_section(results, "suite_pilot")
    pilot_text = f"## Pilot on the real model\n\n{pilot}\n" if pilot else ""

    def acre_of(name: str) -> list[dict]:
        return [r for r in load(name, results)[1] if r.get("policy") == "acre" and not r.get("switches")]

    variants = suite_section(results, "suite_variants", beside=acre_of("suite_first"))
    variants_text = f"## Experiments: acre's switches on the dev split\n\n{variants}\n" if variants else ""
    selection = paired_section(results, "suite_fewer_cores", acre_of("suite"))
    title = "## Experiment, not kept: fewer cores, every core before any neighbour"
    selection_text = f"{title}\n\n{SELECTION_TEXT}\n\n{selection}\n" if selection else ""
    reuse = paired_section(results, "suite_reuse", acre_of("suite"), {"refill_mode": "reuse"})
    title = "## Experiment, not kept: refill from the stored K/V instead of re-encoding"
    reuse_text = f"{title}\n\n{REUSE_TEXT}\n\n{reuse}\n" if reuse else ""
    # this export's acre rows: the questions family of the suite, the other families run beside the switch
    shipped_now = [r for r in acre_of("suite") if r.get("family") == "questions"]
    shipped_now += acre_of("suite_question_first")
    question_first = paired_section(results, "suite_question_first", shipped_now, {"question_first": True})
    title = "## Experiment, not kept: the question also before the refilled spans"
    question_first_text = f"{title}\n\n{QUESTION_FIRST_TEXT}\n\n{question_first}\n" if question_first else ""
    engines = engine_section(results, shipped="suite_split")  # the program shipped now (issue 16)
    engines_text = f"## The shipped program against the eager module\n\n{engines}\n" if engines else ""
    text = f"""# Benchmarks

Rendered by `python -m benchmarks.report` from `benchmarks/results/*.jsonl`; every line of those
files is one case, and each run is headed by its machine, versions and configuration.
Model: SmolLM2-135M-Instruct. Every share comes with its Wilson 95% interval: with 30 cases a cell
an interval is still about ±15 points wide, so two policies differ only where theirs do not overlap.

## The suite: task families against the peers a user would pick instead

`benchmarks/suite.sh` runs seven task families (`benchmarks/suite.py`), each scored automatically, over
the three shipped kinds of prose (fiction, Wikipedia, Python's documentation; the needles are made from
templates and random values, never taken from the prose) at 2k / 8k / 32k / 128k tokens, 30 cases a
cell with depths spread over the document, on the same model, prompts and question wording for
every policy: acre (1,024-slot pot), `full` where the document fits the 8k window, the RAG peers
`bm25` and `embedding` (`benchmarks/rag.py`: sentence-aligned ~80-word chunks, the best ones within
acre's refill region of 384 tokens, in document order, answered by the same model with the
document replaced by them), `streaming`, `infinipot`, and `nocontext` (the question alone: the
closed-book baseline of the multi-document family, whose sets are in pretraining data). The peers see
only what they retrieved; acre also sees its sinks and recent window.

Cases come in two splits by seed: `dev` for looking at and tuning, and `heldout`, which must not be
used for tuning: run it to report a change once it is made, never to choose one.

{suite_section(results, "suite")}

{pilot_text}
{selection_text}
{reuse_text}
{question_first_text}
{variants_text}
{engines_text}
## Memory and speed of `acre` against document length

`benchmarks/memory.sh` (`benchmarks/results/memory.jsonl`): one process per length, the shipped
ExecuTorch program (quantized, 1,024-slot pot, fp32 pot entries), pass key at depths 10/50/90%; the
peak RSS is reset (`/proc/self/clear_refs`) after the program is loaded and the documents built, so
it covers three ingests and their questions. The pot is allocated once. {memory_machine}

{resource_table(memory_rows) if memory_rows else "Not run yet."}

![peak RSS](plots/rss_vs_length.png)

## Speed against llama.cpp

{anchor_section(results, plots)}

{ingest_figure}

## Quantization of the ExecuTorch program

{quantization_section(results)}

## Crash consistency of L2

{crash_summary(results)}

## History: the single-needle runs (before the suite)

These runs steered the design until the suite existed: one pass-key filler, one needle sentence
and 3-5 cases a cell, too narrow to steer by. Accuracy: `benchmarks/accuracy.sh`
(`benchmarks/results/accuracy.jsonl`). Every policy runs the eager engine (the module that is
exported) with fp32 weights and pot, on the same prompts: the bounded policies (`acre`,
`streaming`, `infinipot`) on a 1,024-slot pot (C = 128), `full` on an 8,064-slot pot where the
document fits the model's 8k window. Cases found / cases run over the depths run at that length
(10/50/90%, and 30/70% at 2k and 8k). {config_line(runs)}

{section("passkey", "Pass key (5 digits)", 'The question: "What is the pass key?"')}
{section("needle", "Needle in Paul Graham's essays", NEEDLE_TEXT)}
{section("needles", "Several needles in the essays", NEEDLES_TEXT)}
{section("squad", "Multi-document QA (SQuAD v1.1 dev)", SQUAD_TEXT + squad_f1)}
### Accuracy against pot size

{potsize_section(results, plots)}

### Ablations

{ablation_section(results)}

### Earlier runs

`benchmarks/results/bicache.jsonl` is the pass key before BM25 joined the span selection and
before re-encoding was fixed ({config_line(old_runs) or "not present"}); bounded policies on the
ExecuTorch engine, fp32:

{accuracy_table(old_rows, "passkey")[0] if old_rows else "Not present."}

`benchmarks/results/needle_before_lexical.jsonl`: the needle task with attention and the span index
alone:

{accuracy_table(old_needle_rows, "needle")[0] if old_needle_rows else "Not present."}

`benchmarks/results/accuracy_bm25_share.jsonl`: acre with BM25 entering as a share of its sum
instead of a softmax of its standard scores (eager, same prompts), pass key then needle:

{accuracy_table(share_rows, "passkey")[0] if share_rows else "Not present."}

{accuracy_table(share_rows, "needle")[0] if share_rows else ""}

`benchmarks/results/memory_fp32.jsonl`: peak RSS against length with the fp32 ExecuTorch program
and the selection of that time, one depth ({config_line(fp32_runs) or "not present"}):

{resource_table(fp32_rows) if fp32_rows else "Not present."}

{earlier_memory_runs(results)}
"""
    (docs / "benchmarks.md").write_text(text)
    print(f"wrote {docs / 'benchmarks.md'}")
    return docs / "benchmarks.md"


if __name__ == "__main__":
    main()
