"""Speed against llama.cpp in one run (issue 17): `bash benchmarks/speed.sh`.

One document (the shipped haystacks, fiction + wikipedia + python docs, cut to each length in
tokens) and one question. acre ingests the document, answers, and decodes exactly --new-tokens
tokens; llama.cpp (full attention, the same GGUF, the same token ids) prefills document + question
and decodes as many, where they fit its window. Each (engine, length) runs in a process of its own,
one after the other, so peak RSS is its own and no two runs share the 2 cores.

    python -m benchmarks.speed run --bundle build/smollm2-android --length 2000   # one acre row
    python -m benchmarks.speed llamacpp --bundle build/smollm2-android --length 2000
    python -m benchmarks.speed report benchmarks/results/speed.jsonl              # the ratios
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.run_case import LLAMACPP_PYTHON, gguf_of, peak_rss_bytes

HERE = Path(__file__).resolve().parent
HAYSTACKS = ("fiction.txt", "wikipedia.txt", "python-docs.txt")
QUESTION = "What is this document about? Answer in three sentences."


def document_ids(session: Any, length: int) -> list[int]:
    """The document prompt (template prefix + text) cut to `length` tokens."""
    text = "\n\n".join((HERE / "data" / "haystacks" / name).read_text() for name in HAYSTACKS)
    ids = session.document_prompt_ids(text)
    if len(ids) < length:
        raise SystemExit(f"the shipped haystacks hold {len(ids)} tokens, fewer than {length}")
    return ids[:length]


def run_acre(args: argparse.Namespace) -> dict[str, Any]:
    from acre.runtime.session import Session

    session = Session(args.bundle, engine=args.engine)
    ids = document_ids(session, args.length)
    with tempfile.TemporaryDirectory(prefix="acre-speed-") as store:
        started = time.perf_counter()
        session.ingest_ids(ids, store=store)
        ingest_s = time.perf_counter() - started
        flash = sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file())
        question = session.question_prompt_ids(QUESTION)
        core = getattr(session.engine, "core", None)  # the ExecuTorch engine counts its calls
        methods = session.bundle.manifest["programs"].get("executorch", {}).get("methods", {})
        before = {name: core.calls(rows) for name, rows in methods.items()} if core else {}
        started = time.perf_counter()
        tokens = session.generate(question, max_new_tokens=args.new_tokens + 1, stop_at_eos=False)
        next(tokens)
        first_s = time.perf_counter() - started
        # the steps the first answer token took, by method: where its time goes
        first_calls = {name: core.calls(methods[name]) - n for name, n in before.items()} if core else {}
        started = time.perf_counter()
        decoded = sum(1 for _ in tokens)
        decode_s = time.perf_counter() - started
    return {
        "engine": session.engine.name,
        "pot": session.pot.capacity,
        "ingest_tok_s": round(len(ids) / ingest_s, 1),
        "first_token_s": round(first_s, 3),
        "first_token_calls": first_calls,
        "question_tokens": len(question),
        "decode_tokens": decoded,
        "decode_tok_s": round(decoded / decode_s, 1),
        "flash_bytes_per_token": round(flash / len(ids), 1),
        "refilled_spans": len(session.last.spans),
    }


def run_llamacpp(args: argparse.Namespace) -> dict[str, Any]:
    from acre.runtime.session import Session

    if not LLAMACPP_PYTHON.is_file():
        raise SystemExit("llamacpp: run benchmarks/setup_llamacpp.sh first (builds llama-cpp-python)")
    session = Session(
        args.bundle, engine="torch" if args.engine == "auto" else args.engine, policy="streaming"
    )
    ids = document_ids(session, args.length) + session.question_prompt_ids(QUESTION)
    threads = args.threads
    with tempfile.TemporaryDirectory(prefix="acre-llamacpp-") as tmp:
        prompts, results = Path(tmp) / "prompts.jsonl", Path(tmp) / "results.jsonl"
        prompts.write_text(json.dumps({"id": "speed", "prompt_ids": ids}) + "\n")
        command = [str(LLAMACPP_PYTHON), str(HERE / "llamacpp_anchor.py"), "--gguf", str(gguf_of(session))]
        command += ["--prompts", str(prompts), "--out", str(results), "--threads", str(threads)]
        command += ["--n-ctx", str(session.geometry.window), "--max-new-tokens", str(args.new_tokens + 1)]
        del session  # llama.cpp runs alone: free acre's model first
        subprocess.run([*command, "--ignore-eos"], check=True)
        out = json.loads(results.read_text().splitlines()[0])
    if "skipped" in out:
        return {"engine": "llama.cpp", "skipped": f"{len(ids)} tokens do not fit its window"}
    return {
        "engine": "llama.cpp",
        "ingest_tok_s": out["prefill_tok_s"],  # prefill of document + question, to the first token
        "first_token_s": out["prefill_seconds"],
        "decode_tokens": out["decode_tokens"],
        "decode_tok_s": out["decode_tok_s"],
        "peak_rss_bytes": out["peak_rss_bytes"],
        "loadavg_1m": out["loadavg_1m"],
    }


def report(path: Path) -> str:
    """The latest run's rows and the ratios the issue asks for."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    run = rows[-1]["run"]
    rows = [r for r in rows if r["run"] == run]
    by = {(r["engine"] != "llama.cpp", r["length"]): r for r in rows if "skipped" not in r}
    lines = [
        f"run {run}",
        "| engine | tokens | ingest tok/s | first token s | its steps | decode tok/s | peak RSS MiB "
        "| flash B/token |",
    ]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['engine']} | {r['length']} | {r['skipped']} | | | | | |")
            continue
        rss = r.get("peak_rss_bytes", 0) / 2**20
        flash = r.get("flash_bytes_per_token", "")
        steps = ", ".join(f"{name} {n}" for name, n in r.get("first_token_calls", {}).items() if n)
        lines.append(
            f"| {r['engine']} | {r['length']} | {r['ingest_tok_s']} | {r['first_token_s']} | {steps} | "
            f"{r['decode_tok_s']} | {rss:.0f} | {flash} |"
        )
    for length in sorted({n for _, n in by}):
        acre, llama = by.get((True, length)), by.get((False, length))
        if acre and llama:
            lines.append(
                f"{length} tokens: decode {acre['decode_tok_s'] / llama['decode_tok_s']:.2f}x llama.cpp, "
                f"ingest {acre['ingest_tok_s'] / llama['ingest_tok_s']:.2f}x its prefill, "
                f"peak RSS {acre['peak_rss_bytes'] / llama['peak_rss_bytes']:.2f}x"
            )
    acre_rows = sorted((n, r) for (is_acre, n), r in by.items() if is_acre)
    if len(acre_rows) > 1:
        (n0, first), (n1, last) = acre_rows[0], acre_rows[-1]
        lines.append(
            f"acre {n1} vs {n0} tokens: decode {last['decode_tok_s'] / first['decode_tok_s']:.2f}x, "
            f"ingest {last['ingest_tok_s'] / first['ingest_tok_s']:.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("run", "llamacpp", "report"))
    p.add_argument("results", nargs="?", default=str(HERE / "results" / "speed.jsonl"))
    p.add_argument("--bundle", default="build/smollm2-android")
    p.add_argument("--engine", default="auto")
    p.add_argument("--length", type=int, default=2000)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--run", default=time.strftime("%Y-%m-%dT%H:%M:%S"), help="groups the rows of one run")
    args = p.parse_args()
    if args.what == "report":
        print(report(Path(args.results)))
        return
    record = run_acre(args) if args.what == "run" else run_llamacpp(args)
    record = {"run": args.run, "length": args.length, "load_1m": os.getloadavg()[0], **record}
    record.setdefault("peak_rss_bytes", peak_rss_bytes())
    with open(args.results, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record), file=sys.stderr)


if __name__ == "__main__":
    main()
