"""The evaluation suite's cases (benchmarks/suite.py): made again from their seed, scored by rules that
can fail, never answerable from the prose itself. Runs of the suite are tests/test_benchmarks.py."""

from __future__ import annotations

import random
import re
from functools import cache

import pytest

from acre.haystack import insert_at
from benchmarks import suite
from benchmarks.tasks import HAYSTACKS, Case, haystack, normalise
from tests.conftest import make_tokenizer

PROSE = "Plain words here. " * 40  # for the fact generators alone (no tokenizer needed)
STOP_WORDS = (
    "a an the of in on at to for from by with is are was were be do does did what which who where how "
    "that this many much all each every its his her their it as and or"
)
STOP = set(re.findall(r"\w+", STOP_WORDS))


@cache
def tokenizer():
    return make_tokenizer()


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOP}


@pytest.mark.parametrize("family", suite.FAMILIES)
def test_a_cell_is_made_again_from_its_seeds_and_the_splits_share_no_case(family):
    a = suite.cell(tokenizer(), family, 600, 3)
    b = suite.cell(tokenizer(), family, 600, 3)
    held = suite.cell(tokenizer(), family, 600, 3, split="heldout")
    assert [(c.document, c.question, c.answers, c.seed) for c in a] == [
        (c.document, c.question, c.answers, c.seed) for c in b
    ]
    assert not {c.seed for c in a} & {c.seed for c in held}
    assert [c.document for c in a] != [c.document for c in held]
    for c in a:
        again = suite.make_case(tokenizer(), family, 600, c.depth, c.seed, c.haystack)
        assert again.document == c.document and again.question == c.question  # from the record alone
        assert c.split == "dev" and c.task == family and c.haystack in HAYSTACKS
        assert suite.shown(c.evidence, c.document) and c.correct(" and ".join(c.answers))
        assert not c.correct("I do not know.")
    depths = sorted(c.depth for c in suite.cell(tokenizer(), family, 600, 5))
    # one per fifth (questions: one per document)
    assert [int(d * 5) for d in depths] == [0, 1, 2, 3, 4] or family in ("multidoc", "questions")


def test_the_questions_family_asks_three_questions_of_each_document_and_names_the_others_wrong():
    cases = suite.cell(tokenizer(), "questions", 600, 6)
    for first in (0, 3):
        three = cases[first : first + 3]
        assert len({c.document for c in three}) == 1 and len({c.question for c in three}) == 3
        assert len({(c.depth, c.haystack) for c in three}) == 1
        for c in three:
            others = [o.answers[0] for o in three if o is not c]
            assert c.wrong == others and c.document.count(c.evidence[0]) == 1
            assert c.correct(f"It is {c.answers[0]}.") and not c.correct(
                f"It is {others[0]}, or {c.answers[0]}."
            )
    assert cases[0].document != cases[3].document


def test_the_single_family_draws_over_fifty_distinct_facts_of_five_kinds_none_the_old_needles():
    facts, kinds = set(), set()
    for seed in range(200):
        case = suite.single(PROSE, 0.5, random.Random(seed))
        facts.add(case.evidence[0])
        kinds.add(case.kind)
        assert case.document.count(case.evidence[0]) == 1
    assert len(facts) >= 150 and kinds == {"number", "code", "name", "place", "phrase"}
    assert not any("San Francisco" in f or "pass key" in f for f in facts)


def test_distractor_values_differ_from_the_answer_and_naming_one_first_is_wrong():
    for seed in range(40):
        case = suite.distractors(PROSE, 0.3, random.Random(seed))
        answer = normalise(case.answers[0])
        assert len(case.wrong) == 3 and all(normalise(w) != answer for w in case.wrong)
        # the asked value is only in its own sentence, never in a distractor's
        assert case.document.count(case.answers[0]) == 1
        assert all(case.document.count(w) == 1 for w in case.wrong)
        assert case.correct(f"It is {case.answers[0]}.")
        assert not case.correct(f"It is {case.wrong[0]}, not {case.answers[0]}.")
        assert case.correct(f"It is {case.answers[0]}, not {case.wrong[0]}.")


def test_scoring_takes_whole_words_and_every_value_where_all_are_asked():
    case = Case("multivalue", 0, 0.5, "", "q", "4127", ["4127", "QX-1234", "Kyoto"], need_all=True)
    assert case.correct("They are 4,127, QX-1234 and Kyoto.")
    assert not case.correct("They are 4127 and Kyoto.")
    one = Case("single", 0, 0.5, "", "q", "12", ["12"])
    assert not one.correct("It is 4127.") and one.correct("It is 12.")


def test_a_reply_naming_every_value_has_room_for_them():
    # three listed values take ~35 of the real model's tokens ("are:\n\n1. 32640\n2. ..."): 24 cut them
    for family in suite.FAMILIES:
        for case in suite.cell(tokenizer(), family, 600, 3):
            assert case.reply_tokens >= (64 if case.need_all else 24), family


