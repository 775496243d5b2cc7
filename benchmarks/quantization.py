"""What weight quantization costs the ExecuTorch program of the built-in model, against fp32.

    .venv/bin/python -m benchmarks.quantization \
        --bundle 8da4w-mlp-emb=build/smollm2-android-8da4w --bundle gguf=build/smollm2-android \
        --eager-schemes gguf 8da8w 8da4w-mlp-emb --passkey 8da4w-mlp-emb gguf
    .venv/bin/python -m benchmarks.quantization --no-grids --eager-schemes 8da4w-mlp-emb sensitive

(benchmarks/quantization.sh exports the two bundles first.)

One JSON line per measurement is appended to benchmarks/results/quantization.jsonl:

quality   next-token distributions on real prose (the openings of the shipped fiction and wikipedia
          haystacks, benchmarks/data; the exporter's outlier calibration uses none of it) against
          fp32 eager (the `torch` engine's StepModel, fp32 pot): mean KL(fp32 || scheme) and top-1
          agreement, position by position
          through the decode entry point with the earlier tokens in the pot. `source` says whether
          the scheme ran as an exported .pte (executorch runtime) or as a quantized eager module
          (torchao's reference kernels, same rounding; used to compare schemes without exporting).
size      bytes of each bundle's model.pte and of the whole bundle
speed     ingest (prefill entry point, full chunks) and decode tokens/s of each bundle, measured in
          the same process one after another (ratios are what carries over to a phone)
passkey   pass-key accuracy at 2k tokens, depths 0.1/0.5/0.9, policy acre, engine executorch
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from acre.bundle import Bundle
from acre.exporter.checkpoint import load_checkpoint
from acre.exporter.export import source_grids
from acre.exporter.quantize import SCHEMES, calibration_ids, quantize_step, weight_bytes
from acre.runtime.engines import ExecuTorchEngine, StepInputs
from acre.step import StepModel
from benchmarks.tasks import haystack

RESULTS = Path(__file__).resolve().parent / "results" / "quantization.jsonl"


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    import executorch  # noqa: F401
    import torchao

    return {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.uname().machine,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "executorch": version("executorch"),
        "torchao": torchao.__version__,
    }


def prose_segments(tokenizer: Any, names: list[str], length: int) -> list[list[int]]:
    """The first `length` tokens of each named haystack."""
    return [tokenizer.encode(haystack(name), add_special_tokens=False)[:length] for name in names]


def decode_logits(call: Any, g: Any, pot: int, kv_dtype: np.dtype, ids: list[int]) -> np.ndarray:
    """Logits after every token, fed one at a time through the decode entry point with all earlier
    tokens in the pot (slot i holds token i): [len(ids), vocab]."""
    shape = (g.layers, g.kv_heads, pot, g.head_dim)
    k, v = np.zeros(shape, kv_dtype), np.zeros(shape, kv_dtype)
    mask = np.zeros(pot, bool)
    rows = []
    for i, token in enumerate(ids):
        out = call(
            StepInputs(
                tokens=np.array([token]),
                positions=np.array([i]),
                pot_k=k,
                pot_v=v,
                pot_mask=mask,
                last_index=np.array([0]),
            )
        )
        rows.append(np.asarray(out.logits, np.float32))
        k[:, :, i], v[:, :, i] = out.k_new[:, :, 0], out.v_new[:, :, 0]
        mask[i] = True
    return np.stack(rows)


def compare(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    lp = torch.log_softmax(torch.from_numpy(ref).double(), -1)
    lq = torch.log_softmax(torch.from_numpy(got).double(), -1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    return {
        "positions": int(ref.shape[0]),
        "kl_mean": round(float(kl.mean()), 5),
        "kl_p95": round(float(kl.quantile(0.95)), 5),
        "top1_agreement": round(float((ref.argmax(-1) == got.argmax(-1)).mean()), 4),
    }


def eager_call(step: StepModel) -> Any:
    def call(inputs: StepInputs) -> Any:
        with torch.inference_mode():
            out = step(*(torch.from_numpy(a) for a in inputs.as_tuple()))
        return type("Out", (), {"logits": out[0].numpy(), "k_new": out[1].numpy(), "v_new": out[2].numpy()})

    return call


def speed(bundle_dir: Path, tokenizer: Any, repeats: int) -> dict[str, float]:
    """Prefill (full chunks over a half-full pot) and decode tokens/s of a bundle's program."""
    bundle = Bundle.open(bundle_dir)
    engine = ExecuTorchEngine(bundle)
    g, pot, chunk = bundle.geometry, bundle.pot, bundle.chunk
    rng = np.random.default_rng(0)
    shape = (g.layers, g.kv_heads, pot, g.head_dim)
    kv = np.dtype(bundle.kv_dtype)
    base = dict(
        pot_k=rng.standard_normal(shape).astype(kv),
        pot_v=rng.standard_normal(shape).astype(kv),
        pot_mask=np.arange(pot) < pot // 2,
    )
    prefill = StepInputs(
        tokens=rng.integers(0, g.vocab, chunk),
        positions=np.arange(pot, pot + chunk),
        last_index=np.array([chunk - 1]),
        **base,
    )
    decode = StepInputs(tokens=np.array([7]), positions=np.array([pot]), last_index=np.array([0]), **base)
    engine.step(prefill), engine.step(decode)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        engine.step(prefill)
    ingest = repeats * chunk / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(repeats * 8):
        engine.step(decode)
    dec = repeats * 8 / (time.perf_counter() - started)
    return {"ingest_tok_s": round(ingest, 1), "decode_tok_s": round(dec, 1), "chunk": chunk, "pot": pot}


