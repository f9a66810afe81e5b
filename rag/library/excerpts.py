"""The text shown around a citation or passage, cut at word boundaries, with the quoted span marked by its offsets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.types import Document, Passage

__all__ = ["Excerpt", "excerpt"]


@dataclass(frozen=True)
class Excerpt:
    """The text shown for a citation or passage: `text[mark_start:mark_end]` is the highlighted span.

    Attributes:
        start: offset of `text` in the document (text == document.text[start:start + len(text)]).
        mark_start, mark_end: the highlighted span, relative to `text`.
        changed: the article was rebuilt with different text since the answer; only the quote is shown.
        answer_start, answer_end: the short answer inside the marked span, relative to `text` (-1 when none).
    """

    doc_id: str
    title: str
    author: str | None
    outlet: str | None
    source: str
    url: str | None
    text: str
    start: int
    mark_start: int
    mark_end: int
    whole: bool
    doc_chars: int = 0
    changed: bool = False
    date: str | None = None
    section: str | None = None
    answer_start: int = -1
    answer_end: int = -1

    @property
    def marked(self) -> str:
        return self.text[self.mark_start : self.mark_end]


def excerpt(
    doc: Document,
    start: int,
    end: int,
    *,
    quote: str | None = None,
    passages: Sequence[Passage] = (),
    whole: bool = False,
    window: int = 400,
    answer: tuple[int, int] | None = None,
) -> Excerpt:
    """The text to show around the span doc.text[start:end], with that span marked by its offsets.

    Args:
        doc: the article the span points into.
        start, end: the span (a citation's or passage's offsets).
        quote: the text the answer quoted; when the article no longer has it at these offsets, the excerpt
            shows only the quote and `changed` is True.
        passages: the answer's passages; the one holding the span gives the context shown around it.
        whole: show the whole article instead of the passage.
        window: characters of context on each side when no passage holds the span.
        answer: the short answer's document offsets, inside [start, end); marked within the span.
    """
    n = len(doc.text)
    if not 0 <= start <= end <= n or (quote is not None and doc.text[start:end] != quote):
        text = quote if quote is not None else ""
        return Excerpt(
            doc.id,
            doc.title,
            doc.author,
            doc.outlet,
            doc.source,
            doc.url,
            text,
            start,
            0,
            len(text),
            whole,
            n,
            changed=True,
            date=doc.date,
            section=doc.section,
        )
    if whole:
        lo, hi = 0, n
    else:
        holder = next((p for p in passages if p.doc_id == doc.id and p.start <= start < p.end), None)
        if holder is not None:
            lo, hi = min(holder.start, start), max(holder.end, end)
        else:
            lo, hi = _snap(doc.text, max(0, start - window), min(n, end + window))
    a_start = a_end = -1
    if answer is not None and start <= answer[0] < answer[1] <= end:
        a_start, a_end = answer[0] - lo, answer[1] - lo
    return Excerpt(
        doc.id,
        doc.title,
        doc.author,
        doc.outlet,
        doc.source,
        doc.url,
        doc.text[lo:hi],
        lo,
        start - lo,
        end - lo,
        whole,
        n,
        date=doc.date,
        section=doc.section,
        answer_start=a_start,
        answer_end=a_end,
    )


def _snap(text: str, lo: int, hi: int) -> tuple[int, int]:
    """Widen [lo, hi) to whitespace so the excerpt does not start or end mid-word."""
    while lo > 0 and not text[lo - 1].isspace():
        lo -= 1
    while hi < len(text) and not text[hi].isspace():
        hi += 1
    return lo, hi
