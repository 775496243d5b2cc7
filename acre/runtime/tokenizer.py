"""The bundle's tokenizer and chat template, read without transformers (the run path stays light).

Ids come from the native core's byte-level BPE (`acre._native.Tokenizer`). A tokenizer.json that the
core refuses by name (SentencePiece-style BPE with byte fallback, WordPiece, ...) runs through
Hugging Face `tokenizers` instead, the library transformers itself uses. The chat template is
rendered with jinja2 the way transformers renders it (a sandbox with trim_blocks and lstrip_blocks,
its helpers raise_exception, strftime_now and tojson, the named special tokens as variables), so a
prompt is the same text as `apply_chat_template` gives; tests/test_tokenizer.py holds the two equal.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from acre.errors import InputError, TokenizerError

NAMED_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class BundleTokenizer:
    """The calls acre makes of a tokenizer, with transformers' names and defaults (the benchmarks'
    task builders take either)."""

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise TokenizerError(f"{directory}: no tokenizer.json (re-export the bundle)")
        config_path = directory / "tokenizer_config.json"
        try:
            text = config_path.read_text("utf-8") if config_path.is_file() else "{}"
            self.config: dict[str, Any] = json.loads(text)
        except (OSError, ValueError) as exc:
            raise TokenizerError(f"{config_path}: unreadable ({exc})") from exc
        template = directory / "chat_template.jinja"
        self.chat_template: str | None = (
            template.read_text("utf-8") if template.is_file() else self.config.get("chat_template")
        )
        try:
            from acre import _native

            self._native: Any = _native.Tokenizer.open(str(path))
            self._fallback: Any = None
        except (ImportError, TokenizerError):  # not built, or a kind the core does not run
            from tokenizers import Tokenizer

            self._native, self._fallback = None, Tokenizer.from_file(str(path))
        self.special_tokens = {
            name: text for name in NAMED_TOKENS if (text := _token_text(self.config.get(name))) is not None
        }
        extra = self.config.get("additional_special_tokens") or self.config.get("extra_special_tokens") or []
        names = [*self.special_tokens.values(), *(t for e in extra if (t := _token_text(e)) is not None)]
        self.special_ids = {i for name in names if (i := self.token_to_id(name)) is not None}
        bos = self.special_tokens.get("bos_token")
        self.bos_token_id = self.token_to_id(bos) if bos is not None else None

    def token_to_id(self, token: str) -> int | None:
        if self._native is not None:
            try:
                return int(self._native.token_to_id(token))
            except InputError:  # not in the vocabulary
                return None
        return self._fallback.token_to_id(token)

    @property
    def all_special_ids(self) -> list[int]:
        return sorted(self.special_ids)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Ids of the text, no special tokens added (those written in it are recognised)."""
        if add_special_tokens:
            raise ValueError("acre adds special tokens itself: encode with add_special_tokens=False")
        if self._native is not None:
            return list(self._native.encode(text))
        return list(self._fallback.encode(text, add_special_tokens=False).ids)

    def encode_offsets(self, text: str) -> tuple[list[int], np.ndarray]:
        """Ids and each id's character range [start, end) in the text, as an [n, 2] int32 array."""
        if self._native is not None:
            ids, flat = self._native.encode_offsets(text)
            return list(ids), np.asarray(flat, dtype=np.int32).reshape(-1, 2)
        encoded = self._fallback.encode(text, add_special_tokens=False)
        return list(encoded.ids), np.asarray(encoded.offsets, dtype=np.int32).reshape(-1, 2)

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        if self._native is not None:
            return self._native.decode([int(i) for i in ids], skip_special_tokens)
        return self._fallback.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool = False, add_generation_prompt: bool = False
    ) -> str | list[int]:
        """The dialogue rendered by the tokenizer's chat template: its text, or its ids with tokenize."""
        if not self.chat_template:
            raise TokenizerError("this tokenizer has no chat template")
        text = self._template.render(
            messages=messages, add_generation_prompt=add_generation_prompt, **self.special_tokens
        )
        return self.encode(text) if tokenize else text

    @cached_property
    def _template(self) -> Any:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise jinja2.exceptions.TemplateError(message)

        def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, **options: Any) -> str:
            # jinja's own tojson escapes HTML characters; transformers' does not
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, **options)

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            return env.from_string(self.chat_template)
        except jinja2.exceptions.TemplateError as exc:
            raise TokenizerError(f"the chat template cannot be read ({exc})") from exc
