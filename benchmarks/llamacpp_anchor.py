"""llama.cpp "outside anchor" for acre's benchmarks (run with benchmarks/.llamacpp-venv/bin/python).

Feeds the very same token ids acre sees (chat-templated by acre's tokenizer, same vocabulary as the GGUF)
to llama.cpp through llama-cpp-python and measures, per prompt, on CPU with --threads threads:

* prefill: one ``Llama.eval`` of all prompt ids from an empty KV cache (n_batch=512), plus reading the
  last position's logits, which yields the first new token (i.e. time to first token);
* decode: greedy (argmax) single-token ``Llama.eval`` steps after that, until an end-of-generation token
  or --max-new-tokens generated tokens; ``decode_tokens`` counts those steps (generated tokens - 1);
* the answer text and ids (end-of-generation token excluded) and, when the prompt line has "answer",
  whether that string appears in the answer text;
* the process's peak RSS so far (VmHWM, monotone over the run) after the prompt;
* the 1-minute load average before the prompt: llama.cpp's worker threads spin-wait at barriers, so with
  --threads equal to the core count any other busy process slows it down by 10-100x (decode < 1 tok/s);
  a load average above about --threads means that prompt's timings are not an anchor
  (OMP_WAIT_POLICY=PASSIVE in the environment avoids the collapse, see README_llamacpp.md).

Input lines: {"id": str, "prompt_ids": [int, ...], "answer": str (optional)}. Output: one JSON line each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from typing import Any

import llama_cpp
import numpy as np


def peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over exec from the parent,
    here the harness process with acre's model loaded."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def next_token(llm: llama_cpp.Llama) -> int:
    """Argmax of the logits of the last evaluated position."""
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
    return int(np.argmax(logits))


def run_prompt(
    llm: llama_cpp.Llama, prompt_ids: list[int], max_new: int, ignore_eos: bool = False
) -> dict[str, Any]:
    vocab = llm._model.vocab
    llm.reset()  # n_tokens = 0, so the next eval drops the whole KV cache
    t0 = time.perf_counter()
    llm.eval(prompt_ids)
    tok = next_token(llm)
    prefill_s = time.perf_counter() - t0
    out: list[int] = []
    steps = 0
    t1 = time.perf_counter()
    while ignore_eos or not llama_cpp.llama_vocab_is_eog(vocab, tok):
        out.append(tok)
        if len(out) >= max_new:
            break
        llm.eval([tok])
        tok = next_token(llm)
        steps += 1
    decode_s = time.perf_counter() - t1
    return {
        "prompt_tokens": len(prompt_ids),
        "prefill_seconds": round(prefill_s, 4),
        "prefill_tok_s": round(len(prompt_ids) / prefill_s, 1),
        "decode_tokens": steps,
        "decode_seconds": round(decode_s, 4),
        "decode_tok_s": round(steps / decode_s, 1) if steps and decode_s > 0 else None,
        "answer_text": llm.detokenize(out).decode("utf-8", errors="replace"),
        "answer_ids": out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--prompts", required=True, help="JSONL: id, prompt_ids, answer (optional)")
    ap.add_argument("--out", required=True, help="JSONL results, one line per prompt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=8192)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument(
        "--ignore-eos", action="store_true", help="decode --max-new-tokens whatever comes (speed)"
    )
    args = ap.parse_args()

    llm = llama_cpp.Llama(
        model_path=args.gguf,
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_batch=512,
        logits_all=False,
        verbose=False,
    )
    results: list[dict[str, Any]] = []
    with open(args.prompts) as f_in, open(args.out, "w") as f_out:
        for line in f_in:
            if not line.strip():
                continue
            item = json.loads(line)
            ids: list[int] = [int(t) for t in item["prompt_ids"]]
            load = round(os.getloadavg()[0], 2)
            rec: dict[str, Any] = {"id": item["id"], "prompt_tokens": len(ids), "loadavg_1m": load}
            if len(ids) + args.max_new_tokens > args.n_ctx:
                rec["skipped"] = "exceeds n_ctx"
            else:
                rec.update(run_prompt(llm, ids, args.max_new_tokens, args.ignore_eos))
                if "answer" in item:
                    rec["correct"] = str(item["answer"]) in rec["answer_text"]
            rec["peak_rss_bytes"] = peak_rss_bytes()
            results.append(rec)
            f_out.write(json.dumps(rec) + "\n")
            f_out.flush()

    done = [r for r in results if "skipped" not in r]
    graded = [r for r in done if "correct" in r]
    prefill = sum(r["prefill_seconds"] for r in done)
    decode = sum(r["decode_seconds"] for r in done)
    print(
        f"llama.cpp {llama_cpp.__version__} threads={args.threads} "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}: "
        f"{len(done)} run, {len(results) - len(done)} skipped; "
        f"prefill {sum(r['prompt_tokens'] for r in done) / prefill if prefill else 0:.1f} tok/s, "
        f"decode {sum(r['decode_tokens'] for r in done) / decode if decode else 0:.1f} tok/s, "
        f"correct {sum(r['correct'] for r in graded)}/{len(graded)}, "
        f"peak RSS {max((r['peak_rss_bytes'] for r in results), default=0) / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
