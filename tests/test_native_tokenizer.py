"""The native core's tokenizer (acre._native.Tokenizer) is token-identical to Hugging Face tokenizers
(`encode(text, add_special_tokens=False)`, `decode`) on the shipped texts, and refuses what it cannot run."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import pytest
from acre._native import Tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer

from acre.errors import InputError, TokenizerError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "benchmarks" / "data"
BUILT = REPO / "build" / "smollm2-android" / "tokenizer" / "tokenizer.json"

# Scripts, digits, whitespace and punctuation the shipped English texts have little of.
UNICODE = "\n".join(
    [
        "Ünïcödé: naïve café, Straße, Øresund, İstanbul, ǅ, ﬁ ligature, e\u0301 combining",
        "Ελληνικά: Καλημέρα κόσμε! Русский: Съешь же ещё этих мягких французских булок.",
        "中文：你好，世界。日本語：こんにちは、世界！한국어: 안녕하세요 세계",
        "العربية: مرحبا بالعالم ١٢٣٤ — עברית: שלום עולם",
        "हिन्दी: नमस्ते दुनिया ०१२; ไทย: สวัสดีชาวโลก",
        "Emoji: 👋🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✓ ½ ² Ⅻ ① ∑∫√∞",
        "Spaces:\u00a0nbsp\u2002en\u2003em\u3000ideographic\u202fnarrow\u205fmath\u1680ogham",
        "Breaks:\u2028line\u2029para\u0085nel\u000bvt\u000cff\r\ncrlf\t\ttabs   three  two \n\n\n",
        "Odd: zero\u200bwidth\u200cnon\u200djoiner\u2060wj\ufeffbom\u180emongolian\u00adshy",
        "Contractions: I'm you're he'll she'd we've it's THEY'RE Don'T o'clock ''quoted''",
        'Code: def f(x):\n    return x**2 + 0x1F  # comment\n\tif a != b: print(f"{a!r}")',
        "Numbers: 3.14159 1,000,000 2024-12-01 +1-555-0100 12345678901234567890",
        "Special: <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<|endoftext|><|im_end",
        "   leading spaces and trailing   ",
    ]
)


def shipped_texts() -> dict[str, str]:
    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted((DATA / "haystacks").glob("*.txt"))}
    texts["alice"] = (DATA / "documents" / "alice-in-wonderland.txt").read_text(encoding="utf-8")
    squad = json.loads((DATA / "squad" / "dev-sample.json").read_text(encoding="utf-8"))
    texts["squad"] = "\n\n".join(
        p["context"] + "\n" + "\n".join(q["question"] for q in p["qas"])
        for article in squad["data"]
        for p in article["paragraphs"]
    )
    texts["unicode"] = UNICODE
    return texts


def assert_same_ids(got: list[int], want: list[int], hf: HFTokenizer) -> None:
    if got != want:
        diff = (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b)
        at = next(diff, min(len(got), len(want)))
        near = hf.decode(want[max(0, at - 5) : at + 5])
        pytest.fail(f"ids differ at {at} of {len(want)} near {near!r}: {got[at:][:5]} (hf {want[at:][:5]})")


def assert_parity(path: Path, texts: dict[str, str]) -> None:
    core, hf = Tokenizer.open(str(path)), HFTokenizer.from_file(str(path))
    for name, text in texts.items():
        want = hf.encode(text, add_special_tokens=False).ids
        assert len(want) > 0, name
        assert_same_ids(core.encode(text), want, hf)
        for skip in (False, True):
            assert core.decode(want, skip_special_tokens=skip) == hf.decode(want, skip_special_tokens=skip)


@pytest.fixture(scope="module")
def tiny_tokenizer_json(tiny_checkpoint_dir) -> Path:
    return tiny_checkpoint_dir / "tokenizer.json"


def test_the_tiny_models_tokenizer_matches_hf_on_the_shipped_texts(tiny_tokenizer_json):
    assert_parity(tiny_tokenizer_json, shipped_texts())


@pytest.mark.slow
def test_the_built_in_models_tokenizer_matches_hf_on_the_shipped_texts(tmp_path):
    """SmolLM2's tokenizer.json (49,152 ids, 48,900 merges): the bundle's if `make demo` exported
    one, else the one the exporter writes from the built-in checkpoint."""
    path = BUILT
    if not path.is_file():
        from acre.exporter.checkpoint import load_checkpoint

        load_checkpoint("builtin").tokenizer.save_pretrained(tmp_path)
        path = tmp_path / "tokenizer.json"
    core, hf = Tokenizer.open(str(path)), HFTokenizer.from_file(str(path))
    assert core.vocab_size == 49152 and core.token_to_id("<|im_start|>") == 1
    assert_parity(path, shipped_texts())
    rng = random.Random(0)  # and short random texts, weighted to the pattern's edges
    pool = [*map(chr, range(0x20, 0x250)), *" \t\n\r\u00a0\u2028\u0085\u180e'sdtmlr0123", "<|im_end|>", "'ll"]
    for _ in range(3000):
        odd = [chr(rng.randrange(32, 1 << 17)) for _ in range(30)]  # anywhere in the first two planes
        picks = (rng.choice(pool) if rng.random() < 0.8 else c for c in odd)
        text = "".join(filter(assigned, "".join(picks)))
        assert core.encode(text) == hf.encode(text, add_special_tokens=False).ids, repr(text)


def assigned(c: str) -> bool:
    """Assigned in Unicode 14, the tables of PCRE2 10.42 (Debian 12) and of Python 3.11's unicodedata.
    Letters and digits assigned later (CJK Extension I, ...) are letters to Hugging Face's Oniguruma
    (Unicode 16) but not yet to PCRE2, so next to an apostrophe or a digit they split differently."""
    return unicodedata.category(c) not in ("Cn", "Cs")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8").filter(assigned), max_size=60))
def test_any_text_encodes_as_hf_does(tiny_tokenizer_json, text):
    core, hf = _pair(tiny_tokenizer_json)
    assert core.encode(text) == hf.encode(text, add_special_tokens=False).ids


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_any_ids_decode_as_hf_does(tiny_tokenizer_json, data):
    """Ids that end inside a UTF-8 sequence: the same U+FFFD replacements as Rust's from_utf8_lossy."""
    core, hf = _pair(tiny_tokenizer_json)
    ids = data.draw(st.lists(st.integers(0, core.vocab_size - 1), max_size=30))
    for skip in (False, True):
        assert core.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)


