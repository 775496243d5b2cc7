"""Run one (task, policy, length) cell in this process and print a JSON line per case.

Started by `python -m benchmarks` in a fresh process per cell, so the peak RSS it reports belongs to
that cell alone. The old tasks (benchmarks/tasks.py) run one case per depth; the suite's families
(benchmarks/suite.py) run `--cases` cases of the `--split`, each recorded with what makes it again.
The RAG peers (benchmarks/rag.py) retrieve from the case's document, then the `full` policy answers
from what they retrieved.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from acre.errors import InputError
from acre.runtime.session import Session
from benchmarks import rag, suite
from benchmarks.tasks import TASKS, Case

HERE = Path(__file__).resolve().parent
LLAMACPP_PYTHON = HERE / ".llamacpp-venv" / "bin" / "python"  # built by benchmarks/setup_llamacpp.sh


def reset_peak_rss() -> None:
    """Forget the process's peak RSS so far (Linux): what follows is measured on its own."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--engine", default="auto")
    p.add_argument("--policy", default="acre")
    p.add_argument("--task", default="passkey")
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--depths", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    p.add_argument("--seed", type=int, default=0, help="old tasks: seed base; suite: the root of the seeds")
    p.add_argument("--cases", type=int, default=30, help="suite families: cases in the cell")
    p.add_argument("--split", default="dev", choices=suite.SPLITS, help="suite families: which cases")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the case's own budget")
    p.add_argument("--switch", action="append", default=[], help="policy switch name=value (ablations)")
    args = p.parse_args()
    switches = {}
    for item in args.switch:
        name, value = item.split("=")
        switches[name] = {"true": True, "false": False}.get(value, int(value) if value.isdigit() else value)
    # the llama.cpp anchor borrows the `full` session only for its prompt ids; the RAG peers answer
    # with it from what they retrieved
    peer = args.policy in rag.PEERS
    policy = "full" if args.policy == "llamacpp" or peer else args.policy
    session = Session(args.bundle, engine=args.engine, policy=policy, **switches)
    budget = rag.refill_budget(session.bundle, session.span_tokens)
    # The documents are built first, so the harness's own tokenizing is not in acre's peak RSS.
    if args.task in suite.FAMILIES:
        cases = suite.cell(session.tokenizer, args.task, args.length, args.cases, args.split, args.seed)
    else:
        cases = [
            TASKS[args.task](session.tokenizer, args.length, depth, seed=args.seed * 1000 + i)
            for i, depth in enumerate(args.depths)
        ]
    if args.policy == "llamacpp":
        run_llamacpp(session, cases, args)
        return
    reset_peak_rss()
    held: dict[str, Any] = {}  # the text ingested last, its store and what ingesting it cost
    for case in cases:
        depth = case.depth
        seen: dict[str, Any] = {}  # what the model was given in place of the document (peers)
        if peer:
            started = time.perf_counter()
            got = rag.retrieve(args.policy, case.document, case.question, session.tokenizer, budget)
            seen = {
                "retrieve_s": round(time.perf_counter() - started, 3),
                "retrieved_tokens": got.tokens,
                "retrieved_budget": budget,
                "retrieved_chunks": [[c.start, c.end] for c in got.chunks],
            }
        text = None if args.policy == "nocontext" else got.text if peer else case.document
        # several questions about one document (the questions family) are asked of one ingest
        asked_before = text is not None and text == held.get("text")
        if not asked_before:
            if "store" in held:
                held["store"].cleanup()
            held = {"text": text, "store": tempfile.TemporaryDirectory(prefix="acre-bench-")}
            store = held["store"].name
            started = time.perf_counter()
            try:
                if text is None:  # the template around an empty document
                    held["tokens"] = session.ingest_ids(template_lead(session), store=store)
                else:
                    held["tokens"] = session.ingest(text, store=store)
            except InputError as exc:  # e.g. the full policy where the document does not fit
                held["store"].cleanup()
                held = {}
                print(
                    json.dumps(
                        {
                            "task": args.task,
                            "policy": args.policy,
                            "length": args.length,
                            "depth": depth,
                            **(case.record() if case.seed is not None else {}),
                            "skipped": str(exc),
                        }
                    ),
                    flush=True,
                )
                continue
            held["ingest_s"] = time.perf_counter() - started
        tokens, ingest_s = held["tokens"], held["ingest_s"]
        started = time.perf_counter()
        pieces, first = [], None
        for piece in session.ask(case.question, max_new_tokens=args.max_new_tokens or case.reply_tokens):
            first = first or time.perf_counter() - started
            pieces.append(piece)
        total = time.perf_counter() - started
        reply = "".join(pieces)
        answer_tokens = len(session.tokenizer.encode(reply, add_special_tokens=False))
        if case.evidence:  # where a miss was lost: not shown to the model, or shown and misread
            shown = session.tokenizer.decode(session.prompt_ids)
            seen["evidence_shown"] = suite.shown(case.evidence, shown)
            if session.policy.refill:
                seen["evidence_refilled"] = suite.shown(case.evidence, refilled_text(session))
        record = {
            "task": args.task,
            "policy": args.policy,
            "switches": switches,
            "engine": session.engine.name,
            "length": args.length,
            "depth": depth,
            "document_tokens": tokens,
            "answer": case.answer,
            "reply": reply,
            "correct": case.correct(reply),
            **({"f1": round(case.f1(reply), 3)} if case.answers else {}),
            "asked_before": asked_before,  # the document was ingested for an earlier question
            "ingest_s": round(ingest_s, 2),
            "ingest_tok_s": round(tokens / ingest_s, 1),
            "first_token_s": round(first or total, 3),
            "decode_tok_s": round((answer_tokens - 1) / max(total - (first or total), 1e-9), 1)
            if answer_tokens > 1
            else None,
            "spans": session.last.spans,
            "l2_bytes_read": session.last.bytes_read,
            "l2_read_s": round(session.last.read_s, 6),
            "l2_disk_bytes": session.store.disk_bytes if session.store else 0,
            "index_bytes": session.index.nbytes if session.index else 0,
            "pot_bytes": session.pot.nbytes,
            "pot_slots": session.pot.capacity,
            "peak_rss_bytes": peak_rss_bytes(),  # since the reset: model loaded, documents built
            **(case.record() if case.seed is not None else {}),
            "question": case.question,
            **seen,
        }
        print(json.dumps(record), flush=True)
    if "store" in held:
        held["store"].cleanup()


