"""`python -m benchmarks`: run a grid of (task, policy, length) cells, each in a fresh process, and
append their JSON lines to a results file with the machine, versions and configuration recorded.

    python -m benchmarks --bundle build/smollm2-android --tasks passkey --policies acre streaming \\
        --lengths 2000 8000 --depths 0.1 0.5 0.9 --name passkey
    python -m benchmarks --bundle build/smollm2-torch-1024 --engine torch --tasks single twohop \\
        --policies acre bm25 embedding --lengths 2000 8000 --cases 30 --split dev --name suite
    python -m benchmarks.report           # tables and plots into docs/benchmarks.md

Tasks: the old ones of benchmarks/tasks.py (one case per --depths) and the suite's families of
benchmarks/suite.py (--cases a cell, depths spread, seeds from --seed and --split). Policies: acre,
full, streaming, infinipot, llamacpp, and the RAG peers bm25, embedding, nocontext (benchmarks/rag.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.suite import SPLITS
from benchmarks.tasks import missing_data

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    import numpy
    import torch
    import transformers

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
    }
    try:
        from importlib.metadata import version

        import executorch  # noqa: F401

        versions["executorch"] = version("executorch")
    except ImportError:
        pass
    return {
        "host": platform.node(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_1m": os.getloadavg()[0],
        "commit": commit,
        "versions": versions,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True)
    p.add_argument("--engine", default="auto")
    p.add_argument("--tasks", nargs="+", default=["passkey"])
    p.add_argument("--policies", nargs="+", default=["acre"])
    p.add_argument("--lengths", type=int, nargs="+", default=[2000])
    p.add_argument("--depths", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cases", type=int, default=30, help="suite families: cases per cell")
    p.add_argument("--split", default="dev", choices=SPLITS, help="suite families: heldout is not for tuning")
    p.add_argument("--switch", action="append", default=[], help="policy switch name=value, for ablations")
    p.add_argument("--name", default="run", help="results go to benchmarks/results/NAME.jsonl")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args()
    missing = missing_data(args.tasks)
    if missing:
        sys.exit(missing)  # one line on stderr, exit status 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"{args.name}.jsonl"
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    with out.open("a") as f:
        f.write(
            json.dumps(
                {
                    "run": {
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        "config": config,
                        "machine": machine(),
                    }
                }
            )
            + "\n"
        )
    for task in args.tasks:
        for policy in args.policies:
            for length in args.lengths:
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.run_case",
                    "--bundle",
                    args.bundle,
                    "--engine",
                    args.engine,
                    "--policy",
                    policy,
                    "--task",
                    task,
                    "--length",
                    str(length),
                    "--seed",
                    str(args.seed),
                    "--cases",
                    str(args.cases),
                    "--split",
                    args.split,
                    "--depths",
                    *map(str, args.depths),
                ]
                for switch in args.switch:
                    cmd += ["--switch", switch]
                done = subprocess.run(cmd, capture_output=True, text=True)
                lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
                if done.returncode:
                    lines.append(
                        json.dumps(
                            {
                                "task": task,
                                "policy": policy,
                                "length": length,
                                "error": done.stderr.strip().splitlines()[-1:],
                            }
                        )
                    )
                with out.open("a") as f:
                    f.write("".join(line + "\n" for line in lines))
                for line in lines:
                    r = json.loads(line)
                    status = "ok" if r.get("correct") else r.get("skipped") or r.get("error") or "miss"
                    print(
                        f"{task} {policy} {length} depth={r.get('depth')} {status} "
                        f"ingest={r.get('ingest_tok_s')} tok/s "
                        f"rss={r.get('peak_rss_bytes', 0) / 2**20:.0f} MiB",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