def test_paraphrased_questions_share_no_content_word_with_their_fact_but_the_name():
    for fact, question, _ in suite.PARAPHRASES:
        shared = content_words(fact.format(n="", v="")) & content_words(question.format(n=""))
        assert not shared, (fact, shared)


def test_no_subject_or_name_word_of_the_needles_occurs_in_the_shipped_haystacks():
    words = [*suite.PREFIXES, *suite.FIRST, *suite.LAST]
    for name in HAYSTACKS:
        text = haystack(name).lower()
        found = [w for w in words if re.search(rf"\b{w.lower()}\b", text)]
        assert not found, (name, found)


def test_the_two_hop_family_scatters_the_supporting_facts_in_story_order():
    for seed in range(20):
        case = suite.twohop(PROSE * 5, 0.2, random.Random(seed))
        at = [case.document.index(e) for e in case.evidence]
        assert len(at) == 2 and at == sorted(at) and at[1] - at[0] > 50
        assert case.answers[0] in suite.BABI_PLACES and case.answers[0] not in case.wrong
        assert not any(p in case.document for p in suite.BABI_PEOPLE)  # renamed
        assert case.correct(f"The {case.question.split()[-1].rstrip('?')} is in the {case.answers[0]}.")


def test_the_multidoc_family_hides_the_gold_passage_at_the_depth_among_answerless_paragraphs():
    sources = set()
    for seed in range(8):
        case = suite.multidoc(tokenizer(), 6000, 0.5, random.Random(seed))
        sources.add(case.kind)
        parts = case.document.split("\n\n")
        gold = [p for p in parts if suite.shown(case.evidence, p)]
        assert len(gold) == 1 and 0.3 < parts.index(gold[0]) / len(parts) < 0.7
        wanted = [f" {normalise(a)} " for a in case.answers]
        assert not any(w in f" {normalise(p)} " for w in wanted for p in parts if p != gold[0])
        assert len(tokenizer().encode(case.document)) >= 6000
    assert sources == {"squad", "nq"}


def test_insert_at_cuts_at_sentence_and_paragraph_ends_never_after_an_abbreviation():
    text = 'Mr. Elliot came in. He left.\n\nShe said "no." Then it rained'
    assert insert_at(text, "X. ", 0.4) == 'Mr. Elliot came in. X. He left.\n\nShe said "no." Then it rained'
    assert insert_at(text, "X. ", 0.55).startswith("Mr. Elliot came in. He left.\n\nX. She")
    assert insert_at(text, "X. ", 0.1) == "X. " + text  # no end before: the start
    assert insert_at(text, "X. ", 1.0).endswith('"no." X. Then it rained')


def test_chunks_are_whole_sentences_of_about_eighty_words_that_cover_the_document():
    from benchmarks.rag import chunk

    text = haystack("fiction")[:20_000]
    chunks = chunk(text)
    words = [len(c.text.split()) for c in chunks]
    assert max(words) <= 80 and sorted(words)[len(words) // 2] >= 50
    assert all(text[c.start : c.end] == c.text for c in chunks)
    gaps = [text[a.end : b.start] for a, b in zip(chunks, chunks[1:], strict=False)]
    assert all(not gap.strip() for gap in gaps)  # in order, nothing left out
    ends = [c.text.rstrip("\"'\u201d\u2019)")[-1] for c in chunks if len(c.text.split()) < 80]
    assert sum(e in ".!?" for e in ends) >= 0.8 * len(ends)  # cut at sentence ends, not mid-sentence


@pytest.mark.parametrize("peer", ["bm25", "embedding"])
def test_a_rag_peer_retrieves_the_needle_within_its_token_budget_in_document_order(peer):
    from benchmarks.rag import retrieve

    tok = tokenizer()
    case = suite.make_case(tok, "single", 3000, 0.6, seed=7, haystack_name="wikipedia")
    for budget in (500, 900):  # tokens of the tiny tokenizer: an 80-word chunk is about 200
        got = retrieve(peer, case.document, case.question, tok, budget)
        assert got.tokens == len(tok.encode(got.text)) and budget / 2 < got.tokens <= budget
        assert len(got.chunks) >= 2 and [c.start for c in got.chunks] == sorted(c.start for c in got.chunks)
        assert all(c.text in got.text for c in got.chunks)
        assert suite.shown(case.evidence, got.text)  # a fact worded like its question: both find it
    cut = retrieve(peer, case.document, case.question, tok, 20)  # not one chunk fits: the best, cut
    assert len(cut.chunks) == 1 and 0 < cut.tokens <= 20
    assert retrieve("nocontext", case.document, case.question, tok, 300).text == ""


def test_the_retrieval_budget_is_acres_refill_region():
    from acre.runtime.policies import Layout, make_policy
    from benchmarks.rag import refill_budget

    class Bundle:
        pot, chunk = 1024, 128

    assert refill_budget(Bundle()) == 384 == Layout.plan(make_policy("acre"), 1024, 128, 64).refill
