"""The benchmark harness on a tiny model and short documents, so it cannot silently break.
(The real runs are benchmarks/*.sh; they stay out of CI.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import report
from benchmarks.suite import make_case
from benchmarks.tasks import DATA, HAYSTACKS, SQUAD_SAMPLE, passkey
from tests.conftest import make_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def run_harness(bundle: Path, results: Path, name: str, *args: str, timeout: int) -> tuple[dict, list[dict]]:
    """`python -m benchmarks --bundle BUNDLE ARGS --name NAME` into `results`: the run's header and cases."""
    cmd = [sys.executable, "-m", "benchmarks", "--bundle", str(bundle), *args, "--name", name]
    done = subprocess.run(
        [*cmd, "--out-dir", str(results)], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in (results / f"{name}.jsonl").read_text().splitlines()]
    return lines[0]["run"], lines[1:]


def test_the_harness_runs_a_grid_and_the_report_renders_it(tiny_bundle, tmp_path):
    results = tmp_path / "results"
    header, cases = run_harness(
        tiny_bundle, results, "accuracy", "--engine", "onnx", "--tasks", "passkey", "--policies", "acre",
        "streaming", "--lengths", "400", "--depths", "0.5", timeout=600,
    )  # fmt: skip
    assert header["config"]["policies"] == ["acre", "streaming"] and header["machine"]["cpus"]
    assert sorted(c["policy"] for c in cases) == ["acre", "streaming"]
    for c in cases:
        assert isinstance(c["correct"], bool) and c["document_tokens"] > 300
        assert c["ingest_tok_s"] > 0 and c["peak_rss_bytes"] > 0 and c["pot_slots"] == 256
    acre = next(c for c in cases if c["policy"] == "acre")
    assert acre["spans"] and acre["l2_disk_bytes"] > 0
    page = report.main(results, tmp_path / "docs").read_text()
    assert "| acre | " in page and "| streaming | " in page
    assert (tmp_path / "docs" / "plots" / "passkey_heatmap.png").stat().st_size > 1000


def test_the_pass_key_task_hides_the_key_at_the_depth_and_scores_replies():
    tokenizer = make_tokenizer()
    case = passkey(tokenizer, 300, 0.5, seed=1)
    at = case.document.index(case.answer) / len(case.document)
    assert 0.35 < at < 0.65 and case.correct(f"The pass key is {case.answer}.")
    assert not case.correct("The pass key is 12345.") or case.answer == "12345"


def test_the_squad_task_hides_the_gold_paragraph_among_distractors_without_the_answer():
    from benchmarks.tasks import normalise, squad, squad_paragraphs

    tokenizer = make_tokenizer()
    case = squad(tokenizer, 1500, 0.5, seed=2, source=SQUAD_SAMPLE)
    paragraphs = squad_paragraphs(SQUAD_SAMPLE)
    gold = next(p for p, qas in paragraphs if any(q["question"] == case.question for q in qas))
    parts = case.document.split("\n\n")
    assert gold in parts and 0.2 < parts.index(gold) / len(parts) < 0.8
    assert len(tokenizer.encode(case.document)) >= 1500
    others = [p for p in parts if p != gold]
    assert not any(normalise(a) in normalise(p) for a in case.answers for p in others)
    reply = f"The answer is {case.answers[0]}."
    assert case.correct(reply) and case.f1(reply) > 0.3
    assert not case.correct("I do not know.") and case.f1("I do not know.") == 0.0


def test_the_several_needles_task_hides_three_facts_and_asks_for_the_one_at_the_depth():
    from benchmarks.tasks import NEEDLE, OTHER_NEEDLES, needles

    tokenizer = make_tokenizer()
    facts = [NEEDLE, *OTHER_NEEDLES]
    for seed in range(3):  # in the shipped Wikipedia prose (each haystack: the test below)
        case = needles(tokenizer, 4000, 0.2, seed=seed, haystack_name="wikipedia")
        where = {f[2]: case.document.index(f[0]) / len(case.document) for f in facts}
        assert all(f[0] in case.document for f in facts)
        asked = next(f for f in facts if f[1] == case.question)
        assert case.answer == asked[2] and abs(where[asked[2]] - 0.2) < 0.05
        others = sorted(v for k, v in where.items() if k != asked[2])
        assert abs(others[0] - 0.53) < 0.05 and abs(others[1] - 0.87) < 0.05
        assert case.correct(f"It is {asked[2]}.") and not case.correct("I do not know.")
    asked = {needles(tokenizer, 4000, 0.5, seed=s, haystack_name="wikipedia").question for s in range(3)}
    assert len(asked) == 3


