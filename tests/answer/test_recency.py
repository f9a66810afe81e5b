"""Time cues in questions, the soft preference they give, newest-first order, and citations ordered by date."""

from __future__ import annotations

import pytest

from rag.answer.ranking import Candidate
from rag.answer.recency import CUE_BONUS, TimeCue, newest_first, order_citations, prefer_cued, time_cue
from rag.types import Answer, Citation, Document, Passage, Sentence


@pytest.mark.parametrize(
    "question, cue",
    [
        ("What is the latest on the Budget?", TimeCue(latest=True)),
        ("What did the most recent report say?", TimeCue(latest=True)),
        ("What did the Chancellor say in March 2024?", TimeCue(year=2024, month=3)),
        ("Who won in 2004?", TimeCue(year=2004)),
        ("What happened in March?", TimeCue(month=3)),
        ("Who founded the company?", None),
        ("May I ask who is president?", None),
    ],
)
def test_time_cue(question, cue):
    assert time_cue(question) == cue


def _doc(i: str, date: str | None) -> Document:
    return Document(i, "x", i, i, "h", date=date)


def _cand(doc_id: str, score: float) -> Candidate:
    return Candidate(Sentence(doc_id, 0, 1, "x"), 0, {}, score)


def test_preference_is_soft_and_only_for_dated_articles():
    docs = {"old": _doc("old", "2020-01-01"), "new": _doc("new", "2024-01-01"), "none": _doc("none", None)}
    cands = [_cand("old", 1.0), _cand("none", 0.9), _cand("new", 0.8)]
    latest = prefer_cued(cands, docs, TimeCue(latest=True))
    assert [c.sentence.doc_id for c in latest] == ["new", "old", "none"]
    assert latest[0].score == pytest.approx(0.8 + CUE_BONUS)
    # A clearly better sentence from another time still wins.
    far = prefer_cued([_cand("old", 3.0), _cand("new", 0.8)], docs, TimeCue(latest=True))
    assert far[0].sentence.doc_id == "old"
    year = prefer_cued(cands, docs, TimeCue(year=2020))
    assert year[0].sentence.doc_id == "old" and year[0].score == pytest.approx(1.0 + CUE_BONUS)
    # Nothing dated in the pool, or no cue: the order and scores are untouched.
    undated = {k: _doc(k, None) for k in docs}
    assert prefer_cued(cands, undated, TimeCue(latest=True)) == cands
    assert prefer_cued(cands, docs, None) == cands


def test_newest_first_keeps_dateless_last():
    ps = [
        Passage(i, "t", "s", 0, 1, "x", 1.0, date=d) for i, d in (("a", None), ("b", "2023-01-01"), ("c", "2024-05-01"))
    ]
    assert [p.doc_id for p in newest_first(ps)] == ["c", "b", "a"]


def test_later_quotes_newest_first_after_the_best():
    cites = tuple(
        Citation(n, f"d{n}", "t", "s", 0, 1, f"q{n}", 0.5, date=d)
        for n, d in ((1, "2022-01-01"), (2, "2021-01-01"), (3, None), (4, "2024-01-01"))
    )
    answer = Answer("q", "q1 [1] q2 [2] q3 [3] q4 [4]", False, 0.9, cites)
    out = order_citations(answer)
    assert [c.quote for c in out.citations] == ["q1", "q4", "q2", "q3"]
    assert [c.number for c in out.citations] == [1, 2, 3, 4]
    assert out.text == "q1 [1] q4 [2] q2 [3] q3 [4]"
    same_day = tuple(Citation(n, f"d{n}", "t", "s", 0, 1, f"q{n}", 0.5, date="2024-01-01") for n in (1, 2, 3))
    kept = Answer("q", "q1 [1] q2 [2] q3 [3]", False, 0.9, same_day)
    assert order_citations(kept) is kept
