"""`acre`: ask questions about a long document with a bundle."""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from acre.errors import AcreError, InputError
from acre.runtime.engines import ENGINES


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def read_document(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"{path}: context file not found")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc})") from exc


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from acre.runtime.session import Session

    text = read_document(args.context)
    session = Session(args.bundle, engine=args.engine, policy=args.policy)
    bar = tqdm(total=0, unit="tok", desc="ingest", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    started = time.perf_counter()
    n = session.ingest(text, progress=progress)
    bar.close()
    ingest_s = time.perf_counter() - started
    print(f"Q: {args.question}\nA: ", end="", flush=True)
    started, first = time.perf_counter(), None
    for piece in session.ask(
        args.question,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
    ):
        first = first or time.perf_counter() - started
        print(piece, end="", flush=True)
    answer_s = time.perf_counter() - started
    print()
    program = session.bundle.root / session.bundle.programs.get(session.engine.name, {}).get("file", "")
    rows = [
        ("engine / policy", f"{session.engine.name} / {session.policy}"),
        ("document", f"{n} tokens, ingested at {n / ingest_s:.0f} tok/s"),
        ("first answer token", f"{(first or answer_s):.2f} s after the question"),
        (
            "pot (RAM)",
            f"{session.pot.capacity} slots, {session.pot.nbytes / 2**20:.1f} MiB ({session.bundle.kv_dtype})",
        ),
        (
            "program file",
            f"{program.stat().st_size / 2**20:.1f} MiB" if program.is_file() else "eager (torch)",
        ),
        ("peak RSS", f"{peak_rss_bytes() / 2**20:.0f} MiB"),
    ]
    print("\nmemory profile")
    for name, value in rows:
        print(f"  {name:<20} {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acre", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="ingest a document and answer a question about it")
    p.add_argument("bundle", type=Path, help="bundle directory written by acre-export")
    p.add_argument("--context", type=Path, required=True, help="UTF-8 text file with the document")
    p.add_argument("--question", required=True)
    p.add_argument("--engine", default="auto", choices=["auto", *ENGINES])
    p.add_argument("--policy", default="full", choices=["full"])
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AcreError as exc:
        print(f"acre: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
