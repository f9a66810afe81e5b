"""Time in ranking and answers: a question's own time cue ("latest", "in March 2024"), newest-first order, and
citations from articles of different dates laid out newest first after the best one.

The cue is a soft preference: it adds a little to the log-odds of sentences from articles of the right time, so a
clearly better sentence from another time still wins. It does nothing when no retrieved article is dated, which is
why it cannot move figures measured on undated collections such as SQuAD.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from rag.answer.ranking import Candidate
from rag.ingest.dates import MONTHS
from rag.types import Answer, Citation, Document, Passage

__all__ = ["TimeCue", "time_cue", "prefer_cued", "newest_first", "order_citations", "CUE_BONUS"]

CUE_BONUS = 0.5
"""Log-odds added for the best time match: half of the answer model's margin for quoting a second sentence."""

_LATEST = re.compile(r"\b(latest|most recent(?:ly)?|newest|recently|lately)\b", re.I)
_YEAR = re.compile(r"\b(19[5-9]\d|20\d\d)\b")
_MONTH_YEAR = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(19[5-9]\d|20\d\d)\b")
_IN_MONTH = re.compile(
    r"\b(?:in|during|since|by|last)\s+(January|February|March|April|May|June|July|August|September|"
    r"October|November|December)\b",
    re.I,
)


@dataclass(frozen=True)
class TimeCue:
    """What a question says about time: `latest` for "latest"/"most recent", else a year and maybe a month."""

    latest: bool = False
    year: int | None = None
    month: int | None = None


def time_cue(question: str) -> TimeCue | None:
    """The question's time cue, or None when it names no time.

    Example:
        >>> time_cue("What did the Chancellor say in March 2024?")
        TimeCue(latest=False, year=2024, month=3)
    """
    m = _MONTH_YEAR.search(question)
    if m and m.group(1).lower() in MONTHS:
        return TimeCue(year=int(m.group(2)), month=MONTHS[m.group(1).lower()])
    m = _YEAR.search(question)
    if m:
        return TimeCue(year=int(m.group(1)))
    m = _IN_MONTH.search(question)
    if m:
        return TimeCue(month=MONTHS[m.group(1).lower()])
    if _LATEST.search(question):
        return TimeCue(latest=True)
    return None


def _day(iso: str | None) -> date | None:
    try:
        return date.fromisoformat(iso[:10]) if iso else None
    except ValueError:
        return None


def prefer_cued(
    candidates: Sequence[Candidate], documents: Mapping[str, Document], cue: TimeCue | None
) -> list[Candidate]:
    """Candidates with the time bonus added to their score, best first again.

    `latest`: the newest dated article of the pool gets CUE_BONUS, the oldest none, the others in proportion to
    their date. A year (and month): articles dated in it get CUE_BONUS. Dateless articles get nothing.
    """
    if cue is None:
        return list(candidates)
    days = {doc_id: _day(doc.date) for doc_id, doc in documents.items()}
    dated = [d for d in days.values() if d is not None]
    if not dated:
        return list(candidates)
    if cue.latest:
        lo, hi = min(dated).toordinal(), max(dated).toordinal()
        span = max(hi - lo, 1)
        bonus = {
            i: (CUE_BONUS * (d.toordinal() - lo) / span if hi > lo else 0.0) if d else 0.0 for i, d in days.items()
        }
    else:
        bonus = {
            i: CUE_BONUS
            if d and (cue.year is None or d.year == cue.year) and (cue.month is None or d.month == cue.month)
            else 0.0
            for i, d in days.items()
        }
    if not any(bonus.values()):
        return list(candidates)
    moved = [replace(c, score=c.score + bonus.get(c.sentence.doc_id, 0.0)) for c in candidates]
    return sorted(moved, key=lambda c: -c.score)


def newest_first(passages: Sequence[Passage]) -> list[Passage]:
    """Passages by publication date, newest first; dateless ones last; relevance order kept among equals."""
    dated = sorted((p for p in passages if p.date), key=lambda p: p.date or "", reverse=True)
    return dated + [p for p in passages if not p.date]


def order_citations(answer: Answer) -> Answer:
    """The answer with quotes after the best one ordered newest first, when they come from articles of different dates.

    The best quote stays first; citations are renumbered and the text rebuilt in the new order.
    """
    cites = answer.citations
    if len(cites) < 3 or len({c.date[:10] for c in cites[1:] if c.date}) < 2:
        return answer
    rest = sorted((c for c in cites[1:] if c.date), key=lambda c: (c.date or "")[:10], reverse=True)
    rest += [c for c in cites[1:] if not c.date]
    ordered: list[Citation] = [replace(c, number=n) for n, c in enumerate([cites[0], *rest], start=1)]
    text = " ".join(f"{c.quote} [{c.number}]" for c in ordered)
    return replace(answer, text=text, citations=tuple(ordered))
