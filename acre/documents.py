"""Documents: a file (plain text, Markdown, HTML or PDF) turned into the text acre ingests.

    text = read_document(Path("report.pdf"))

The format comes from the file's extension, except that a file starting with `%PDF-` is read as a
PDF whatever its name. Plain text is kept exactly as it is (so sources' character ranges are
ranges of the file itself). Markdown, HTML and PDF become paragraphs of plain text, one line
each, separated by a blank line and ending in one newline: the same text whichever of the three
a document came in. Anything that cannot be read ends in a DocumentError that names the file and
says why.
"""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from acre.errors import DocumentError

PLAIN = (".txt", ".text")
MARKDOWN = (".md", ".markdown")
HTML = (".html", ".htm", ".xhtml")
PDF = (".pdf",)
FORMATS = "plain text (.txt), Markdown (.md), HTML (.html) or PDF (.pdf)"


def read_document(path: Path) -> str:
    """The text of the document at `path`."""
    if not path.is_file():
        raise DocumentError(f"{path}: context file not found")
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if data[:1024].lstrip().startswith(b"%PDF-") or suffix in PDF:
        text = pdf_text(path, data)
    elif data.startswith(b"PK\x03\x04"):
        raise DocumentError(
            f"{path}: a ZIP-based file (.docx, .epub, .odt, ...), which acre does not read; "
            f"convert it to {FORMATS}"
        )
    elif suffix in MARKDOWN:
        text = markdown_text(_decode(path, data))
    elif suffix in HTML:
        text = html_text(_decode(path, data, html=True))
    else:
        text = _decode(path, data)
    if not text.strip():
        raise DocumentError(f"{path}: the document has no text")
    return text


def _decode(path: Path, data: bytes, html: bool = False) -> str:
    if b"\x00" in data[:8192]:  # text has no NUL bytes; images, archives and programs do
        raise DocumentError(f"{path}: a binary file, not a document; give {FORMATS}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        declared = _declared_charset(data) if html else None
        if declared:
            try:
                return data.decode(declared)
            except (LookupError, UnicodeDecodeError):
                pass
        raise DocumentError(f"{path}: not UTF-8 text ({exc}); convert it to UTF-8 first") from exc


def _declared_charset(data: bytes) -> str | None:
    """The charset an HTML page declares in its first bytes (<meta charset=...>)."""
    found = re.search(rb"""<meta[^>]*charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", data[:4096], re.I)
    return found.group(1).decode("ascii") if found else None


# ---- paragraphs -------------------------------------------------------------------------------
def _paragraphs(paragraphs: list[str]) -> str:
    """The common shape of converted text: each paragraph on one line, a blank line between."""
    kept = [p for p in (" ".join(p.split()) for p in paragraphs) if p]
    return "\n\n".join(kept) + "\n" if kept else ""


# ---- HTML and Markdown --------------------------------------------------------------------------
# elements whose start or end begins a new paragraph
_BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
_HIDDEN = {"head", "script", "style", "template", "noscript", "svg", "iframe", "object"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _VisibleText(HTMLParser):
    """Collects the text a browser would show, as paragraphs (the stdlib parser: no dependency,
    and as lenient with broken markup as a browser's tokenizer)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.hidden = 0

    def _break(self) -> None:
        self.paragraphs.append("".join(self.current))
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS or tag == "br":
            self._break()
        elif tag in ("td", "th"):
            self.current.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS or tag == "br":
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.current.append(data)

    def text(self) -> str:
        self.close()
        self._break()
        return _paragraphs(self.paragraphs)


def html_text(html: str) -> str:
    """The visible text of an HTML page: no markup, scripts, styles or <head>."""
    parser = _VisibleText()
    parser.feed(html)
    return parser.text()


def markdown_text(markdown: str) -> str:
    """Markdown as the text it renders to (CommonMark, by markdown-it-py)."""
    from markdown_it import MarkdownIt

    return html_text(MarkdownIt("commonmark").render(markdown))


# ---- PDF -------------------------------------------------------------------------------------
def pdf_text(path: Path, data: bytes) -> str:
    """The text layer of a PDF (pypdf), as paragraphs: lines of a page are joined into a paragraph
    until a vertical gap wider than the page's usual line spacing."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings on odd but readable files
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):  # readable if only an owner password is set
            raise DocumentError(
                f"{path}: an encrypted PDF that needs a password; decrypt it first "
                "(e.g. qpdf --decrypt --password=... in.pdf out.pdf)"
            )
        pages = [_page_paragraphs(page) for page in reader.pages]
    except DependencyError as exc:
        raise DocumentError(
            f"{path}: an encrypted PDF (AES); decrypting it needs the cryptography package, or "
            "decrypt it first (qpdf --decrypt)"
        ) from exc
    except FileNotDecryptedError as exc:
        raise DocumentError(f"{path}: an encrypted PDF that needs a password; decrypt it first") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"{path}: not a readable PDF ({exc})") from exc
    text = _paragraphs([p for page in pages for p in page])
    if not text:
        raise DocumentError(
            f"{path}: a PDF without a text layer ({len(reader.pages)} page(s), no text: scanned "
            "images?); run OCR on it first (e.g. ocrmypdf)"
        )
    return text


def _page_paragraphs(page: Any) -> list[str]:
    """One page's lines (pypdf's reading order), grouped into paragraphs by their baselines."""
    lines: list[tuple[float, float, str]] = []  # (baseline y, font size, text), in reading order
    current: list[str] = []
    y = size = None

    def visit(text: str, cm: list[float], tm: list[float], font: object, font_size: float) -> None:
        nonlocal y, size
        for i, part in enumerate(text.split("\n")):
            if i:  # a line ended
                lines.append((y or 0.0, size or 0.0, "".join(current)))
                current.clear()
                y = size = None
            if part.strip() and y is None:
                y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]  # the text's baseline in page space
                size = font_size * (abs(tm[3] * cm[3]) or 1.0)
            current.append(part)

    page.extract_text(visitor_text=visit)
    lines.append((y or 0.0, size or 0.0, "".join(current)))
    lines = [line for line in lines if line[2].strip()]
    gaps = sorted(a[0] - b[0] for a, b in zip(lines, lines[1:], strict=False) if a[0] > b[0])
    usual = gaps[len(gaps) // 2] if gaps else 0.0
    paragraphs: list[list[str]] = []
    previous: float | None = None
    for ly, line_size, text in lines:
        # The usual gap is the line spacing, unless most lines are paragraphs of their own: then
        # 1.6x the font size (single to double spacing) is.
        spacing = min(usual, 1.6 * line_size) if line_size else usual
        gap = None if previous is None else previous - ly
        # a new paragraph: the first line, a wider gap than the spacing, or a jump up (a new column)
        if gap is None or gap > 1.3 * spacing or gap <= 0:
            paragraphs.append([])
        paragraphs[-1].append(text.strip())
        previous = ly
    return [_join_lines(p) for p in paragraphs]


def _join_lines(lines: list[str]) -> str:
    """Lines of one paragraph as one: a line ending in a hyphen runs on without a space."""
    out = ""
    for line in lines:
        out += line if not out or out.endswith("-") else " " + line
    return out
