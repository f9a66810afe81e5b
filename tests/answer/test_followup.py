"""rag.answer.followup: when a question leans on the previous turn, how it is read, and history validation."""

from __future__ import annotations

import pytest

from rag.answer.followup import MAX_TURNS, Turn, parse_history, prefer_articles, read_followup
from rag.answer.ranking import Candidate
from rag.errors import QuestionError
from rag.types import Answer, Citation, Sentence

ABN = (
    "Dutch bank ABN Amro is to cut 2,850 jobs, it has said. Of the jobs to go, 1,500 will be in IT and "
    "operations, the bank said."
)


def _articles(doc_id: str) -> str | None:
    return {"business/1": ABN}.get(doc_id)


def _turn(question: str, doc: str = "business/1", short: str | None = None, quote: str | None = None) -> Turn:
    return Turn(question, doc_ids=(doc,), quote=quote, short_answer=short)


def test_no_history_reads_alone():
    assert read_followup("How many will go in IT?", ()) is None


def test_definite_reference_explained_by_the_previous_article_leans():
    f = read_followup("How many will go in IT?", [_turn("How many jobs is ABN Amro cutting?")], article_text=_articles)
    assert f is not None and f.follows == 1
    # "IT" is a name here, not the pronoun "it"; the subject is added, since there is no pronoun to replace.
    assert not any(r.startswith("pronoun") for r in f.reasons)
    assert f.read_as == "How many will go in IT? (ABN Amro)"
    assert f.prefer == ("business/1",)
    assert "ABN Amro" in f.carry


def test_pronoun_is_resolved_to_the_previous_short_answer_for_who_questions():
    prev = _turn(
        "Who is Gordon Brown's closest ally?", short="Ed Balls", quote="Ed Balls is Gordon Brown's closest ally."
    )
    f = read_followup("And what did he say about the Budget?", [prev])
    assert f is not None
    assert f.read_as == "And what did Ed Balls say about the Budget?"
    assert "Ed Balls" in f.carry


def test_possessive_pronoun_and_thing_referent():
    f = read_followup("What about its profits?", [_turn("How many jobs is ABN Amro cutting?")])
    assert f is not None and f.read_as == "What about ABN Amro's profits?"
    assert {"pronoun its", "connective"} <= set(f.reasons)


def test_elliptical_year_swaps_the_previous_year():
    f = read_followup("And in 2004?", [Turn("How much did Chalone make in 2003?")])
    assert f is not None and f.read_as == "How much did Chalone make in 2004?"


def test_own_new_subject_reads_alone():
    hist = [_turn("How many jobs is ABN Amro cutting?")]
    assert read_followup("Who is the new chief executive of Sainsbury's?", hist, article_text=_articles) is None
    assert read_followup("Who coaches Wales?", hist, article_text=_articles) is None


def test_pointerless_question_on_another_subject_reads_alone():
    hist = [_turn("How many jobs is ABN Amro cutting?")]
    assert read_followup("How much did house prices rise in December?", hist, article_text=_articles) is None


def test_pronoun_with_its_own_antecedent_reads_alone():
    hist = [_turn("How many jobs is ABN Amro cutting?")]
    assert read_followup("Did Tony Blair say he would stand again?", hist, article_text=_articles) is None


def test_third_turn_leans_on_the_second_reading():
    second = Turn("How many will go in IT?", read_as="How many will go in IT? (ABN Amro)", doc_ids=("business/1",))
    f = read_followup("What about operations?", [Turn("How many jobs is ABN Amro cutting?"), second])
    assert f is not None and f.follows == 2 and "ABN Amro" in f.read_as


def test_turn_from_answer_keeps_citations():
    c = Citation(1, "business/1", "t", "s", 0, 10, ABN[:10], 0.9, answer="2,850", answer_start=30, answer_end=35)
    t = Turn.from_answer(Answer("q?", "x", False, 0.9, (c,), read_as="q? (x)", follows=1))
    assert t == Turn("q?", "q? (x)", ("business/1",), ABN[:10], "2,850")


def test_parse_history_accepts_strings_dicts_answers_and_answer_json():
    a = Answer("Who?", "x", False, 0.9, (Citation(1, "d", "t", "s", 0, 1, "Q", 0.9, answer="A"),))
    turns = parse_history(
        [
            "first?",
            {"question": "second?", "answer": a.to_dict()},
            a,
            {"question": "third?", "doc_ids": ["e"], "short_answer": "B"},
        ]
    )
    assert [t.question for t in turns] == ["first?", "second?", "Who?", "third?"]
    assert turns[1].doc_ids == ("d",) and turns[1].short_answer == "A" and turns[1].quote == "Q"
    assert turns[3].doc_ids == ("e",)


@pytest.mark.parametrize(
    "bad, words",
    [
        ("a question", "must be a list"),
        ({"question": "x"}, "must be a list"),
        ([42], "turn 1 must be a question"),
        ([{"answer": {}}], "turn 1: question must be text"),
        ([{"question": "  "}], "turn 1: the question is empty"),
        (["ok", {"question": "x", "answer": "text"}], "turn 2: answer must be an object"),
        ([{"question": "x", "citations": [{"quote": "no id"}]}], "doc_id"),
        ([{"question": "x", "doc_ids": [1, 2]}], "doc_ids"),
    ],
)
def test_parse_history_rejects_malformed_turns_with_the_turn_named(bad, words):
    with pytest.raises(QuestionError, match=words):
        parse_history(bad)


def test_parse_history_trims_turn_count_and_text():
    turns = parse_history([f"question {i}?" for i in range(5000)], max_chars=50)
    assert len(turns) == MAX_TURNS and turns[-1].question == "question 4999?" and turns[-1].number == 5000
    long = parse_history(["x" * 1_000_000], max_chars=50)
    assert len(long[0].question) == 50


def test_prefer_articles_moves_the_previous_articles_up():
    a = Candidate(Sentence("other", 0, 5, "alpha"), 0, {}, 1.0)
    b = Candidate(Sentence("business/1", 0, 5, "bravo"), 1, {}, 0.8)
    moved = prefer_articles([a, b], ("business/1",), 0.5)
    assert [c.sentence.doc_id for c in moved] == ["business/1", "other"]
    assert prefer_articles([a, b], (), 0.5) == [a, b]


def test_names_keep_their_particles_and_skip_sentence_openers():
    from rag.answer.followup import _entities

    assert _entities("Where was Theo van Gogh murdered?") == ["Theo van Gogh"]
    assert _entities("Since when has ABN Amro cut jobs in IT?") == ["ABN Amro"]
    assert _entities("Who is Gordon Brown's closest ally, said Ed Balls") == ["Gordon Brown", "Ed Balls"]
