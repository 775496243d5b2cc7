"""`python -m benchmarks.report`: tables and plots from benchmarks/results/*.jsonl into docs/benchmarks.md.

Every number in the report is read from a results file; each file starts with the run's machine,
versions and configuration.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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
        lines.append(f"| {p} | " + " | ".join(f"{sum(v)}/{len(v)}" if v else "–" for v in vals) + " |")
    return "\n".join(lines), cells


def resource_table(rows: list[dict], policy: str = "acre", task: str = "passkey") -> str:
    by_len: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("policy") == policy and r.get("task") == task and "correct" in r and not r.get("switches"):
            by_len[r["length"]].append(r)
    lines = [
        "| tokens | peak RSS | pot | span index | L2 on flash | L2 read / question | ingest tok/s | "
        "first token s | decode tok/s |",
        "|---" * 9 + "|",
    ]
    for n in sorted(by_len):
        rs = by_len[n]
        decode = [r["decode_tok_s"] for r in rs if r.get("decode_tok_s")]
        decode_text = f"{np.mean(decode):.1f}" if decode else "–"
        lines.append(
            f"| {rs[0]['document_tokens']:,} | {max(r['peak_rss_bytes'] for r in rs) / 2**20:,.0f} MiB "
            f"| {rs[0]['pot_bytes'] / 2**20:.1f} MiB | {max(r['index_bytes'] for r in rs) / 2**20:.2f} MiB "
            f"| {max(r['l2_disk_bytes'] for r in rs) / 2**20:,.0f} MiB "
            f"| {np.mean([r['l2_bytes_read'] for r in rs]):,.0f} B "
            f"| {np.mean([r['ingest_tok_s'] for r in rs]):.0f} "
            f"| {np.mean([r['first_token_s'] for r in rs]):.2f} | {decode_text} |"
        )
    return "\n".join(lines)


def heatmaps(rows: list[dict], task: str, out: Path) -> None:
    policies = sorted({label(r) for r in rows if r.get("task") == task and "correct" in r})
    fig, axes = plt.subplots(1, len(policies), figsize=(3.2 * len(policies), 2.8), squeeze=False)
    for ax, p in zip(axes[0], policies, strict=True):
        mine = [r for r in rows if r.get("task") == task and "correct" in r and label(r) == p]
        lengths = sorted({r["length"] for r in mine})
        depths = sorted({r["depth"] for r in mine})
        grid = np.full((len(depths), len(lengths)), np.nan)
        for r in mine:
            grid[depths.index(r["depth"]), lengths.index(r["length"])] = float(r["correct"])
        ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(lengths)), [f"{n // 1000}k" for n in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
        ax.set_title(p, fontsize=9)
        ax.set_xlabel("document tokens")
    axes[0][0].set_ylabel("needle depth")
    fig.suptitle(f"{task}: found (green) or not (red), SmolLM2-135M")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def rss_plot(rows: list[dict], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for p in sorted({label(r) for r in rows if "peak_rss_bytes" in r and r.get("task") == "passkey"}):
        mine = [r for r in rows if "peak_rss_bytes" in r and label(r) == p and r.get("task") == "passkey"]
        lengths = sorted({r["length"] for r in mine})
        rss = [max(r["peak_rss_bytes"] for r in mine if r["length"] == n) / 2**20 for n in lengths]
        ax.plot(lengths, rss, marker="o", label=p)
    ax.set_xscale("log")
    ax.set_xlabel("document tokens")
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("peak RSS against document length")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


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


def main(results: Path = RESULTS, docs: Path = DOCS) -> Path:
    plots = docs / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    runs, rows = load("bicache", results)
    needle_runs, needle_rows = load("needle", results)
    _, memory_rows = load("memory", results)
    passkey_table, _ = accuracy_table(rows, "passkey")
    needle_table, _ = accuracy_table(needle_rows, "needle")
    if rows:
        heatmaps(rows, "passkey", plots / "passkey_heatmap.png")
    if needle_rows:
        heatmaps(needle_rows, "needle", plots / "needle_heatmap.png")
    if memory_rows or rows:
        rss_plot(memory_rows or rows, plots / "rss_vs_length.png")
    machine = (runs or needle_runs or [{}])[0].get("machine", {})
    needle_machine = needle_runs[-1]["machine"] if needle_runs else {}
    text = f"""# Benchmarks

Rendered by `python -m benchmarks.report` from `benchmarks/results/*.jsonl`; every line of those
files is one case, and each run is headed by its machine, versions and configuration.
Model: SmolLM2-135M-Instruct, fp32 weights.

## Pass key (5 digits; depths 10/50/90%; cases found / cases run)

Produced by `benchmarks/bicache.sh` (`benchmarks/results/bicache.jsonl`). Bounded policies use a
1,024-slot pot (C = 128) and the ExecuTorch engine; `full` runs the eager engine with an 8,064-slot
pot, so it covers what fits the 8k window. Machine: {machine.get("cpus")} CPUs, commit
{machine.get("commit")}, versions {machine.get("versions")}.

{passkey_table if rows else "Not run yet."}

![pass key heatmap](plots/passkey_heatmap.png)

## Needle in Paul Graham's essays ("What is the best thing to do in San Francisco?")

Produced by `benchmarks/needle.sh` (`benchmarks/results/needle.jsonl`): `acre` on a 1,024-slot pot
against `full` on an 8,064-slot pot, both on the eager engine, same prompts (commit
{needle_machine.get("commit")}). `needle_before_lexical.jsonl` holds the same task before BM25
joined the span selection (acre 0/6 at 2k and 4k).

{needle_table if needle_rows else "Not run yet."}

{"![needle heatmap](plots/needle_heatmap.png)" if needle_rows else ""}

## Memory and speed of `acre` against document length

Produced by `benchmarks/memory.sh` (`benchmarks/results/memory.jsonl`): one process per length; the
peak RSS is reset (`/proc/self/clear_refs`) after the program is loaded and the document built, so it
covers ingest and one question. Peak RSS is the whole Python process with the fp32 program (a 622 MiB
file) loaded and torch imported; loading itself peaks higher (2,489 MiB seen in `make demo`) but does
not depend on the document. The pot is allocated once.

{resource_table(memory_rows or rows) if memory_rows or rows else "Not run yet."}

![peak RSS](plots/rss_vs_length.png)

## Crash consistency of L2

{crash_summary(results)}
"""
    (docs / "benchmarks.md").write_text(text)
    print(f"wrote {docs / 'benchmarks.md'}")
    return docs / "benchmarks.md"


if __name__ == "__main__":
    main()
