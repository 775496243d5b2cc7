"""Session behaviour: chat template, stopping, sampling, independent questions, progress."""

from __future__ import annotations

import numpy as np
import pytest

from acre.errors import InputError
from acre.runtime.pot import SlotKind
from acre.runtime.sampling import Rng, sample
from acre.runtime.selection import choose_and_say_why, choose_spans, core_spans
from acre.runtime.session import DOCUMENT_KINDS as DOC_KINDS
from acre.runtime.session import Session

DOCUMENT = "The sun is yellow. The pass key is 67890. Here we go, there and back again. " * 4


@pytest.fixture(scope="module")
def session(tiny_bundle):
    s = Session(tiny_bundle, engine="torch", policy="full")
    s.ingest(DOCUMENT)
    return s


def test_prompt_is_the_chat_template_with_document_and_question(session):
    list(session.ask("What is the pass key?", max_new_tokens=2))
    expected = session.tokenizer.apply_chat_template(
        [{"role": "user", "content": DOCUMENT + "\n\nWhat is the pass key?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert session.tokenizer.decode(session.prompt_ids) == expected


def test_questions_are_independent_of_earlier_questions(session):
    first = "".join(session.ask("What is the pass key?", max_new_tokens=12))
    list(session.ask("Is the sky blue?", max_new_tokens=12))
    again = "".join(session.ask("What is the pass key?", max_new_tokens=12))
    assert first and first == again
    assert session.pot.used <= len(session.document_ids) + len(session.prompt_ids)


def test_decoding_stops_at_a_stop_token(session):
    greedy = list(session.generate(session.tokenizer.encode("\n\nWhat?"), max_new_tokens=6))
    session.stop_ids = {greedy[2]}  # pretend the third answer token ends the turn
    try:
        assert list(session.generate(session.tokenizer.encode("\n\nWhat?"), max_new_tokens=6)) == greedy[:2]
    finally:
        session.stop_ids = set(session.bundle.eos_token_ids)


def test_sampling_is_reproducible_with_a_seed_and_varies_without(session):
    q = session.tokenizer.encode("\n\nWhat?")
    a = list(session.generate(q, max_new_tokens=16, temperature=1.5, seed=7))
    b = list(session.generate(q, max_new_tokens=16, temperature=1.5, seed=7))
    others = {tuple(session.generate(q, max_new_tokens=16, temperature=1.5, seed=s)) for s in range(5)}
    assert a == b and len(others) > 1


def test_top_p_keeps_only_the_nucleus():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = Rng(0)  # numpy's default_rng(0) stream, run by the core
    drawn = {sample(logits, 1.0, 0.7, rng) for _ in range(300)}
    assert drawn == {0, 1}
    assert sample(logits, 0.0, 1.0, rng) == 0


def test_ingest_reports_progress_per_chunk(tiny_bundle):
    s = Session(tiny_bundle, engine="torch", policy="full")
    seen: list[tuple[int, int]] = []
    n = s.ingest(DOCUMENT, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (n, n) and len(seen) == -(-n // s.chunk)
    assert (s.pot.kind[s.pot.mask] == SlotKind.RECENT).sum() == n


def test_document_longer_than_the_full_pot_is_refused(tiny_bundle):
    s = Session(tiny_bundle, engine="torch", policy="full")
    with pytest.raises(InputError, match="pot"):
        s.ingest(DOCUMENT * 20)


# ---- sources --------------------------------------------------------------------------------
COLORS = ["red", "green", "blue", "yellow", "white", "black", "grey", "brown"]
LONG = "".join(
    f"Note {i}: the {COLORS[i % 8]} box on shelf {i * 7 % 13} holds {1000 + 37 * i} coins.\n"
    for i in range(14)
)
QUESTION = "How many coins does the box on shelf 9 hold?"


@pytest.fixture(scope="module")
def sourced(tiny_bundle, tmp_path_factory):
    store = tmp_path_factory.mktemp("sources") / "doc"
    s = Session(tiny_bundle, engine="onnx")
    s.ingest(LONG, store=store)
    list(s.ask(QUESTION, max_new_tokens=3))
    return s, store


def test_sources_quote_the_document_exactly_in_document_order(sourced):
    s, _ = sourced
    sources = s.last.sources
    assert s.last.spans and sources
    for source in sources:
        assert LONG[source.start : source.end] == source.text and source.text.strip() == source.text
    assert all(a.end < b.start for a, b in zip(sources, sources[1:], strict=False))


def test_sources_cover_every_refilled_token(sourced):
    s, _ = sourced
    offsets = s.source_map.offsets
    refilled = s.pot.token[s.slots_of(SlotKind.REFILL)]
    assert len(refilled)
    for t in refilled:
        start, end = (int(x) for x in offsets[t])
        word = LONG[start:end].strip()
        if start < 0 or not word:
            continue  # a template token, or a token of whitespace
        start += LONG[start:end].index(word)
        assert any(src.start <= start and start + len(word) <= src.end for src in s.last.sources), t
    # and nothing but the chosen spans: each source lies in the text of consecutive chosen spans
    ranges: list[list[int]] = []
    for i in s.last.spans:
        rows = offsets[s.store.starts[i] : s.store.starts[i] + s.store.lengths[i]]
        rows = rows[rows[:, 0] >= 0]
        if ranges and ranges[-1][2] == i - 1:
            ranges[-1][1:] = [int(rows[:, 1].max()), i]
        else:
            ranges.append([int(rows[:, 0].min()), int(rows[:, 1].max()), i])
    assert len(ranges) == len(s.last.sources)
    for (start, end, _), src in zip(ranges, s.last.sources, strict=True):
        assert start <= src.start < src.end <= end and src.text == LONG[start:end].strip()


def test_a_reopened_store_gives_the_same_sources(tiny_bundle, sourced):
    s, store = sourced
    again = Session(tiny_bundle, engine="onnx")
    again.open_document(store)
    list(again.ask(QUESTION, max_new_tokens=3))
    assert again.last.spans == s.last.spans and again.last.sources == s.last.sources


def test_token_ids_alone_give_no_sources(tiny_bundle, sourced):
    s, _ = sourced
    bare = Session(tiny_bundle, engine="onnx")
    bare.ingest_ids(s.document_ids)
    list(bare.ask(QUESTION, max_new_tokens=1))
    assert bare.last.spans and bare.last.sources == [] and bare.source_map is None


# ---- follow-up questions (chat) -------------------------------------------------------------
@pytest.fixture
def chatting(tiny_bundle):
    s = Session(tiny_bundle, engine="onnx")
    s.ingest(LONG)
    return s


def test_the_first_turn_of_a_chat_is_an_ordinary_question(chatting):
    asked = "".join(chatting.ask(QUESTION, max_new_tokens=6))
    prompt = chatting.prompt_ids
    assert "".join(chatting.chat(QUESTION, max_new_tokens=6)) == asked
    assert chatting.prompt_ids == prompt and chatting.last.notices == []
    assert [t.question for t in chatting.dialogue.turns] == [QUESTION]
    assert chatting.dialogue.turns[0].answer == asked


def test_later_turns_see_the_earlier_ones_and_select_with_the_last(chatting, monkeypatch):
    # earlier turns with known answers (a random model's answers are not clean text)
    chatting.dialogue.add("On shelf 3?", "Red.")
    chatting.dialogue.add("On 4?", "Blue.")
    rendered = chatting.tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "DOC\n\nOn shelf 3?"},
            {"role": "assistant", "content": "Red."},
            {"role": "user", "content": "On 4?"},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Blue box?"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    ).partition("DOC")[2]
    seen: list[tuple[list[int], list[int]]] = []  # (question, selection) as the core is asked them
    core = chatting._core

    class Spy:
        def __getattr__(self, name):
            return getattr(core, name)

        def ask(self, question, selection, *rest):
            seen.append((list(question), list(selection)))
            return core.ask(question, selection, *rest)

    monkeypatch.setattr(chatting, "_core", Spy())
    answer = "".join(chatting.chat("Blue box?", max_new_tokens=3))
    assert chatting.tokenizer.decode(chatting.prompt_ids).endswith(rendered)
    # spans were selected with the previous turn and this question, not the whole dialogue
    previous = chatting.dialogue.turns[1:2]
    question, selection = seen[0]
    assert selection == chatting.dialogue.render(chatting.tokenizer, previous, "Blue box?")
    assert chatting.last.notices == [] and "shelf 3" not in chatting.tokenizer.decode(selection)
    assert chatting.tokenizer.decode(question) == rendered  # the answer is made with all of it
    assert [(t.question, t.answer) for t in chatting.dialogue.turns][-1] == ("Blue box?", answer)


def test_a_follow_up_refills_the_spans_the_turn_before_was_about(chatting):
    list(chatting.chat(QUESTION, max_new_tokens=2))
    first = chatting.last.cores
    assert first and chatting.dialogue.cores == first
    list(chatting.chat("And then?", max_new_tokens=2))
    budget = chatting.layout.refill // chatting.span_tokens
    kept = [span for span in first if span in chatting.last.spans]
    assert len(kept) >= min(len(first), budget // 2)  # up to half the refill budget is theirs
    assert set(kept) <= set(chatting.last.cores)  # and they stay what the dialogue is about
    # a plain question carries nothing
    list(chatting.ask("And then?", max_new_tokens=2))
    assert chatting.last.cores == core_spans(
        chatting.last.span_scores, budget, chatting.policy.mass, chatting.policy.min_spans
    )


def test_carried_spans_take_up_to_half_the_budget_before_any_neighbour():
    scores = np.array([0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    assert choose_and_say_why(scores, 4, 0.9, 1, 1) == ([0, 1, 2, 8], [1, 8])
    # two slots kept for the carried: the cores are cut to two, their neighbours wait
    assert choose_and_say_why(scores, 4, 0.9, 1, 1, carried=[6, 3, 5]) == ([0, 1, 3, 6], [1, 6, 3])
    # a carried span that is a core or a neighbour takes no room of its own
    assert choose_and_say_why(scores, 4, 0.9, 1, 1, carried=[1]) == ([0, 1, 2, 8], [1, 8])
    assert choose_spans(scores, 4, 0.9, 1, 1, carried=[42]) == [0, 1, 2, 8]  # not a span: ignored


def test_the_oldest_turns_are_dropped_when_the_dialogue_outgrows_its_region(chatting):
    room = len(chatting.regions[SlotKind.QUESTION])
    question = "Is the sky blue?"
    for turn in range(1, 9):
        list(chatting.chat(f"{turn}. {question}", max_new_tokens=8))
        if chatting.last.notices:
            break
    assert turn > 2, "the region held fewer than two turns: the test says nothing"
    assert chatting.last.notices and "dropped turn 1 ('1. Is the sky" in chatting.last.notices[0]
    kept = [t.question.split(".")[0] for t in chatting.dialogue.turns]
    assert kept == [str(n) for n in range(1 + len(chatting.last.notices), turn + 1)]  # the newest
    question_part = len(chatting.prompt_ids) - int(chatting.pot.mask[chatting.slots_of(*DOC_KINDS)].sum())
    assert question_part + min(8, room // 4) <= room
    # a question too long to ask at all loses no turns
    with pytest.raises(InputError, match="pot slots are left"):
        list(chatting.chat(LONG[:600], max_new_tokens=8))
    assert [t.question.split(".")[0] for t in chatting.dialogue.turns] == kept


def test_a_new_document_starts_a_new_dialogue(chatting):
    list(chatting.chat(QUESTION, max_new_tokens=2))
    chatting.ingest(DOCUMENT)
    assert chatting.dialogue.turns == []


def test_without_the_recent_window_the_answer_sees_the_sinks_and_the_refill_alone(tiny_bundle):
    shown_kinds, recent_scores = [], []
    for answer_recent in (True, False):
        s = Session(tiny_bundle, engine="torch", answer_recent=answer_recent)
        s.ingest(LONG)
        list(s.ask(QUESTION, max_new_tokens=2))
        slots = s.slots_of(*DOC_KINDS)
        shown_kinds.append({SlotKind(k) for k in s.pot.kind[slots[s.pot.mask[slots]]]})
        last = s.pot.token[s.slots_of(SlotKind.RECENT)]
        recent_scores.append(s.last.span_scores[np.unique(last // s.span_tokens)])
    sink, recent, refill = SlotKind.SINK, SlotKind.RECENT, SlotKind.REFILL
    assert shown_kinds == [{sink, recent, refill}, {sink, refill}]
    # hidden, the recent window's spans are scored like any other, so a question about them refills them
    assert (recent_scores[1] > 0).all()
