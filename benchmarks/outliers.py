"""Where the `gguf` scheme's int8 activations lose: eager variants against the fp32 module.

    .venv/bin/python -m benchmarks.outliers "split:" "split:down_proj=0.99" "float:down_proj"

Each variant is the `gguf` scheme (torchao's reference kernels, the rounding the lowered program does)
with one change:
  outliers:NAME=N,...,*=N   outlier input channels per layer name (acre.exporter.quantize.OUTLIERS)
  split:NAME=Q,...          the layers whose int8 input is split at its Q quantile of |x|
                            (acre.exporter.quantize.SPLIT_QUANTILE; "split:" splits none)
  float:NAME,...            these layers with float activations on their exact grid weights (what
                            no XNNPACK kernel runs: an upper bound on what their int8 inputs cost)

Quality is measured on development prose that the benchmark of docs/quantization.md does not use (the
python-docs haystack and six Paul Graham essays of ACRE_DATA, 200 tokens each; all positions of each
segment in one causal pass): mean KL(fp32 || variant), its p95 and top-1 agreement with a Wilson
interval. Appends one JSON line per variant to benchmarks/results/outliers.jsonl.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from acre.exporter import quantize
from acre.exporter.checkpoint import load_checkpoint
from acre.exporter.export import source_grids
from acre.step import StepModel
from benchmarks.quantization import compare, environment
from benchmarks.report import wilson
from benchmarks.tasks import ESSAYS_DIR, full_data, haystack

RESULTS = Path(__file__).resolve().parent / "results" / "outliers.jsonl"
ESSAYS = ("apple.txt", "aord.txt", "addiction.txt", "avg.txt", "before.txt", "bias.txt")


@torch.inference_mode()
def logits(step: StepModel, texts: list[list[int]]) -> np.ndarray:
    out = []
    for ids in texts:
        hidden, *_ = step.run(torch.tensor(ids), torch.arange(len(ids)), *step.no_pot())
        out.append(step.lm_head(hidden).float().numpy())
    return np.concatenate(out)


def variant(reference: StepModel, spec: str, grids: dict, calibration: torch.Tensor) -> StepModel:
    kind, _, arg = spec.partition(":")
    saved = dict(quantize.OUTLIERS), dict(quantize.SPLIT_QUANTILE)
    pairs = [item.split("=") for item in arg.split(",") if item]
    if kind == "outliers":
        quantize.OUTLIERS = {k: int(v) for k, v in pairs}
    elif kind == "split":
        quantize.SPLIT_QUANTILE = {k: float(v) for k, v in pairs}
    elif kind != "float":
        raise SystemExit(f"unknown variant {spec!r}: outliers:..., split:... or float:...")
    try:
        step = copy.deepcopy(reference)
        quantize.quantize_step(step, "gguf", grids, calibration)
    finally:
        quantize.OUTLIERS, quantize.SPLIT_QUANTILE = saved
    if kind == "float":
        names = arg.split(",")
        for parent in list(step.modules()):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, quantize.GridLinear) and child_name in names:
                    rows, cols = child.grid.codes.shape
                    exact = nn.Linear(cols, rows, bias=False)
                    weight = torch.from_numpy(child.grid.dequantize())
                    exact.weight = nn.Parameter(weight, requires_grad=False)
                    setattr(parent, child_name, exact)
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="+")
    p.add_argument("--length", type=int, default=200, help="tokens per prose segment")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    checkpoint = load_checkpoint("builtin")
    reference = StepModel.from_hf(checkpoint.model)
    tokenizer = checkpoint.tokenizer
    prose = [haystack("python-docs")] + [(full_data(ESSAYS_DIR) / n).read_text() for n in ESSAYS]
    texts = [tokenizer.encode(t, add_special_tokens=False)[: args.length] for t in prose]
    grids = source_grids(checkpoint, reference.g)
    if not grids:
        raise SystemExit("the built-in checkpoint has no GGUF grids")
    calibration = quantize.calibration_ids(reference, tokenizer)
    ref = logits(reference, texts)
    run_id, env = time.strftime("%Y-%m-%dT%H:%M:%S"), environment()
    for spec in args.variants:
        step = variant(reference, spec, grids, calibration)
        outliers = sum(
            m.outliers.weight.numel() * 4
            for m in step.modules()
            if isinstance(m, quantize.GridLinear) and m.outliers is not None
        )
        scores = compare(ref, logits(step, texts))
        agree = round(scores["top1_agreement"] * scores["positions"])
        low, high = wilson(agree, scores["positions"])
        record = {
            "run": run_id,
            "variant": spec,
            **scores,
            "top1_interval": [round(low, 4), round(high, 4)],
            "outlier_bytes": outliers,
            "prose": ["python-docs", *ESSAYS],
            "length": args.length,
            "env": env,
        }
        print(json.dumps(record), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
