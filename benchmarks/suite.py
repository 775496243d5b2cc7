"""The evaluation suite (issue 15): task families over real prose, each case made from a recorded seed.

Families (`FAMILIES`), each scored automatically (`Case.correct`):

  single       one fact of one of five kinds (number, code, name, place, phrase) from 15 templates
               with random subjects and values; the question mirrors the fact's wording
  distractors  four facts from one template about four subjects of the same sort, a quarter of the
               document apart; the question asks for one, and a reply naming another value first is wrong
  multivalue   three values for one key at spread depths; the reply must name all three
  twohop       bAbI task 2 (two supporting facts): a story's supporting facts, and a few of its other
               statements, scattered in order through the prose; "Where is the milk?"
  multidoc     a gold SQuAD paragraph or NQ-open passage among Wikipedia paragraphs that hold no gold
               answer, at the depth (lost in the middle); run policy `nocontext` for the closed-book
               baseline (these sets are in pretraining data)
  paraphrase   a fact and a question that share no content word but the subject's name
               ("rides a crimson bicycle to work" / "What colour is the bike ... for the commute?")
  questions    several questions about one document: three facts of three templates about three
               subjects, a third of the document apart; a cell's cases come in threes, one document
               each, asked one after the other in one session (one ingest), each scored on its own

Haystacks: the three shipped kinds of prose (fiction, wikipedia, python-docs), taken round-robin
over a cell's cases, each from a seeded paragraph onward (wrapping around); the needles are made
here, never taken from the prose, and a value the prose already holds is drawn again. multidoc
builds its document from Wikipedia paragraphs instead (recorded as haystack "wikipedia").

Splits: a case's seed is a hash of (root, split, family, length, index), so `dev` and `heldout`
never share a case. Look at, debug and tune on `dev` only; `heldout` is for reporting a change
after it is made, and must not be used for tuning (nor read case by case).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from functools import cache
from typing import Any

from acre.haystack import fill_to, insert_at
from benchmarks.tasks import DATA, HAYSTACKS, SQUAD_SAMPLE, Case, haystack, normalise, squad_paragraphs

FAMILIES = ("single", "distractors", "multivalue", "twohop", "multidoc", "paraphrase", "questions")
QUESTIONS_PER_DOCUMENT = 3  # the questions family: a case's seed is its document's seed * 3 + its question
SPLITS = ("dev", "heldout")
NQ_SAMPLE = DATA / "nq-open" / "nq-open-oracle-sample.jsonl"
BABI_TWO_FACTS = DATA / "babi" / "qa2_two-supporting-facts_test.txt"

# Word lists for subjects and values: none of these words occurs in the shipped haystacks
# (tests/test_suite.py checks), so a needle's subject is found only where it was put.
PREFIXES = (
    "Amberley", "Brackenridge", "Cobaltine", "Dunmore", "Elderwick", "Fernhollow", "Glenmarsh",
    "Harrowgate", "Ivybridge", "Juniperdale", "Kestrelton", "Larkspur", "Marlowe", "Northcote",
    "Oakhurst", "Pellham", "Quillon", "Ravensmoor", "Silverbirch", "Thistledown", "Underhill",
    "Valeport", "Wexley", "Yarrowby",
)  # fmt: skip
SORTS = (
    "Rowing Club", "Chess Society", "Observatory", "Bakery", "Choir", "Museum", "Ferry Company",
    "Bookshop", "Orchard", "Brewery", "Puppet Theatre", "Glassworks",
)  # fmt: skip
FIRST = (
    "Ottoline", "Zephyrine", "Ignatius", "Marisol", "Thaddeus", "Ingeborg", "Leocadia", "Casimir",
    "Philippa", "Evander", "Rosalind", "Barnaby", "Hortensia", "Lysander", "Imogen", "Cornelius",
    "Wilhelmina", "Peregrine", "Clementine", "Ambrose",
)  # fmt: skip
LAST = (
    "Okonkwo", "Thornquist", "Abernethy", "Vasquez", "Lindqvist", "Mbeki", "Castellanos", "Hargreave",
    "Nakamura", "Szabo", "Oyelaran", "Petrovic", "Delacroix", "Fairweather", "Kowalczyk", "Ashdown",
    "Quintero", "Rasmussen", "Tremblay", "Whitlock",
)  # fmt: skip
PLACES = (
    "Reykjavik", "Valparaiso", "Timbuktu", "Ulaanbaatar", "Tromso", "Cartagena", "Zanzibar", "Kyoto",
    "Tbilisi", "Hobart", "Marrakesh", "Nairobi", "Quito", "Dubrovnik", "Galway", "Winnipeg",
    "Salzburg", "Bergen", "Cusco", "Luang Prabang", "Tallinn", "Oaxaca", "Mandalay", "Ushuaia",
)  # fmt: skip
COLOURS = ("crimson", "turquoise", "mustard", "lilac", "emerald", "tangerine", "charcoal", "scarlet")
CONTAINERS = ("biscuit tin", "violin case", "flower pot", "tea caddy", "hatbox", "sugar bowl",
              "wellington boot")  # fmt: skip
DISHES = ("lemon barley soup", "smoked trout pie", "walnut dumplings", "saffron rice pudding",
          "pumpkin flatbread", "fennel and orange salad", "cherry dumplings", "lentil stew")  # fmt: skip
FOODS = ("hazelnuts", "shellfish", "strawberries", "sesame", "mustard seed", "kiwi fruit", "oats")
INSTRUMENTS = ("cello", "oboe", "accordion", "harp", "bassoon", "banjo", "xylophone", "bagpipes")
MOTTOS = ("slow water turns the wheel", "every stone a step", "light before bread", "we mend what we find",
          "tide and lantern", "patience in all weathers")  # fmt: skip

# (fact, question, kind) of the single and distractors families; {s} the subject, {v} the value
TEMPLATES = (
    ("The {s} has exactly {v} members. ", "How many members does the {s} have?", "number"),
    ("The {s} stores {v} barrels of rainwater. ",
     "How many barrels of rainwater does the {s} store?", "number"),
    ("The room number of the {s} is {v}. ", "What is the room number of the {s}?", "number"),
    ("The door code of the {s} is {v}. ", "What is the door code of the {s}?", "code"),
    ("The {s} ships every parcel under the reference {v}. ",
     "Under which reference does the {s} ship every parcel?", "code"),
    ("The licence plate of the van of the {s} is {v}. ",
     "What is the licence plate of the van of the {s}?", "code"),
    ("The {s} is run by a woman named {v}. ", "Who runs the {s}?", "name"),
    ("The founder of the {s} was {v}. ", "Who was the founder of the {s}?", "name"),
    ("The night guard at the {s} is called {v}. ", "What is the night guard at the {s} called?", "name"),
    ("The {s} moved its headquarters to {v}. ", "Where did the {s} move its headquarters to?", "place"),
    ("The {s} buys all its paper from a mill in {v}. ",
     "Where is the mill the {s} buys its paper from?", "place"),
    ("The annual outing of the {s} goes to {v}. ", "Where does the annual outing of the {s} go?", "place"),
    ("The {s} keeps its spare keys inside a {v}. ", "Where does the {s} keep its spare keys?", "container"),
    ("The motto of the {s} is \"{v}\". ", "What is the motto of the {s}?", "motto"),
    ("The favourite dish served at the {s} is {v}. ",
     "What is the favourite dish served at the {s}?", "dish"),
)  # fmt: skip
# what a value of each kind is reported as: number, code, name, place or phrase
KIND_OF_VALUE = {"container": "phrase", "motto": "phrase", "dish": "phrase"}

# (fact, question, value kind) for multivalue: three facts of one key
MULTI_TEMPLATES = (
    ("One of the lucky numbers of the {s} is {v}. ", "What are all the lucky numbers of the {s}?", "number"),
    ("One of the towns where the {s} has a branch is {v}. ",
     "In which towns does the {s} have a branch? Name all of them.", "place"),
    ("One of the passwords used at the {s} is {v}. ", "What are all the passwords used at the {s}?", "code"),
)  # fmt: skip

# (fact, question, value kind) for paraphrase; {n} a person's full name. The question shares no
# content word with the fact except the name (tests/test_suite.py checks).
PARAPHRASES = (
    ("{n} was born in {v}. ", "What is the hometown of {n}?", "place"),
    ("The bakery owned by {n} bakes {v} loaves each morning. ",
     "How much bread does the shop of {n} make per day?", "number"),
    ("{n} rides a {v} bicycle to work. ", "What colour is the bike that {n} uses for the commute?", "colour"),
    ("The wireless password in the cottage of {n} is {v}. ",
     "Which secret string gets guests online at the home of {n}?", "code"),
    ("{n} married a dentist called {v}. ", "Who is the spouse of {n}?", "name"),
    ("Each winter {n} travels to {v} to visit an aunt. ",
     "Where does {n} go during the cold months to see a relative?", "place"),
    ("The grandfather of {n} repaired clocks for {v} years. ",
     "How long did the grandpa of {n} spend fixing timepieces?", "number"),
    ("The gym locker assigned to {n} is number {v}. ",
     "Which cabinet at the fitness centre belongs to {n}?", "number"),
    ("{n} is allergic to {v}. ", "What food makes {n} ill?", "food"),
    ("{n} learned the {v} from a neighbour. ",
     "Which musical instrument did {n} pick up from the person next door?", "instrument"),
    ("The car that {n} drives has the plate {v}. ", "What registration is on the vehicle of {n}?", "code"),
    ("The best friend of {n} at school was {v}. ", "Who was the closest childhood companion of {n}?", "name"),
)  # fmt: skip
KIND_OF_VALUE.update(colour="phrase", food="phrase", instrument="phrase")


def case_seed(family: str, length: int, index: int, split: str = "dev", root: int = 0) -> int:
    """The seed of case `index` of a cell: a hash, so the splits (and cells) share no case."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: one of {', '.join(SPLITS)}")
    digest = hashlib.sha256(f"acre-suite/{root}/{split}/{family}/{length}/{index}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def cell(tokenizer: Any, family: str, length: int, n: int, split: str = "dev", root: int = 0) -> list[Case]:
    """The `n` cases of one (family, length) cell: depths stratified over the document (one per
    n-th of it, jittered by the seed), haystacks round-robin. The questions family's cases share a
    document three by three (its first case's index, seed, depth and haystack)."""
    cases = []
    for i in range(n):
        group = i - i % QUESTIONS_PER_DOCUMENT if family == "questions" else i
        seed = case_seed(family, length, group, split, root)
        depth = round(0.02 + 0.96 * (group + random.Random(seed).random()) / n, 4)
        if family == "questions":
            seed = seed * QUESTIONS_PER_DOCUMENT + i - group
        case = make_case(tokenizer, family, length, depth, seed, HAYSTACKS[group % len(HAYSTACKS)])
        case.split = split
        cases.append(case)
    return cases


def make_case(tokenizer: Any, family: str, length: int, depth: float, seed: int, haystack_name: str) -> Case:
    """One case, the same for the same arguments (all of them are recorded with its result)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: one of {', '.join(FAMILIES)}")
    rng = random.Random(seed)
    if family == "multidoc":
        case = multidoc(tokenizer, length, depth, rng)
    elif family == "questions":
        document_seed, asked = divmod(seed, QUESTIONS_PER_DOCUMENT)
        rng = random.Random(document_seed)
        case = questions(prose_window(tokenizer, haystack_name, length, rng), depth, rng, asked)
        case.haystack = haystack_name
    else:
        prose = prose_window(tokenizer, haystack_name, length, rng)
        case = {"single": single, "distractors": distractors, "multivalue": multivalue,
                "twohop": twohop, "paraphrase": paraphrase}[family](prose, depth, rng)  # fmt: skip
        case.haystack = haystack_name
    case.task, case.length, case.depth, case.seed = family, length, depth, seed
    return case


def prose_window(tokenizer: Any, name: str, length: int, rng: random.Random) -> str:
    """About `length` tokens of a shipped haystack from a seeded paragraph start on, wrapping around."""
    text = haystack(name)
    starts = [0, *(m.end() for m in re.finditer(r"\n\n+", text))]
    at = rng.choice(starts)
    # no model needs 6 characters a token: tokenizing the rest of the haystack would be wasted time
    return fill_to(tokenizer, (text[at:] + "\n\n" + text[:at])[: 6 * length + 1000], length)


# ---- values -------------------------------------------------------------------------------------
def value(kind: str, rng: random.Random) -> str:
    if kind == "number":
        return str(rng.randint(1000, 99999))
    if kind == "code":
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        return "".join(rng.choice(letters) for _ in range(2)) + "-" + str(rng.randint(1000, 9999))
    if kind == "name":
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if kind == "place":
        return rng.choice(PLACES)
    if kind == "container":
        return f"{rng.choice(COLOURS)} {rng.choice(CONTAINERS)}"
    options = {"motto": MOTTOS, "dish": DISHES, "colour": COLOURS, "food": FOODS, "instrument": INSTRUMENTS}
    return rng.choice(options[kind])


def fresh_values(
    kind: str, count: int, rng: random.Random, prose: str, taken: tuple[str, ...] = ()
) -> list[str]:
    """`count` distinct values the prose does not already hold (so only the needle can answer)."""
    found: list[str] = []
    padded = f" {normalise(prose)} " if kind in ("number", "code") else prose.lower()
    for _ in range(200):
        v = value(kind, rng)
        probe = f" {normalise(v)} " if kind in ("number", "code") else v.lower()
        if v not in found and v not in taken and probe not in padded:
            found.append(v)
            if len(found) == count:
                return found
    raise ValueError(f"could not draw {count} fresh {kind} values")


def subjects(count: int, rng: random.Random) -> list[str]:
    """`count` subjects of one sort ("Wexley Observatory", "Dunmore Observatory", ...)."""
    sort = rng.choice(SORTS)
    return [f"{prefix} {sort}" for prefix in rng.sample(PREFIXES, count)]


def place_all(prose: str, sentences: list[str], depths: list[float]) -> str:
    """Insert each sentence at its depth, deepest first so the shallower ones stay where they were."""
    for sentence, at in sorted(zip(sentences, depths, strict=True), key=lambda p: -p[1]):
        prose = insert_at(prose, sentence, at)
    return prose


# ---- families -----------------------------------------------------------------------------------
def single(prose: str, depth: float, rng: random.Random) -> Case:
    fact, question, kind = rng.choice(TEMPLATES)
    (s,), (v,) = subjects(1, rng), fresh_values(kind, 1, rng, prose)
    sentence = fact.format(s=s, v=v)
    return needle_case(place_all(prose, [sentence], [depth]), question.format(s=s), [v], [sentence], kind)


def distractors(prose: str, depth: float, rng: random.Random) -> Case:
    fact, question, kind = rng.choice(TEMPLATES)
    names, values = subjects(4, rng), fresh_values(kind, 4, rng, prose)
    sentences = [fact.format(s=s, v=v) for s, v in zip(names, values, strict=True)]
    depths = [(depth + k / 4) % 1.0 for k in range(4)]  # the asked one (k = 0) at the depth
    document = place_all(prose, sentences, depths)
    case = needle_case(document, question.format(s=names[0]), [values[0]], [sentences[0]], kind)
    case.wrong = values[1:]
    return case


def multivalue(prose: str, depth: float, rng: random.Random) -> Case:
    fact, question, kind = rng.choice(MULTI_TEMPLATES)
    (s,), values = subjects(1, rng), fresh_values(kind, 3, rng, prose)
    sentences = [fact.format(s=s, v=v) for v in values]
    document = place_all(prose, sentences, [(depth + k / 3) % 1.0 for k in range(3)])
    case = needle_case(document, question.format(s=s), values, sentences, kind)
    case.need_all = True
    # three values as a list ("are:\n\n1. 32640\n2. 38363\n3. 77036") take ~35 tokens: 24 cut every
    # policy's reply after the second (measured on the dev split, 2026-12-01)
    case.reply_tokens = 64
    return case


def paraphrase(prose: str, depth: float, rng: random.Random) -> Case:
    fact, question, kind = rng.choice(PARAPHRASES)
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    (v,) = fresh_values(kind, 1, rng, prose, taken=(name,))
    sentence = fact.format(n=name, v=v)
    return needle_case(place_all(prose, [sentence], [depth]), question.format(n=name), [v], [sentence], kind)


def questions(prose: str, depth: float, rng: random.Random, asked: int) -> Case:
    """The document of three facts (three templates, three subjects), and its question `asked`: the
    same rng gives the same document for each of the three."""
    facts = rng.sample(TEMPLATES, QUESTIONS_PER_DOCUMENT)
    names, values = subjects(QUESTIONS_PER_DOCUMENT, rng), []
    for _, _, kind in facts:
        values += fresh_values(kind, 1, rng, prose, taken=tuple(values))
    sentences = [f.format(s=s, v=v) for (f, _, _), s, v in zip(facts, names, values, strict=True)]
    depths = [(depth + k / QUESTIONS_PER_DOCUMENT) % 1.0 for k in range(QUESTIONS_PER_DOCUMENT)]
    document = place_all(prose, sentences, depths)
    fact, question, kind = facts[asked]
    case = needle_case(document, question.format(s=names[asked]), [values[asked]], [sentences[asked]], kind)
    case.wrong = [v for k, v in enumerate(values) if k != asked]
    return case


def needle_case(document: str, question: str, values: list[str], evidence: list[str], kind: str) -> Case:
    return Case("", 0, 0.0, document, question, values[0].lower(), list(values),
                evidence=[e.strip() for e in evidence], kind=KIND_OF_VALUE.get(kind, kind))  # fmt: skip


# ---- two-hop (bAbI task 2) ----------------------------------------------------------------------
BABI_PEOPLE = ("Mary", "John", "Sandra", "Daniel")  # renamed per case: Persuasion has a Mary
BABI_PLACES = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")


@cache
def babi_questions() -> list[tuple[list[str], str, str, list[int]]]:
    """(the story's statements so far, question, answer, supporting statement indices) of bAbI task 2."""
    out, story = [], []
    for line in BABI_TWO_FACTS.read_text(encoding="utf-8").splitlines():
        number, _, rest = line.partition(" ")
        if number == "1":
            story = []
        if "\t" in rest:
            question, answer, support = rest.split("\t")
            out.append((list(story), question.strip(), answer.strip(), [int(x) - 1 for x in support.split()]))
        story.append(rest.strip() if "\t" not in rest else "")  # a question keeps its line number
    return out


def twohop(prose: str, depth: float, rng: random.Random) -> Case:
    story, question, answer, support = rng.choice(babi_questions())
    facts = sorted(support)
    # the actors of the supporting facts and the object asked about: statements naming neither
    # cannot change the answer, so a few of them come along as distractors
    involved = {story[i].split()[0] for i in facts} | {question.rstrip("?").split()[-1]}
    others = [
        i for i, s in enumerate(story) if s and i not in facts and not involved & set(s.rstrip(".").split())
    ]
    chosen = sorted(facts + rng.sample(others, min(3, len(others))))
    people = dict(zip(BABI_PEOPLE, rng.sample(FIRST, len(BABI_PEOPLE)), strict=True))

    def rename(text: str) -> str:
        return re.sub(r"\b(" + "|".join(BABI_PEOPLE) + r")\b", lambda m: people[m.group(1)], text)

    sentences = [rename(story[i]) + " " for i in chosen]
    end = min(depth + 0.4, 0.98)  # statements in story order from the depth on
    depths = [depth + (end - depth) * k / max(1, len(chosen) - 1) for k in range(len(chosen))]
    document = place_all(prose, sentences, depths)
    evidence = [rename(story[i]) for i in facts]
    case = Case("", 0, 0.0, document, rename(question), answer, [answer], evidence=evidence, kind="location")
    case.wrong = sorted({p for s in sentences for p in BABI_PLACES if p in s} - {answer})
    return case


# ---- multi-document QA --------------------------------------------------------------------------
@cache
def nq_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in NQ_SAMPLE.read_text(encoding="utf-8").splitlines()]


@cache
def distractor_pool() -> tuple[tuple[str, str], ...]:
    """Every paragraph multidoc may use, with its normalised text padded for whole-word search: the
    Wikipedia haystack's paragraphs (not its one-line article titles), the SQuAD sample's and the NQ
    sample's gold passages."""
    wiki = [p for p in haystack("wikipedia").split("\n\n") if len(p.split()) > 20]
    squad = [p for p, _ in squad_paragraphs(SQUAD_SAMPLE)]
    nq = [r["ctxs"][0]["text"] for r in nq_records()]
    return tuple((p, f" {normalise(p)} ") for p in dict.fromkeys([*wiki, *squad, *nq]))


def multidoc(tokenizer: Any, length: int, depth: float, rng: random.Random) -> Case:
    """A gold paragraph (SQuAD) or passage (NQ-open) at the depth among paragraphs that hold none of
    its answers (`distractor_pool`), shuffled, and cycled again where a long document needs more
    than there are."""
    if rng.random() < 0.5:
        paragraphs = squad_paragraphs(SQUAD_SAMPLE)
        gold, questions = rng.choice(paragraphs)
        qa = rng.choice(questions)
        question, answers, source = qa["question"], sorted({a["text"] for a in qa["answers"]}), "squad"
    else:
        record = rng.choice(nq_records())
        gold, answers, source = record["ctxs"][0]["text"], record["answers"], "nq"
        question = record["question"][:1].upper() + record["question"][1:] + "?"
    wanted = [f" {normalise(a)} " for a in answers]
    pool = [p for p, n in distractor_pool() if p != gold and not any(w in n for w in wanted)]
    if not pool:
        raise ValueError("multidoc: every distractor paragraph holds a gold answer")
    rng.shuffle(pool)
    chosen, total = [], len(tokenizer.encode(gold, add_special_tokens=False))
    while total < length:
        p = pool[len(chosen) % len(pool)]
        chosen.append(p)
        total += len(tokenizer.encode(p, add_special_tokens=False)) + 1
    at = round(depth * len(chosen))
    document = "\n\n".join([*chosen[:at], gold, *chosen[at:]])
    evidence = [answer_sentence(gold, answers)]
    case = Case("", 0, 0.0, document, question, answers[0].lower(), list(answers), evidence=evidence)
    case.haystack, case.kind = "wikipedia", source
    return case


def answer_sentence(passage: str, answers: list[str]) -> str:
    """The sentence of the passage that holds a gold answer (the whole passage if none does)."""
    for sentence in re.split(r"(?<=[.!?])\s+", passage):
        if any(a.lower() in sentence.lower() for a in answers):
            return sentence.strip()
    return passage.strip()


def shown(evidence: list[str], text: str) -> bool:
    """Whether every piece of evidence is in `text` (whitespace aside): what the model was shown."""
    flat = " ".join(text.split())
    return bool(evidence) and all(" ".join(e.split()) in flat for e in evidence)
