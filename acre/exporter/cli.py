"""`acre-export`: write a bundle for a device target."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from acre.budget import parse_bytes
from acre.bundle import KV_DTYPES
from acre.errors import AcreError, InputError
from acre.exporter.export import DEFAULT_CHUNK, DEFAULT_POT, TARGETS, export_bundle
from acre.exporter.fit import DEFAULT_DOCUMENT_TOKENS, export_within_budget
from acre.exporter.quantize import DEFAULT_SCHEME, FALLBACK, SCHEMES
from acre.logs import quiet_libraries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acre-export", description=__doc__)
    parser.add_argument("--target", required=True, choices=[*TARGETS, "all"], help="device target")
    parser.add_argument(
        "--model", default="builtin", help="builtin, a .gguf file or a HF checkpoint directory"
    )
    parser.add_argument("--out", type=Path, default=Path("bundle"), help="bundle directory to write")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="prefill chunk length C")
    parser.add_argument(
        "--pot", type=int, default=None, help=f"pot capacity P in slots (default {DEFAULT_POT})"
    )
    parser.add_argument(
        "--budget",
        help="RAM for the whole process, e.g. 300MB: the export measures its program and keeps the pot, "
        "K/V dtype and weights asked for as far as they fit, else gives up the least that fits, or "
        "refuses naming the smallest budget (one target: android or onnx)",
    )
    parser.add_argument(
        "--tokens",
        type=int,
        default=DEFAULT_DOCUMENT_TOKENS,
        help=f"with --budget: the longest document the app ingests (default {DEFAULT_DOCUMENT_TOKENS:,})",
    )
    parser.add_argument(
        "--quantize",
        choices=list(SCHEMES),
        default=None,
        help="ExecuTorch program weights (default: gguf, the source's own Q4_1/Q8_0 blocks, for a GGUF "
        f"source; {DEFAULT_SCHEME['android']} otherwise; fp32 for parity checks)",
    )
    parser.add_argument(
        "--max-weights-mb",
        type=float,
        default=None,
        help="with --quantize sensitive: the weights' ceiling in MB (10^6 bytes; default: what "
        f"{FALLBACK} weighs for the model); more int8 layers, by measured sensitivity, as it allows",
    )
    parser.add_argument(
        "--kv-dtype",
        choices=list(KV_DTYPES),
        default=None,
        help="the pot's keys and values; float16 halves the pot's RAM, but on XNNPACK x86 a step ran 2.5x "
        "slower with it (default float32; under --budget float16 if only that fits, onnx only)",
    )
    args = parser.parse_args(argv)
    # acre's own progress at INFO; other libraries (torchao lists its optional CUDA kernels) at WARNING
    logging.basicConfig(level=logging.WARNING, format="acre-export: %(message)s")
    logging.getLogger("acre").setLevel(logging.INFO)
    quiet_libraries()
    targets = list(TARGETS) if args.target == "all" else [args.target]
    try:
        options = {"chunk": args.chunk, "pot": args.pot, "quantize": args.quantize}
        if args.max_weights_mb is not None:
            options["max_weights_mb"] = args.max_weights_mb
        if args.budget is None:
            out = export_bundle(args.out, targets, args.model, kv_dtype=args.kv_dtype or "float32", **options)
        elif len(targets) != 1:
            raise InputError("--budget fits one target's program; name one (android or onnx)")
        else:
            budget = parse_bytes(args.budget)
            out = export_within_budget(
                args.out, targets[0], args.model, budget, args.tokens, kv_dtype=args.kv_dtype, **options
            )
    except AcreError as exc:
        print(f"acre-export: error: {exc}", file=sys.stderr)
        return 2
    print(f"acre-export: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