def test_the_needle_task_hides_its_sentence_at_the_depth_of_each_shipped_haystack():
    from acre.haystack import fill_to
    from benchmarks.tasks import NEEDLE, haystack, needle

    tokenizer = make_tokenizer()
    for name in HAYSTACKS:
        assert len(haystack(name)) > 100_000  # real prose, not a stub
        prose = fill_to(tokenizer, haystack(name), 8000)
        for depth in (0.3, 0.7):
            case = needle(tokenizer, 8000, depth, seed=0, haystack_name=name)
            at = case.document.index(NEEDLE[0]) / len(case.document)
            # at the sentence end before the depth: long sentences and code blocks leave it further off
            assert depth - 0.1 < at <= depth and case.question == NEEDLE[1], (name, depth, at)
            assert case.document.replace(NEEDLE[0], "", 1) == prose  # the prose itself is unchanged
        assert case.correct("Sit in Dolores Park.") and not case.correct("I do not know.")


def test_without_its_data_the_harness_says_in_one_line_what_to_put_where(tmp_path):
    env = {**os.environ, "ACRE_DATA": str(tmp_path)}  # an empty folder: no essays, no SQuAD dev
    for task, name in [("needle", "PaulGrahamEssays"), ("squad", "squad/dev-v1.1.json")]:
        cmd = [sys.executable, "-m", "benchmarks", "--bundle", "nowhere", "--tasks", "passkey", task,
               "--out-dir", str(tmp_path / "results")]  # fmt: skip
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and not done.stdout
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"task {task} needs" in lines[0] and f"{tmp_path / name} ($ACRE_DATA)" in lines[0]
        assert not (tmp_path / "results").exists()  # nothing run, nothing written


def test_every_shipped_data_file_is_named_with_its_licence_in_the_readme_beside_it():
    files = [f for f in DATA.rglob("*") if f.is_file() and f.suffix in (".txt", ".json", ".jsonl")]
    assert len(files) >= 25 and sum(f.stat().st_size for f in files) < 5 * 2**20
    for f in files:
        if f.name.startswith(("README", "LICENSE")):
            continue
        readme = (f.parent / "README.md").read_text(encoding="utf-8")
        assert f.name in readme and "icen" in readme, f  # licence / licensed


