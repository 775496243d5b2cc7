"""The memory profile: what a session holds in RAM, keeps on flash and reads per question."""

from __future__ import annotations

import resource
import tempfile
import time
from typing import Any

from acre.budget import slot_bytes
from acre.haystack import passkey_document
from acre.runtime.session import Session


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def session_profile(session: Session) -> dict[str, Any]:
    layout = session.layout
    program = session.bundle.programs.get(session.engine.name, {}).get("file")
    return {
        "engine": session.engine.name,
        "policy": session.policy.name,
        "pot_slots": session.pot.capacity,
        "pot_regions": {
            "sink": layout.sink,
            "l1": layout.l1,
            "recent": layout.recent,
            "refill": layout.refill,
            "question": layout.question,
        },
        "pot_bytes": session.pot.nbytes,
        "slot_bytes": slot_bytes(session.geometry, session.bundle.kv_dtype),
        "index_bytes": session.index.nbytes if session.index else 0,
        "document_tokens": len(session.document_ids),
        "l2_disk_bytes": session.store.disk_bytes if session.store else 0,
        "l2_bytes_read_last_question": session.last.bytes_read,
        "l2_read_seconds_last_question": round(session.last.read_s, 6),
        "spans_refilled_last_question": len(session.last.spans),
        "program_bytes": (session.bundle.root / program).stat().st_size if program else 0,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def measure(session: Session, tokens: int, question: str = "What is the pass key?") -> dict[str, Any]:
    """Ingest a synthetic `tokens`-token document, ask one question, and profile the session."""
    document = passkey_document(session.tokenizer, tokens, 0.5, "72904")
    with tempfile.TemporaryDirectory(prefix="acre-profile-") as store:
        started = time.perf_counter()
        n = session.ingest(document, store=store)
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        answer = "".join(session.ask(question, max_new_tokens=16))
        report = session_profile(session)
    report.update(
        ingest_tok_s=round(n / ingest_s, 1),
        answer_s=round(time.perf_counter() - started, 2),
        answer=answer,
        answer_correct="72904" in answer,
    )
    return report


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def format_profile(report: dict[str, Any], budget_bytes: int | None = None) -> str:
    regions = ", ".join(f"{k} {v}" for k, v in report["pot_regions"].items() if v)
    rows = [
        ("engine / policy", f"{report['engine']} / {report['policy']}"),
        (
            "document",
            f"{report['document_tokens']:,} tokens"
            + (f", ingested at {report['ingest_tok_s']:,} tok/s" if "ingest_tok_s" in report else ""),
        ),
        (
            "pot (RAM, fixed)",
            f"{report['pot_slots']:,} slots x {report['slot_bytes']:,} B = {_mib(report['pot_bytes'])}"
            f" ({regions})",
        ),
        ("span index (RAM)", _mib(report["index_bytes"])),
        ("L2 on flash", _mib(report["l2_disk_bytes"])),
        (
            "L2 read, last question",
            f"{report['l2_bytes_read_last_question']:,} B ({report['spans_refilled_last_question']} spans)"
            f" in {report.get('l2_read_seconds_last_question', 0) * 1e3:.2f} ms",
        ),
        ("program file", _mib(report["program_bytes"]) if report["program_bytes"] else "eager (torch)"),
        ("peak RSS (process)", _mib(report["peak_rss_bytes"])),
    ]
    if budget_bytes:
        verdict = "fits" if report["pot_bytes"] <= budget_bytes else "OVER"
        rows.append(("budget (pot)", f"{_mib(budget_bytes)}: pot {verdict}"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
