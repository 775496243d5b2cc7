"""benchmarks/speed.py's report: the ratios come from one run's rows, acre against llama.cpp."""

from __future__ import annotations

import json

from benchmarks.speed import report


def test_ratios_are_taken_within_the_latest_run(tmp_path):
    rows = [
        {
            "run": "old",
            "length": 2000,
            "engine": "llama.cpp",
            "ingest_tok_s": 1,
            "first_token_s": 1,
            "decode_tok_s": 1.0,
            "peak_rss_bytes": 1,
        },
        {
            "run": "new",
            "length": 2000,
            "engine": "llama.cpp",
            "ingest_tok_s": 100.0,
            "first_token_s": 20,
            "decode_tok_s": 30.0,
            "peak_rss_bytes": 400 * 2**20,
        },
        {
            "run": "new",
            "length": 2000,
            "engine": "executorch",
            "ingest_tok_s": 250.0,
            "first_token_s": 0.4,
            "decode_tok_s": 45.0,
            "peak_rss_bytes": 300 * 2**20,
            "flash_bytes_per_token": 12.0,
        },
        {
            "run": "new",
            "length": 128000,
            "engine": "executorch",
            "ingest_tok_s": 240.0,
            "first_token_s": 0.5,
            "decode_tok_s": 44.0,
            "peak_rss_bytes": 320 * 2**20,
            "flash_bytes_per_token": 12.0,
        },
        {"run": "new", "length": 128000, "engine": "llama.cpp", "skipped": "does not fit"},
    ]
    path = tmp_path / "speed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = report(path)
    assert "run new" in text and "2000 tokens: decode 1.50x llama.cpp, ingest 2.50x its prefill" in text
    assert "peak RSS 0.75x" in text
    assert "acre 128000 vs 2000 tokens: decode 0.98x, ingest 0.96x" in text
    assert "| llama.cpp | 128000 | does not fit |" in text
