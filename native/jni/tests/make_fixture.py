"""The JVM tests' fixture: the tests' tiny random-weight Llama exported as a `.pte` bundle, and what the
Python session answers on it (the ids the Java session must give token for token).

    python native/jni/tests/make_fixture.py OUT

writes OUT/bundle (exported once, reused while it exists), OUT/document.txt, OUT/python.l2 (the store
the Python session ingested it into, for the Java session to reopen) and OUT/expected.txt, a line each:
    fingerprint HEX | tokens N | question TEXT | answer IDS | prompt IDS | spans IDS | sources S:E,...
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository: tests.conftest

from tests.conftest import TINY_CHUNK, TINY_POT, make_tiny_model, make_tokenizer  # noqa: E402

COLORS = ["red", "green", "blue", "yellow", "white", "black", "grey", "brown"]
# the same document as tests/test_session.py's sources tests, long enough for spans to be refilled
DOCUMENT = "".join(
    f"Note {i}: the {COLORS[i % 8]} box on shelf {i * 7 % 13} holds {1000 + 37 * i} coins.\n"
    for i in range(40)
)
QUESTIONS = ["How many coins does the box on shelf 9 hold?", "What is the pass key?", "Which box is grey?"]
MAX_NEW_TOKENS = 12


def export(out: Path) -> Path:
    bundle = out / "bundle"
    if (bundle / "manifest.json").is_file():
        return bundle
    from acre.exporter.export import export_bundle

    checkpoint = out / "checkpoint"
    tokenizer = make_tokenizer()
    make_tiny_model(len(tokenizer)).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    shutil.rmtree(out / "bundle.tmp", ignore_errors=True)
    export_bundle(
        out / "bundle.tmp", ["android"], str(checkpoint), chunk=TINY_CHUNK, pot=TINY_POT, quantize="fp32"
    )
    (out / "bundle.tmp").rename(bundle)
    return bundle


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    bundle = export(out)
    from acre.runtime.session import Session, bundle_fingerprint

    store = out / "python.l2"
    shutil.rmtree(store, ignore_errors=True)
    session = Session(bundle, engine="executorch")
    (out / "document.txt").write_text(DOCUMENT, encoding="utf-8")
    lines = [f"fingerprint {bundle_fingerprint(session.bundle)}"]
    lines.append(f"tokens {session.ingest(DOCUMENT, store=store)}")
    for question in QUESTIONS:
        ids = list(session.generate(session.question_prompt_ids(question), MAX_NEW_TOKENS))
        lines.append(f"question {question}")
        lines.append("answer " + " ".join(map(str, ids)))
        lines.append("prompt " + " ".join(map(str, session.prompt_ids)))
        lines.append("spans " + " ".join(map(str, session.last.spans)))
        lines.append("sources " + " ".join(f"{s.start}:{s.end}" for s in session.last.sources))
    session.store.close()
    (out / "expected.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
