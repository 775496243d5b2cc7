"""Write a long demo document with a 5-digit pass key hidden at a given depth.

The haystack is the Paul Graham essays of ../shared/data when present, else the classic
pass-key filler sentences (Mohtashami & Jaggi, 2023).
"""

from __future__ import annotations

import argparse
from pathlib import Path

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
ESSAYS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "PaulGrahamEssays"


def haystack(chars: int) -> str:
    texts = [p.read_text(encoding="utf-8") for p in sorted(ESSAYS.glob("*.txt"))] if ESSAYS.is_dir() else []
    text = "\n\n".join(texts) or FILLER
    while len(text) < chars:
        text += "\n\n" + text
    return text[:chars]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=1500, help="approximate length (4 characters a token)")
    parser.add_argument("--depth", type=float, default=0.5, help="where the key goes, 0 = start, 1 = end")
    parser.add_argument("--key", default="72904")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    text = haystack(args.tokens * 4)
    cut = text.rfind(". ", 0, int(len(text) * args.depth)) + 2
    needle = f"The pass key is {args.key}. Remember it. {args.key} is the pass key. "
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text[:cut] + needle + text[cut:], encoding="utf-8")
    print(f"wrote {args.out}: pass key {args.key} at depth {args.depth:.0%}")


if __name__ == "__main__":
    main()
