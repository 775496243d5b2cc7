"""The JVM tests' fixture: the tests' tiny random-weight Llama exported as a `.pte` bundle, and what the
Python session answers on it (the ids the Java session must give token for token).

    python native/jni/tests/make_fixture.py OUT [TEMPLATES]

writes OUT/bundle (exported once, reused while it exists), OUT/python.l2 (the store the Python session
ingested OUT/document.txt into, for the Java session to reopen), OUT/unicode.txt (a document of
non-ASCII text), OUT/templates.rendered.txt (Python's split of each chat template in TEMPLATES, which
KnownTemplates.java wrote) and OUT/document.expected.txt and OUT/unicode.expected.txt, a line each:
    fingerprint HEX | tokens N | question TEXT | answer IDS | prompt IDS | spans IDS | sources S:E,...
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
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
# characters of two, three and four UTF-8 bytes (four: two UTF-16 units in Java), for the sources' offsets
UNICODE_COLORS = [
    "rouge \U0001f7e5",
    "vert \U0001f7e9",
    "bleu \u2192",
    "jaune \u00e9t\u00e9",
    "\u767d",
    "noir",
]
UNICODE_DOCUMENT = "".join(
    f"Note {i}: la bo\u00eete {UNICODE_COLORS[i % 6]} sur l'\u00e9tag\u00e8re {i * 7 % 13} "
    f"a {1000 + 37 * i} pi\u00e8ces.\n"
    for i in range(40)
)
UNICODE_QUESTIONS = ["Combien de pi\u00e8ces a la bo\u00eete vert \U0001f7e9 sur l'\u00e9tag\u00e8re 9 ?"]
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


def render_templates(bundle: Path, known: Path, rendered: Path) -> None:
    """Python's split of each template libacre_jni knows (KnownTemplates.java wrote them, escaped, a line
    each): the prefix and the suffix, escaped the same way, two lines per template."""
    from acre.runtime.session import split_chat_template
    from acre.runtime.tokenizer import BundleTokenizer

    def unescape(line: str) -> str:
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), line)

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(bundle / "tokenizer" / "tokenizer.json", tmp)
        shutil.copy(bundle / "tokenizer" / "tokenizer_config.json", tmp)
        for line in known.read_text(encoding="utf-8").splitlines():
            Path(tmp, "chat_template.jinja").write_text(unescape(line), encoding="utf-8")
            lines += [escape(part) for part in split_chat_template(BundleTokenizer(tmp))]
    rendered.write_text("\n".join(lines) + "\n", encoding="utf-8")


def answer(session, name: str, document: str, store: Path | None, questions: list[str], out: Path) -> None:
    """Ingest `document`, answer `questions` greedily, write OUT/NAME.txt (the document) and
    OUT/NAME.expected.txt."""
    (out / f"{name}.txt").write_text(document, encoding="utf-8")
    lines = [f"fingerprint {session.fingerprint}"]
    lines.append(f"tokens {session.ingest(document, store=store)}")
    for question in questions:
        ids = list(session.generate(session.question_prompt_ids(question), MAX_NEW_TOKENS))
        lines.append(f"question {question}")
        lines.append("answer " + " ".join(map(str, ids)))
        lines.append("prompt " + " ".join(map(str, session.prompt_ids)))
        lines.append("spans " + " ".join(map(str, session.last.spans)))
        # character offsets as Python's str counts them (code points)
        lines.append("sources " + " ".join(f"{s.start}:{s.end}" for s in session.last.sources))
    if session.store is not None:
        session.store.close()
    (out / f"{name}.expected.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    bundle = export(out)
    if len(sys.argv) > 2:  # the templates libacre_jni knows
        render_templates(bundle, Path(sys.argv[2]), out / "templates.rendered.txt")
    from acre.runtime.session import Session

    store = out / "python.l2"
    shutil.rmtree(store, ignore_errors=True)
    session = Session(bundle, engine="executorch")
    answer(session, "document", DOCUMENT, store, QUESTIONS, out)
    answer(session, "unicode", UNICODE_DOCUMENT, None, UNICODE_QUESTIONS, out)


if __name__ == "__main__":
    main()
