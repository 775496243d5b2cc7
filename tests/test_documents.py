"""Documents in: plain text, Markdown, HTML and PDF to text, and the files that cannot be read."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from acre.documents import html_text, markdown_text, read_document
from acre.errors import DocumentError, InputError

FIXTURES = Path(__file__).parent / "fixtures" / "documents"
TWIN = (FIXTURES / "twin.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["twin.pdf", "twin.html", "twin.md"])
def test_pdf_html_and_markdown_read_as_their_plain_text_twin(name):
    assert read_document(FIXTURES / name) == TWIN


def test_the_twin_pdf_has_its_text_on_two_pages():
    from pypdf import PdfReader

    pages = PdfReader(FIXTURES / "twin.pdf").pages
    assert len(pages) == 2 and "48213" not in pages[0].extract_text() and "48213" in pages[1].extract_text()


def test_plain_text_is_kept_exactly(tmp_path):
    text = "  Indented line\r\nTwo  spaces,\ttab.\n\n\n\nCafé — end  \n"
    (tmp_path / "doc.txt").write_bytes(text.encode("utf-8"))
    assert read_document(tmp_path / "doc.txt") == text
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_document(tmp_path / "bom.txt") == text  # the byte-order mark is not text


def test_a_pdf_is_known_by_its_content_whatever_its_name(tmp_path):
    shutil.copy(FIXTURES / "twin.pdf", tmp_path / "report")
    assert read_document(tmp_path / "report") == TWIN


def test_html_shows_only_visible_text():
    html = (
        "<html><head><title>T</title><style>b{}</style></head><body><p>One &amp; two<br>three</p>"
        "<script>var x = '<p>no</p>';</script><ul><li>a</li><li>b</li></ul><pre>keep</pre></body></html>"
    )
    assert html_text(html) == "One & two\n\nthree\n\na\n\nb\n\nkeep\n"


def test_markdown_loses_its_markup():
    assert markdown_text("# Title\n\nSome *emphasis* and `code`.\n\n- item\n") == (
        "Title\n\nSome emphasis and code.\n\nitem\n"
    )


def test_html_in_a_declared_charset_is_decoded(tmp_path):
    page = '<html><head><meta charset="iso-8859-1"></head><body><p>Caf\xe9</p></body></html>'
    (tmp_path / "page.html").write_bytes(page.encode("latin-1"))
    assert read_document(tmp_path / "page.html") == "Café\n"


def test_an_encrypted_pdf_is_a_clear_error():
    from pypdf import PdfReader

    with pytest.raises(DocumentError, match=r"encrypted\.pdf: an encrypted PDF that needs a password"):
        read_document(FIXTURES / "encrypted.pdf")
    reader = PdfReader(FIXTURES / "encrypted.pdf")  # it is the twin, behind a password
    assert reader.is_encrypted and reader.decrypt("secret") and "48213" in reader.pages[1].extract_text()


def test_a_pdf_without_text_layer_is_a_clear_error():
    with pytest.raises(DocumentError, match=r"scanned\.pdf: a PDF without a text layer .*OCR"):
        read_document(FIXTURES / "scanned.pdf")


@pytest.mark.parametrize("name", ["garbage.bin", "garbage.txt", "garbage.md"])
def test_binary_garbage_is_a_clear_error(tmp_path, name):
    import random

    rng = random.Random(3)
    (tmp_path / name).write_bytes(bytes(rng.randrange(256) for _ in range(4096)) + b"\x00")
    with pytest.raises(DocumentError, match="binary file, not a document"):
        read_document(tmp_path / name)


def test_a_damaged_pdf_is_a_clear_error(tmp_path):
    data = (FIXTURES / "twin.pdf").read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[:200])
    (tmp_path / "fake.pdf").write_bytes(b"this is not a PDF at all")
    for name in ("cut.pdf", "fake.pdf"):
        with pytest.raises(DocumentError, match=f"{name}: (not a readable PDF|a PDF without a text layer)"):
            read_document(tmp_path / name)


def test_zip_based_documents_are_named(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("word/document.xml", "<w:document/>")
    (tmp_path / "report.docx").write_bytes(buffer.getvalue())
    with pytest.raises(DocumentError, match=r"ZIP-based file \(\.docx, \.epub"):
        read_document(tmp_path / "report.docx")


@pytest.mark.parametrize(
    "name,content",
    [("empty.txt", b""), ("blank.txt", b" \n\t\n"), ("scripts.html", b"<script>x()</script><p> </p>")],
)
def test_a_document_without_text_is_a_clear_error(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DocumentError, match="has no text"):
        read_document(tmp_path / name)


def test_not_utf8_and_missing_files_are_input_errors(tmp_path):
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9 au lait")
    with pytest.raises(InputError, match="not UTF-8 text"):
        read_document(tmp_path / "latin.txt")
    with pytest.raises(InputError, match="not found"):
        read_document(tmp_path / "nope.pdf")
