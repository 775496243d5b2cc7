"""The memory profile: what a session holds in RAM, keeps on flash and reads per question."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from typing import Any

from acre.budget import slot_bytes
from acre.errors import InputError
from acre.haystack import passkey_document
from acre.memory import SessionShape, fit_pot, peak_resident_bytes, predict, resident_bytes
from acre.runtime.session import Session


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
        "peak_rss_bytes": peak_resident_bytes(),
    }


def session_shape(session: Session) -> SessionShape:
    return SessionShape(
        geometry=session.geometry,
        pot_slots=session.pot.capacity,
        kv_dtype=session.bundle.kv_dtype,
        chunk=session.chunk,
        span_tokens=session.span_tokens,
        reps=session.reps,
        probe_layers=len(session.probe_layers),
        refill_slots=session.layout.refill,
        reuse=session.policy.refill_mode == "reuse",
    )


def open_measured(bundle: Any, engine: str = "auto", policy: str = "acre") -> tuple[Session, int, int]:
    """A session, with what the runtime and the program hold before any document: the program is
    measured after one prefill step (the backend allocates its workspace on the first run)."""
    runtime = resident_bytes()
    session = Session(bundle, engine=engine, policy=policy)
    session._step([0] * session.chunk, 0)  # reads the empty pot: its pages stay unwritten, not resident
    return session, runtime, resident_bytes() - runtime


def footprint(bundle: Any, engine: str = "auto") -> dict[str, Any]:
    """What the runtime and the program hold before any document, with the session's shape: the
    exporter runs this in a fresh interpreter to fit a budget (acre/exporter/fit.py)."""
    session, runtime, program = open_measured(bundle, engine)
    shape = asdict(session_shape(session))
    return {"runtime": runtime, "program": program, "shape": shape}


def measure(
    bundle: Any,
    tokens: int,
    engine: str = "auto",
    policy: str = "acre",
    question: str = "What is the pass key?",
) -> dict[str, Any]:
    """Predict the peak RSS for a synthetic `tokens`-token document, then ingest it, ask one
    question, and measure: the prediction uses only what was known before the document."""
    session, runtime, program = open_measured(bundle, engine, policy)
    shape = session_shape(session)
    plan = predict(shape, runtime, program, tokens)
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
        predicted=plan.parts,
        predicted_peak_bytes=plan.total,
        measured={
            "runtime": runtime,
            "program": program,
            "pot": session.pot.nbytes,
            "span index": report["index_bytes"],
        },
        shape=shape,
    )
    return report


def whole_process_peak(report: dict[str, Any]) -> int:
    """What a budget is held to: the larger of the predicted and the measured peak."""
    return max(report["peak_rss_bytes"], report["predicted_peak_bytes"])


def budget_verdict(report: dict[str, Any], budget: int) -> str:
    """Whether the whole process fits `budget`, and if not, the pot that would (or the smallest budget)."""
    peak = whole_process_peak(report)
    if peak <= budget:
        return f"{_mib(budget)}: fits (peak {_mib(peak)}, predicted or measured, the larger)"
    measured = report["measured"]
    try:
        slots = fit_pot(
            report["shape"], measured["runtime"], measured["program"], report["document_tokens"], budget
        )
    except InputError as exc:  # no pot fits; it names the smallest budget
        return f"{_mib(budget)}: OVER by {_mib(peak - budget)}; {exc}"
    return (
        f"{_mib(budget)}: OVER by {_mib(peak - budget)}; a {slots:,}-slot pot would fit "
        f"(acre-export --budget {budget // 2**20}MB --tokens {report['document_tokens']})"
    )


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
    ]
    if "predicted" not in report:
        rows.append(("peak RSS (process)", _mib(report["peak_rss_bytes"])))
    else:
        rows.append(("whole process, predicted", _mib(report["predicted_peak_bytes"])))
        measured = report["measured"]
        for part, value in report["predicted"].items():
            seen = f" (measured {_mib(measured[part])})" if part in measured else ""
            rows.append((f"  {part}", _mib(value) + seen))
        error = report["predicted_peak_bytes"] / report["peak_rss_bytes"] - 1
        measured_peak = f"{_mib(report['peak_rss_bytes'])} (predicted {error:+.1%})"
        rows.append(("whole process, measured", measured_peak))
    if budget_bytes:
        rows.append(("budget (whole process)", budget_verdict(report, budget_bytes)))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
