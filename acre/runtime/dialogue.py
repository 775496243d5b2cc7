"""The dialogue of follow-up questions: which earlier turns stay in the pot's question region.

The document is ingested once, as the start of the first user message. A turn's prompt is the chat
template rendered after the document: the kept turns (question, answer), then the new question.
The question region of the pot is bounded, so when the dialogue outgrows it the oldest turns are
dropped, for good, and the user is told. Spans are selected with the new question and the turn
before it (what a follow-up such as "and when did it change?" refers to), not the whole dialogue,
and the spans the turn before was about are refilled again while there is room: a follow-up that
names nothing ("what happened after that?") still sees the passage the dialogue is on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_MARKER = "\u0000ACRE-DIALOGUE\u0000"


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str


@dataclass
class Dialogue:
    separator: str  # between the document and the first question
    suffix: str  # closes a question (the template's end of user turn + start of assistant turn)
    turns: list[Turn] = field(default_factory=list)  # the kept turns, oldest first
    dropped: int = 0  # how many turns were dropped so far (they are numbered from 1)
    cores: list[int] = field(default_factory=list)  # the spans the last kept turn was about

    def render(self, tokenizer: Any, turns: list[Turn], question: str) -> list[int]:
        """Token ids of `turns` and then `question`, as they follow the document in the prompt."""
        if not getattr(tokenizer, "chat_template", None):
            tail = "".join(f"{self.separator}{t.question}{self.suffix}{t.answer}" for t in turns)
            tail += f"{self.separator}{question}{self.suffix}"
        else:
            questions = [t.question for t in turns] + [question]
            messages: list[dict[str, str]] = []
            for i, text in enumerate(questions):
                content = _MARKER + self.separator + text if i == 0 else text
                messages.append({"role": "user", "content": content})
                if i < len(turns):
                    messages.append({"role": "assistant", "content": turns[i].answer})
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            tail = rendered.partition(_MARKER)[2]
        return list(tokenizer.encode(tail, add_special_tokens=False))

    def fit(
        self, tokenizer: Any, question: str, room: int, reserve: int
    ) -> tuple[list[int], list[int], int, list[str]]:
        """The prompt of the next turn within `room` slots, leaving `reserve` for the answer: the
        oldest turns are left out until it fits. Returns (prompt ids, selection ids, how many turns
        to drop, notices); nothing changes until `add` records the turn."""
        drop, notices = 0, []
        ids = self.render(tokenizer, self.turns, question)
        while drop < len(self.turns) and len(ids) + reserve > room:
            gone = self.turns[drop]
            drop += 1
            short = gone.question if len(gone.question) <= 40 else gone.question[:37] + "..."
            notices.append(
                f"the dialogue outgrew the question region ({room} slots): dropped turn "
                f"{self.dropped + drop} ({short!r}), the oldest"
            )
            ids = self.render(tokenizer, self.turns[drop:], question)
        kept = self.turns[drop:]
        selection = self.render(tokenizer, kept[-1:], question) if kept else ids
        return ids, selection, drop, notices

    def add(self, question: str, answer: str, drop: int = 0, cores: list[int] | None = None) -> None:
        """Record a turn that was asked, and the spans it was about, after dropping the `drop`
        oldest turns (from `fit`)."""
        del self.turns[:drop]
        self.dropped += drop
        self.turns.append(Turn(question, answer))
        self.cores = list(cores or [])