def passkey(bundle_dir: Path, length: int, depths: list[float]) -> dict[str, Any]:
    import tempfile

    from acre.runtime.session import Session
    from benchmarks.tasks import TASKS

    session = Session(str(bundle_dir), engine="executorch", policy="acre")
    cases = []
    for i, depth in enumerate(depths):
        case = TASKS["passkey"](session.tokenizer, length, depth, seed=i)
        with tempfile.TemporaryDirectory(prefix="acre-quant-") as store:
            session.ingest(case.document, store=store)
            reply = "".join(session.ask(case.question, max_new_tokens=case.reply_tokens))
        cases.append({"depth": depth, "answer": case.answer, "reply": reply, "correct": case.correct(reply)})
    return {"length": length, "correct": sum(c["correct"] for c in cases), "of": len(cases), "cases": cases}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", action="append", default=[], help="NAME=DIR of an android bundle (repeatable)")
    p.add_argument(
        "--eager-schemes", nargs="*", default=[], help="schemes to score as quantized eager modules"
    )
    p.add_argument("--prose", nargs="+", default=["fiction", "wikipedia"], help="shipped haystacks")
    p.add_argument("--length", type=int, default=200, help="tokens per prose segment")
    p.add_argument("--speed-repeats", type=int, default=4)
    p.add_argument("--passkey", nargs="*", default=None, help="bundle NAMEs to run the pass-key task on")
    p.add_argument("--passkey-length", type=int, default=2048)
    p.add_argument(
        "--no-grids",
        action="store_true",
        help="treat the built-in model as a Hugging Face source: its fp32 weights, not its GGUF blocks",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    bundles = dict(item.split("=", 1) for item in args.bundle)
    env = environment()
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def emit(record: dict[str, Any]) -> None:
        record = {"run": run_id, **record, "env": env}
        print(json.dumps(record), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")

    checkpoint = load_checkpoint("builtin")
    reference = StepModel.from_hf(checkpoint.model)
    g = reference.g
    texts = prose_segments(checkpoint.tokenizer, args.prose, args.length)
    config = {"prose": args.prose, "length": args.length, "source_grids": not args.no_grids}
    grids = None if args.no_grids else source_grids(checkpoint, reference.g)
    ref = np.concatenate(
        [decode_logits(eager_call(reference), g, args.length, np.float32, ids) for ids in texts]
    )

    for scheme in args.eager_schemes:
        step = copy.deepcopy(reference)
        started = time.perf_counter()
        record = quantize_step(step, scheme, grids, calibration_ids(reference, checkpoint.tokenizer))
        quantized = time.perf_counter() - started
        # the weights' size as acre.exporter.sensitivity counts it (no program is written here)
        size = record.get("sensitivity", {}).get("weight_bytes")
        if size is None and all(r.bits > 0 for r in SCHEMES[scheme].values()):
            size = weight_bytes(reference, scheme)
        started = time.perf_counter()
        got = np.concatenate(
            [decode_logits(eager_call(step), g, args.length, np.float32, ids) for ids in texts]
        )
        emit(
            {
                "kind": "quality",
                "scheme": scheme,
                "source": "eager torchao (fp32 pot)",
                **compare(ref, got),
                "seconds": round(time.perf_counter() - started, 1),
                "quantize_seconds": round(quantized, 1),
                "weight_bytes_estimate": size,
                "config": config,
                "quantization": record,
            }
        )
        del step

    for name, directory in bundles.items():
        bundle = Bundle.open(directory)
        pte = bundle.program_path("executorch")
        total = sum(f.stat().st_size for f in Path(directory).rglob("*") if f.is_file())
        m = bundle.manifest
        emit(
            {
                "kind": "size",
                "bundle": name,
                "pte_bytes": pte.stat().st_size,
                "bundle_bytes": total,
                "quantization": m["programs"]["executorch"].get("quantization", m.get("quantization")),
                "kv_dtype": bundle.kv_dtype,
                "export_seconds": m["programs"]["executorch"].get("export_seconds"),
            }
        )
        engine = ExecuTorchEngine(bundle)
        kv = np.dtype(bundle.kv_dtype)
        got = np.concatenate([decode_logits(engine.step, g, bundle.pot, kv, ids) for ids in texts])
        emit(
            {
                "kind": "quality",
                "bundle": name,
                "source": "executorch .pte",
                "kv_dtype": bundle.kv_dtype,
                **compare(ref, got),
                "config": config,
                "quantization": m["programs"]["executorch"].get("quantization", m.get("quantization")),
            }
        )
        del engine

    speeds = {name: speed(Path(d), checkpoint.tokenizer, args.speed_repeats) for name, d in bundles.items()}
    if speeds:
        base = next(iter(speeds))
        for name, s in speeds.items():
            emit(
                {
                    "kind": "speed",
                    "bundle": name,
                    **s,
                    "baseline": base,
                    "ingest_ratio": round(s["ingest_tok_s"] / speeds[base]["ingest_tok_s"], 2),
                    "decode_ratio": round(s["decode_tok_s"] / speeds[base]["decode_tok_s"], 2),
                    "repeats": args.speed_repeats,
                }
            )
    for name in args.passkey or []:
        emit(
            {
                "kind": "passkey",
                "bundle": name,
                "policy": "acre",
                "engine": "executorch",
                **passkey(Path(bundles[name]), args.passkey_length, [0.1, 0.5, 0.9]),
            }
        )


if __name__ == "__main__":
    main()
