"""`acre-export`: write a bundle for a device target."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from acre.bundle import KV_DTYPES
from acre.errors import AcreError
from acre.exporter.export import DEFAULT_CHUNK, DEFAULT_POT, TARGETS, export_bundle
from acre.exporter.quantize import DEFAULT_SCHEME, SCHEMES
from acre.logs import quiet_libraries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acre-export", description=__doc__)
    parser.add_argument("--target", required=True, choices=[*TARGETS, "all"], help="device target")
    parser.add_argument(
        "--model", default="builtin", help="builtin, a .gguf file or a HF checkpoint directory"
    )
    parser.add_argument("--out", type=Path, default=Path("bundle"), help="bundle directory to write")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="prefill chunk length C")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--pot", type=int, default=None, help=f"pot capacity P in slots (default {DEFAULT_POT})"
    )
    size.add_argument("--budget", help="RAM for the pot (K/V working set), e.g. 48MB: picks P")
    parser.add_argument(
        "--quantize",
        choices=list(SCHEMES),
        default=None,
        help="ExecuTorch program weights (default: gguf, the source's own Q4_1/Q8_0 blocks, for a GGUF "
        f"source; {DEFAULT_SCHEME['android']} otherwise; fp32 for parity checks)",
    )
    parser.add_argument(
        "--kv-dtype",
        choices=list(KV_DTYPES),
        default="float32",
        help="the pot's keys and values; float16 halves the pot's RAM for the Python, ONNX and Core ML "
        "runtimes, but ExecuTorch's Java API (android_demo) has no float16 tensors",
    )
    args = parser.parse_args(argv)
    # acre's own progress at INFO; other libraries (torchao lists its optional CUDA kernels) at WARNING
    logging.basicConfig(level=logging.WARNING, format="acre-export: %(message)s")
    logging.getLogger("acre").setLevel(logging.INFO)
    quiet_libraries()
    targets = list(TARGETS) if args.target == "all" else [args.target]
    try:
        out = export_bundle(
            args.out,
            targets,
            args.model,
            chunk=args.chunk,
            pot=args.pot,
            budget=args.budget,
            quantize=args.quantize,
            kv_dtype=args.kv_dtype,
        )
    except AcreError as exc:
        print(f"acre-export: error: {exc}", file=sys.stderr)
        return 2
    print(f"acre-export: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