_PAIRS: dict[Path, tuple[Tokenizer, HFTokenizer]] = {}


def _pair(path: Path) -> tuple[Tokenizer, HFTokenizer]:
    if path not in _PAIRS:
        _PAIRS[path] = Tokenizer.open(str(path)), HFTokenizer.from_file(str(path))
    return _PAIRS[path]


def test_an_id_outside_the_vocabulary_and_unencodable_text_are_input_errors(tiny_tokenizer_json):
    core = Tokenizer.open(str(tiny_tokenizer_json))
    with pytest.raises(InputError, match=f"token id {core.vocab_size} is not in the vocabulary"):
        core.decode([5, core.vocab_size])
    with pytest.raises(InputError, match="not in the vocabulary"):
        core.decode([-1])
    with pytest.raises(UnicodeEncodeError):
        core.encode("lone \ud800 surrogate")


def _saved(tmp_path: Path, name: str, edit) -> Path:
    from tokenizers import Tokenizer as T
    from tokenizers import decoders, models, normalizers, pre_tokenizers

    kinds = {"T": T, "models": models, "normalizers": normalizers, "pre_tokenizers": pre_tokenizers}
    tok = T(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok = edit(tok, kinds) or tok
    path = tmp_path / f"{name}.json"
    tok.save(str(path))
    return path


@pytest.mark.parametrize(
    ("name", "edit", "words"),
    [
        ("unigram", lambda t, k: k["T"](k["models"].Unigram()), "model type Unigram is not supported"),
        ("wordpiece", lambda t, k: k["T"](k["models"].WordPiece(unk_token="[UNK]")), "model type WordPiece"),
        ("nfc", lambda t, k: setattr(t, "normalizer", k["normalizers"].NFC()), "normalizer NFC is not"),
        (
            "metaspace",
            lambda t, k: setattr(t, "pre_tokenizer", k["pre_tokenizers"].Metaspace()),
            "pre_tokenizer Metaspace is not supported",
        ),
        (
            "prefix",
            lambda t, k: setattr(t, "pre_tokenizer", k["pre_tokenizers"].ByteLevel(add_prefix_space=True)),
            "add_prefix_space is not supported",
        ),
    ],
)
def test_a_tokenizer_the_core_cannot_run_is_refused_by_name(tmp_path, name, edit, words):
    path = _saved(tmp_path, name, edit)
    with pytest.raises(TokenizerError, match=words):
        Tokenizer.open(str(path))


def test_a_file_that_is_not_a_tokenizer_is_refused(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": "stand-in"}\n', encoding="utf-8")
    with pytest.raises(TokenizerError, match="tokenizer.json: not a Hugging Face tokenizer.json"):
        Tokenizer.open(str(path))
    path.write_bytes(b"\x00\xff not json")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        Tokenizer.open(str(path))
    with pytest.raises(TokenizerError, match="missing or unreadable"):
        Tokenizer.open(str(tmp_path / "absent.json"))
