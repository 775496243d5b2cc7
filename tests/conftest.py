"""Shared fixtures: a tiny random-weight Llama with its own small tokenizer, and bundles of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TRAINING_TEXT = (
    "The pass key is hidden somewhere in this long document. Remember it. "
    "Grass is green and the sky is blue. The sun is yellow. Here we go, there and back again. "
    "Question: what is the pass key? Answer: the pass key is 12345. 67890 0123456789. "
) * 20
TINY_CHUNK = 16
TINY_POT = 256


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([TRAINING_TEXT], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", bos_token="<|im_start|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHATML
    return fast


def make_tiny_model(vocab: int, seed: int = 0, **overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    params = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rope_theta=10000.0,
        initializer_range=0.2,  # peaky logits: greedy choices are far from ties
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    params.update(overrides)
    return LlamaForCausalLM(LlamaConfig(**params)).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory) -> Path:
    tokenizer = make_tokenizer()
    model = make_tiny_model(len(tokenizer))
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_checkpoint_dir):
    from acre.exporter.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint_dir)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint_dir, tmp_path_factory) -> Path:
    """A bundle with every target (ExecuTorch and ONNX), fp32 weights so every engine can be held to
    transformers' answers: built once, read-only for tests."""
    from acre.exporter.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    return export_bundle(
        out, ["android", "onnx"], str(tiny_checkpoint_dir), chunk=TINY_CHUNK, pot=TINY_POT, quantize="fp32"
    )


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    """A private copy of the tiny bundle that a test may damage."""
    import shutil

    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
