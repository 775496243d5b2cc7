"""Write the demo document: a long pass-key haystack (acre.haystack), sized with the bundle's tokenizer."""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoTokenizer

from acre.bundle import Bundle
from acre.haystack import passkey_document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--depth", type=float, default=0.4, help="where the key goes, 0 = start, 1 = end")
    parser.add_argument("--key", default="72904")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(Bundle.open(args.bundle, verify_checksums=False).tokenizer_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(passkey_document(tokenizer, args.tokens, args.depth, args.key), encoding="utf-8")
    print(f"wrote {args.out}: ~{args.tokens:,} tokens, pass key {args.key} at depth {args.depth:.0%}")


if __name__ == "__main__":
    main()
