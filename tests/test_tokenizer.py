"""The run path's tokenizer (acre.runtime.tokenizer) gives what transformers gives: ids, character
offsets, decoded text, special tokens and rendered chat templates; and the run path imports
neither torch nor transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from acre.runtime.tokenizer import BundleTokenizer
from tests.conftest import make_tokenizer

TEXTS = [
    "The pass key is 72904. Remember it!\n\nWhat is the pass key?",
    "naïve café, Straße 日本語 👋🏽 e\u0301 <|im_start|>user\nhi<|im_end|> tail  ",
    "",
]
DIALOGUE = [
    {"role": "user", "content": "A document.\n\nWhere is the key?"},
    {"role": "assistant", "content": 'Under the <b>mat</b> & "rug".'},
    {"role": "user", "content": "And the lock?"},
]


def saved(fast: PreTrainedTokenizerFast, tmp_path) -> tuple[BundleTokenizer, PreTrainedTokenizerFast]:
    fast.save_pretrained(tmp_path)
    return BundleTokenizer(tmp_path), AutoTokenizer.from_pretrained(tmp_path)


def assert_same(ours: BundleTokenizer, theirs: PreTrainedTokenizerFast) -> None:
    for text in TEXTS:
        ids = theirs.encode(text, add_special_tokens=False)
        assert ours.encode(text) == ids
        got_ids, offsets = ours.encode_offsets(text)
        want = theirs(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        assert got_ids == ids and offsets.tolist() == [list(o) for o in want]
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)
    assert ours.all_special_ids == sorted(theirs.all_special_ids)
    assert ours.bos_token_id == theirs.bos_token_id
    for prompt in (True, False):
        want = theirs.apply_chat_template(DIALOGUE, tokenize=False, add_generation_prompt=prompt)
        assert ours.apply_chat_template(DIALOGUE, add_generation_prompt=prompt) == want
    assert ours.apply_chat_template(DIALOGUE, tokenize=True) == theirs.encode(
        theirs.apply_chat_template(DIALOGUE, tokenize=False), add_special_tokens=False
    )


def test_the_native_tokenizer_gives_what_transformers_gives(tmp_path):
    ours, theirs = saved(make_tokenizer(), tmp_path)
    assert ours._native is not None  # the core runs byte-level BPE itself
    assert_same(ours, theirs)


def test_a_tokenizer_the_core_refuses_runs_through_hugging_face_tokenizers(tmp_path):
    # SentencePiece-style BPE (Metaspace, byte fallback): what Llama 2 checkpoints ship
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator([" ".join(TEXTS) * 20], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = make_tokenizer().chat_template
    ours, theirs = saved(fast, tmp_path)
    assert ours._native is None
    assert_same(ours, theirs)


def test_the_run_path_imports_neither_torch_nor_transformers(tiny_bundle):
    script = f"""
import sys
from acre.runtime.session import Session
session = Session({str(tiny_bundle)!r}, engine="executorch")
session.ingest("The pass key is 72904. " * 40)
answer = "".join(session.ask("What is the pass key?", max_new_tokens=4))
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "transformers"}})
print(heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_bundle_without_its_tokenizer_is_refused_by_name(tmp_path):
    from acre.errors import TokenizerError

    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        BundleTokenizer(tmp_path)