def template_lead(session: Session) -> list[int]:
    """The prompt ids before the document: the chat template's prefix (or BOS)."""
    if session.prefix:
        return list(session.tokenizer.encode(session.prefix, add_special_tokens=False))
    return [session.tokenizer.bos_token_id]


def refilled_text(session: Session) -> str:
    """The document text of the spans acre refilled for the last question, adjacent ones joined."""
    store = session.store
    if store is None:
        return ""
    ranges: list[list[int]] = []
    for span in sorted(session.last.spans):
        start, end = int(store.starts[span]), int(store.starts[span] + store.lengths[span])
        if ranges and start <= ranges[-1][1]:
            ranges[-1][1] = end
        else:
            ranges.append([start, end])
    return "\n".join(session.tokenizer.decode(session.document_ids[a:b]) for a, b in ranges)


def gguf_of(session: Session) -> Path:
    """The GGUF the bundle was exported from: llama.cpp runs the very same weights."""
    from acre.exporter.checkpoint import BUILTIN, builtin_gguf

    source = session.bundle.manifest["model"]["source"]
    path = builtin_gguf() if source == BUILTIN else Path(source)
    if path.suffix != ".gguf" or not path.is_file():
        raise SystemExit(f"llamacpp: the bundle's model {source!r} is not a GGUF on this machine")
    return path


def run_llamacpp(session: Session, cases: list[Case], args: argparse.Namespace) -> None:
    """The outside anchor: llama.cpp, full attention on the same GGUF, fed the very token ids the
    `full` policy ingests (document, then question), with as many threads as torch uses here."""
    import torch

    if not LLAMACPP_PYTHON.is_file():
        raise SystemExit("llamacpp: run benchmarks/setup_llamacpp.sh first (builds llama-cpp-python)")
    with tempfile.TemporaryDirectory(prefix="acre-llamacpp-") as tmp:
        prompts, results = Path(tmp) / "prompts.jsonl", Path(tmp) / "results.jsonl"
        with prompts.open("w") as f:
            for i, case in enumerate(cases):
                ids = session.document_prompt_ids(case.document) + session.question_prompt_ids(case.question)
                f.write(json.dumps({"id": str(i), "prompt_ids": ids}) + "\n")
        threads = torch.get_num_threads()
        subprocess.run(
            [
                str(LLAMACPP_PYTHON),
                str(HERE / "llamacpp_anchor.py"),
                "--gguf",
                str(gguf_of(session)),
                "--prompts",
                str(prompts),
                "--out",
                str(results),
                "--threads",
                str(threads),
                "--n-ctx",
                str(session.geometry.window),
                "--max-new-tokens",  # llama.cpp stops at the end of turn as the others do
                str(args.max_new_tokens or max(case.reply_tokens for case in cases)),
            ],
            check=True,
            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},  # no spinning threads on a shared machine
        )
        outputs = [json.loads(line) for line in results.read_text().splitlines()]
    for case, out in zip(cases, outputs, strict=True):
        record: dict[str, Any] = {
            "task": args.task,
            "policy": "llamacpp",
            "engine": "llama.cpp",
            "threads": threads,
            "length": args.length,
            "depth": case.depth,
        }
        if "skipped" in out:
            record["skipped"] = f"{out['prompt_tokens']} tokens do not fit llama.cpp's n_ctx"
        else:
            reply = out["answer_text"]
            record.update(
                document_tokens=out["prompt_tokens"],
                answer=case.answer,
                reply=reply,
                correct=case.correct(reply),
                **({"f1": round(case.f1(reply), 3)} if case.answers else {}),
                # llama.cpp prefills document and question at once: its prefill is its ingest
                ingest_s=out["prefill_seconds"],
                ingest_tok_s=out["prefill_tok_s"],
                first_token_s=out["prefill_seconds"],
                decode_tok_s=out["decode_tok_s"],
                peak_rss_bytes=out["peak_rss_bytes"],  # the whole llama.cpp process, monotone
                rss_source="VmHWM",  # earlier rows took ru_maxrss, which exec inherits from the parent
            )
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
