"""Crash consistency of L2: ingest in a child process, SIGKILL it at a seeded random moment, then
check what the store serves, resume the ingest, and ask.

    python -m benchmarks.crash --trials 200        # writes benchmarks/results/crash.jsonl

Each trial checks three things against an uninterrupted reference run on the same document:
  1. no span is served that differs from the reference (a span either reads back byte-identical,
     or is refused by its checksum, or is not there); "served" is its ids (read_tokens), and its
     K/V too (read) where the store keeps them (--codec float16 or int8; the default keeps none);
  2. ingesting again resumes (from the last checkpoint, at most one step behind the last complete
     span with the checkpoint interval used here) and ends with spans.bin byte-identical;
  3. the question is answered with the reference's answer.
Runs on a tiny random-weight Llama with the eager engine (the store does not care which model
wrote it); tests/test_reliability.py runs a few trials of it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_TOKENS = 64  # checkpoint every span: resume from the last complete span


def tiny_bundle(out: Path) -> Path:
    from acre.exporter.export import export_bundle
    from tests.conftest import make_tiny_model, make_tokenizer

    tokenizer = make_tokenizer()
    model = make_tiny_model(len(tokenizer))
    model.save_pretrained(out / "ckpt")
    tokenizer.save_pretrained(out / "ckpt")
    return export_bundle(out / "bundle", [], str(out / "ckpt"), chunk=16, pot=256, signal_heads=[(0, 0)])


def document(n: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(20, 280, n).tolist()


QUESTION = [40, 41, 42, 43, 44, 45]


def _ingest(
    bundle: str, ids: list[int], store: str, conn: Any = None, started: Any = None, codec: str | None = None
) -> None:
    """Child: ingest (resuming if the store allows), then answer; report to `conn` if given, set
    `started` when the ingest itself begins."""
    import torch

    torch.set_num_threads(1)
    from acre.runtime.session import Session

    session = Session(bundle, engine="torch", checkpoint_tokens=CHECKPOINT_TOKENS, codec=codec)
    if started is not None:
        started.set()
    begin = time.perf_counter()
    session.ingest_ids(ids, store=store)
    seconds = time.perf_counter() - begin
    answer = list(session.generate(QUESTION, max_new_tokens=8))
    if conn is not None:
        conn.send({"resumed_from": session.resumed_from, "answer": answer, "ingest_seconds": seconds})
        conn.close()


def context() -> Any:
    ctx = mp.get_context("forkserver")  # children fork from a server that never ran torch
    ctx.set_forkserver_preload(["acre.runtime.session"])
    return ctx


def reference(ctx: Any, bundle: Path, ids: list[int], work: Path, codec: str | None) -> dict[str, Any]:
    store = work / "reference"
    result = _run(ctx, bundle, ids, store, codec)
    return {
        "spans": (store / "spans.bin").read_bytes(),
        "answer": result["answer"],
        "seconds": result["ingest_seconds"],
    }


def _run(ctx: Any, bundle: Path, ids: list[int], store: Path, codec: str | None) -> dict[str, Any]:
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_ingest, args=(str(bundle), ids, str(store), send, None, codec))
    child.start()
    send.close()
    result = receive.recv()
    child.join()
    return result


def served_spans(store: Path, reference_spans: bytes) -> dict[str, int]:
    """Read every span the store offers (its ids; its K/V too where it keeps them) and compare its
    record with the reference bytes."""
    from acre.runtime.l2 import SpanStore, StoreError

    if not (store / "store.json").is_file():
        return {"spans": 0, "refused": 0, "wrong": 0}
    opened = SpanStore.open(store)
    rb = opened.meta.record_bytes
    refused = wrong = 0
    fd = os.open(store / "spans.bin", os.O_RDONLY)
    for i in range(opened.span_count):
        try:
            start, _ = opened.read_tokens(i)
            if opened.meta.keeps_kv:
                opened.read(i)
        except StoreError:
            refused += 1
            continue
        raw = os.pread(fd, rb, i * rb)
        if raw != reference_spans[i * rb : (i + 1) * rb] or start != opened.starts[i]:
            wrong += 1
    count = opened.span_count
    os.close(fd)
    opened.close()
    return {"spans": count, "refused": refused, "wrong": wrong}


def trial(
    ctx: Any, bundle: Path, ids: list[int], ref: dict[str, Any], delay: float, work: Path, codec: str | None
) -> dict[str, Any]:
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    started = ctx.Event()
    child = ctx.Process(target=_ingest, args=(str(bundle), ids, str(store), None, started, codec))
    child.start()
    started.wait(timeout=120)
    time.sleep(delay)
    child.kill()  # SIGKILL: no cleanup, no flush
    child.join()
    killed = child.exitcode == -9
    after_kill = served_spans(store, ref["spans"])
    resumed = _run(ctx, bundle, ids, store, codec)
    same_spans = (store / "spans.bin").read_bytes() == ref["spans"]
    return {
        "delay_s": round(delay, 4),
        "killed_mid_ingest": killed,
        "spans_after_kill": after_kill["spans"],
        "refused_after_kill": after_kill["refused"],
        "wrong_spans_served": after_kill["wrong"],
        "resumed_from_token": resumed["resumed_from"],
        "spans_identical_after_resume": same_spans,
        "answer_matches": resumed["answer"] == ref["answer"],
    }


def run_trials(
    bundle: Path, trials: int, seed: int, tokens: int, work: Path, codec: str | None = None
) -> tuple[dict, list[dict]]:
    ctx = context()
    ids = document(tokens, seed)
    ref = reference(ctx, bundle, ids, work, codec)
    rng = np.random.default_rng(seed)
    span_tokens = 64
    results = []
    for _ in range(trials):
        result = trial(ctx, bundle, ids, ref, float(rng.uniform(0, ref["seconds"] * 1.1)), work, codec)
        spans = result["spans_after_kill"]
        behind = result["resumed_from_token"]
        # resumed at most one checkpoint interval before the last complete span on disk
        result["resumed_near_last_span"] = (
            behind is None or behind >= spans * span_tokens - CHECKPOINT_TOKENS - 16
        )
        results.append(result)
    header = {"tokens": tokens, "seed": seed, "trials": trials, "codec": codec or "session default"}
    header["reference_seconds"] = round(ref["seconds"], 3)
    return header, results


def summary(results: list[dict]) -> dict[str, int]:
    return {
        "trials": len(results),
        "killed_mid_ingest": sum(r["killed_mid_ingest"] for r in results),
        "resumed_from_checkpoint": sum(r["resumed_from_token"] not in (None, 0) for r in results),
        "wrong_spans_served": sum(r["wrong_spans_served"] for r in results),
        "refused_spans": sum(r["refused_after_kill"] for r in results),
        "spans_identical_after_resume": sum(r["spans_identical_after_resume"] for r in results),
        "answers_matching": sum(r["answer_matches"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument(
        "--codec", choices=["none", "float16", "int8"], help="L2 codec (default: the session's)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "crash.jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="acre-crash-") as tmp:
        work = Path(tmp)
        bundle = tiny_bundle(work)
        started = time.perf_counter()
        header, results = run_trials(bundle, args.trials, args.seed, args.tokens, work, args.codec)
    header.update(summary(results), seconds=round(time.perf_counter() - started, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        f.write(json.dumps({"run": header}) + "\n")
        for r in results:
            f.write(json.dumps(r) + "\n")
    print(json.dumps(header, indent=2))


if __name__ == "__main__":
    main()