def test_the_report_tables_pot_sizes_and_ablations_per_policy_from_the_results(tmp_path):
    results = tmp_path / "results"
    results.mkdir()

    def row(policy: str, pot: int, correct: bool, switches: dict | None = None) -> dict:
        return {
            "task": "passkey", "policy": policy, "switches": switches or {}, "length": 8000,
            "depth": 0.5, "correct": correct, "pot_slots": pot,
            "spans": [[0, 64]] if policy == "acre" else [],
            "peak_rss_bytes": 2**30, "l2_read_s": 0.001,
        }  # fmt: skip

    header = {"run": {"machine": {"cpus": 2, "commit": "abc", "versions": {}}, "config": {}}}
    pots = [row("acre", 256, True), row("acre", 256, False), row("acre", 512, True),
            row("streaming", 256, False), row("streaming", 512, True)]  # fmt: skip
    ablated = [row("acre", 1024, False, {"use_lexical": False})]
    for name, rows in [("potsizes", pots), ("ablation", ablated), ("accuracy", [row("acre", 1024, True)])]:
        lines = [header, *rows]
        (results / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    page = report.main(results, tmp_path / "docs").read_text()
    assert "| acre | 256 | 1/2 [9–91%] |" in page and "| acre | 512 | 1/1 [21–100%] |" in page
    assert "| streaming | 256 | 0/1 [0–79%] |" in page and "| streaming | 512 | 1/1 [21–100%] |" in page
    assert "| acre (all parts on) | 1/1 [" in page and "| acre [use_lexical=False] | 0/1 [" in page
    assert (tmp_path / "docs" / "plots" / "accuracy_vs_pot.png").stat().st_size > 1000


def test_a_suite_subset_runs_acre_and_peers_on_the_same_cases_and_the_report_tables_it(tiny_bundle, tmp_path):
    """A small subset of the suite (benchmarks/suite.sh) on the tiny model: it must not break silently."""
    results = tmp_path / "results"
    header, cases = run_harness(
        tiny_bundle, results, "suite", "--engine", "torch", "--tasks", "single", "twohop", "--policies",
        "acre", "bm25", "nocontext", "--lengths", "300", "--cases", "2", "--seed", "3", timeout=900,
    )  # fmt: skip
    assert header["config"]["cases"] == 2 and header["config"]["split"] == "dev"
    assert len(cases) == 2 * 3 * 2 and all("correct" in c for c in cases), cases
    tokenizer = make_tokenizer()
    for family in ("single", "twohop"):
        rows = [c for c in cases if c["family"] == family]
        # every policy got the very same cases, and each is made again from what its line records
        assert len({(c["seed"], c["question"], c["depth"]) for c in rows}) == 2
        for c in rows:
            again = make_case(tokenizer, family, 300, c["depth"], c["seed"], c["haystack"])
            assert again.question == c["question"] and again.answers == c["answers"]
    for c in cases:
        assert isinstance(c["evidence_shown"], bool) and c["split"] == "dev"
        if c["policy"] == "bm25":
            assert 0 < c["retrieved_tokens"] <= c["retrieved_budget"] == 64  # the tiny pot's refill region
        if c["policy"] == "acre":
            assert c["spans"] and isinstance(c["evidence_refilled"], bool)
        if c["policy"] == "nocontext":
            assert not c["evidence_shown"] and c["document_tokens"] < 10
    page = report.main(results, tmp_path / "docs").read_text()
    assert "### dev split: every family together" in page and "**twohop**" in page
    assert "By the kind of answer" in page  # the single family, per kind
    acre = sum(c["correct"] for c in cases if c["policy"] == "acre")
    assert f"| acre | {acre}/4 [" in page and "| bm25 | " in page and "| nocontext | " in page
    assert "--tasks single twohop --policies acre bm25 nocontext" in page  # the command, as run
    misses = [c for c in cases if c["policy"] == "acre" and not c["correct"]]
    lost = sum(not c["evidence_shown"] for c in misses if c["family"] == "single")
    assert any(line.startswith("| single | 300 | ") and f" | {lost} | " in line for line in page.splitlines())


def test_the_questions_of_one_document_share_an_ingest_and_answer_as_if_asked_alone(tiny_bundle, tmp_path):
    from acre.runtime.session import Session

    results = tmp_path / "results"
    _, cases = run_harness(
        tiny_bundle, results, "suite", "--engine", "torch", "--tasks", "questions",
        "--policies", "acre", "bm25", "--lengths", "300", "--cases", "3", timeout=900,
    )  # fmt: skip
    acre = [c for c in cases if c["policy"] == "acre"]
    assert [c["asked_before"] for c in acre] == [False, True, True]
    bm25 = [c for c in cases if c["policy"] == "bm25"]  # a peer's text is its question's retrieval
    assert not bm25[0]["asked_before"]
    for before, c in zip(bm25, bm25[1:], strict=False):
        assert c["asked_before"] == (c["retrieved_chunks"] == before["retrieved_chunks"])
    case = make_case(
        make_tokenizer(), "questions", 300, acre[2]["depth"], acre[2]["seed"], acre[2]["haystack"]
    )
    assert case.question == acre[2]["question"]
    alone = Session(tiny_bundle, engine="torch")
    alone.ingest(case.document)
    reply = "".join(alone.ask(case.question, max_new_tokens=case.reply_tokens))
    assert reply == acre[2]["reply"] and alone.last.spans == acre[2]["spans"]
    page = report.main(results, tmp_path / "docs").read_text()
    found = sum(c["correct"] for c in acre)
    assert "**questions**: three facts" in page and f"| acre | {found}/3 [" in page


def test_wilson_intervals_match_the_formula_and_stay_inside_zero_and_one():
    from benchmarks.report import share, wilson

    assert [round(x, 4) for x in wilson(0, 10)] == [0.0, 0.2775]
    assert [round(x, 4) for x in wilson(5, 10)] == [0.2366, 0.7634]
    assert [round(x, 4) for x in wilson(10, 10)] == [0.7225, 1.0]
    assert [round(x, 4) for x in wilson(24, 30)] == [0.6269, 0.905]
    assert share(24, 30) == "24/30 [63–90%]"
    lo, hi = wilson(15, 30)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9  # symmetric at one half


def test_the_engine_section_pairs_the_very_cases_and_counts_the_shipped_programs_share(tmp_path):
    from benchmarks.report import engine_section

    def row(engine: str, seed: int, correct: bool, spans: list[int], **extra: object) -> dict:
        return {"family": "single", "length": 2000, "split": "dev", "seed": seed, "policy": "acre",
                "engine": engine, "correct": correct, "spans": spans, **extra}  # fmt: skip

    config = {"bundle": "b", "engine": "torch", "tasks": ["single"], "policies": ["acre"], "lengths": [2000],
              "cases": 3, "split": "dev", "seed": 0, "name": "e"}  # fmt: skip
    header = {"run": {"config": config, "machine": {"cpus": 2, "commit": "abc", "versions": {}}}}
    eager = [row("torch", 1, True, [1]), row("torch", 2, True, [2]), row("torch", 3, False, [3]),
             row("torch", 4, True, [4])]  # fmt: skip
    switched = row("executorch", 1, False, [1], switches={"x": 1})
    shipped = [row("executorch", 1, True, [1]), row("executorch", 2, False, [5]),
               row("executorch", 3, True, [3]), switched]  # fmt: skip
    for name, rows in (("suite_eager", eager), ("suite", shipped)):
        lines = [header, *rows]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    text = engine_section(tmp_path)
    single = next(line for line in text.splitlines() if line.startswith("| single |"))
    # seeds 1-3 pair (4 has no shipped row, the switched row is not acre's own); eager found 1 and 2,
    # the program kept 1 of them; seeds 1 and 3 refilled the same spans, and there it kept 1 of 1
    assert single.startswith("| single | 3 | 2/3 [") and "| 2/3 [" in single
    assert " | 1/2 [" in single and single.endswith("| 2 | 1/1 [21–100%] |"), single
    assert engine_section(tmp_path, eager="absent") == ""
