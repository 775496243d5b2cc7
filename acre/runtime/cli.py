"""`acre`: ask questions about a long document with a bundle, and profile its memory."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acre.budget import parse_bytes
from acre.documents import read_document
from acre.errors import AcreError, InputError
from acre.logs import quiet_libraries
from acre.runtime.engines import ENGINES
from acre.runtime.policies import POLICIES

if TYPE_CHECKING:
    from acre.runtime.session import Session


def open_session(args: argparse.Namespace) -> Session:
    """A session with the document of --context (ingested, or reopened from --store) or --store."""
    from tqdm import tqdm

    from acre.runtime.session import Session

    if args.replace and not args.context:
        raise InputError("--replace needs --context FILE: the document to ingest in the store's place")
    if not (args.context or args.store):
        raise InputError("give --context FILE (or --store DIR of a document ingested before)")
    session = Session(args.bundle, engine=args.engine, policy=args.policy)
    if not args.context:
        n = session.open_document(args.store)
        print(f"opened {args.store}: {n:,} tokens, no re-ingest", file=sys.stderr)
        return session
    text = read_document(args.context)
    bar = tqdm(total=0, unit="tok", desc="ingest", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    n = session.ingest(text, store=args.store, progress=progress, replace=args.replace)
    bar.close()
    if session.resumed_from == n:
        print(f"{args.store} already holds this document: reopened, no re-ingest", file=sys.stderr)
    elif session.resumed_from:
        print(f"resumed an interrupted ingest at token {session.resumed_from:,}", file=sys.stderr)
    return session


def stream(pieces: Iterator[str]) -> float | None:
    """Print an answer as it streams; returns when its first piece came (seconds)."""
    started, first = time.perf_counter(), None
    for piece in pieces:
        first = first or time.perf_counter() - started
        print(piece, end="", flush=True)
    return first


def run(args: argparse.Namespace) -> int:
    from acre.runtime.profiler import format_profile, session_profile

    session = open_session(args)
    print(f"Q: {args.question}\nA: ", end="", flush=True)
    first = stream(session.ask(args.question, **sampling(args)))
    if args.sources:
        print("\n\n" + format_sources(session), end="")
    print(f"\n\nmemory profile (first answer token after {first or 0:.2f} s)")
    print(format_profile(session_profile(session)))
    return 0


def chat(args: argparse.Namespace) -> int:
    """Questions from standard input, one a line, each answered with the dialogue so far."""
    session = open_session(args)
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or not line.strip():
            return 0  # end of input, or an empty line
        question = line.strip()
        if not interactive:
            print(f"Q: {question}")
        pieces = session.chat(question, **sampling(args))
        try:
            first = next(pieces, "")  # the notices are known once the answer has begun
        except InputError as exc:  # this question cannot be asked; the dialogue goes on
            print(f"acre: error: {exc}", file=sys.stderr)
            continue
        for notice in session.last.notices:
            print(f"acre: {notice}", file=sys.stderr)
        print(f"A: {first}", end="", flush=True)
        stream(pieces)
        print()
        if args.sources:
            print(format_sources(session))
        print()


def sampling(args: argparse.Namespace) -> dict[str, Any]:
    return dict(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
    )


def format_sources(session: Session) -> str:
    """The passages the answer was made from, each with its character range in the document."""
    sources = session.last.sources
    if sources:
        lines = [f"sources ({len(sources)} passage{'s' if len(sources) > 1 else ''} of the document):"]
        for i, source in enumerate(sources, 1):
            lines.append(f"[{i}] characters {source.start:,}-{source.end:,}")
            lines += ["    " + line for line in source.text.splitlines()]
        return "\n".join(lines)
    if not session.policy.refill:
        return f"sources: none (policy {session.policy.name} refills no passages)"
    if session.source_map is None:
        return (
            "sources: unknown (this store keeps no document text: ingested from token ids or by an "
            "older acre; ingest it again with --context FILE --replace)"
        )
    return "sources: none (no passage of the document was refilled for this question)"


def profile(args: argparse.Namespace) -> int:
    from acre.runtime.profiler import format_profile, measure, whole_process_peak

    if args.tokens < 1:
        raise InputError("--tokens must be positive")
    budget = parse_bytes(args.budget) if args.budget else None
    report = measure(args.bundle, args.tokens, engine=args.engine, policy=args.policy)
    if args.json:
        report = {k: v for k, v in report.items() if k != "shape"} | {"budget_bytes": budget}
        print(json.dumps(report, indent=2))
    else:
        print(format_profile(report, budget))
    return 1 if budget is not None and whole_process_peak(report) > budget else 0


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    parser = argparse.ArgumentParser(prog="acre", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("bundle", type=Path, help="bundle directory written by acre-export")
    common.add_argument("--engine", default="auto", choices=["auto", *ENGINES])
    common.add_argument("--policy", default="acre", choices=list(POLICIES))
    document = argparse.ArgumentParser(add_help=False)
    document.add_argument(
        "--context",
        type=Path,
        help="the document: plain text (UTF-8), Markdown, HTML or PDF (by extension; PDFs by content too)",
    )
    document.add_argument(
        "--store",
        type=Path,
        help="directory for the document's L2: reopened if it holds this document, resumed if its "
        "ingest was interrupted; refused if it holds another document (see --replace)",
    )
    document.add_argument(
        "--replace",
        action="store_true",
        help="ingest --context into --store anew, replacing whatever document the store holds",
    )
    document.add_argument(
        "--sources", action="store_true", help="print the passages of the document the answer came from"
    )
    document.add_argument("--max-new-tokens", type=int, default=200)
    document.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    document.add_argument("--top-p", type=float, default=1.0)
    document.add_argument("--seed", type=int, default=None)
    p = sub.add_parser(
        "run", parents=[common, document], help="ingest a document and answer a question about it"
    )
    p.add_argument("--question", required=True)
    p.set_defaults(handler=run)
    p = sub.add_parser(
        "chat",
        parents=[common, document],
        help="a dialogue about a document: questions from standard input, one a line, with follow-ups",
    )
    p.set_defaults(handler=chat)
    p = sub.add_parser("profile", parents=[common], help="memory report for a document of N tokens")
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument(
        "--budget", help="RAM for the whole process, e.g. 300MB: does it fit, and if not, what pot would"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=profile)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except AcreError as exc:
        print(f"acre: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
