"""The article listing behind a library view: search, filters, natural sort, pages, and counts by section and month.

Pure functions over `DocumentInfo` rows, so that a view of thousands of articles sends one page at a time.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.errors import FilterError
from rag.index.catalog import DocumentInfo
from rag.ingest.dates import month_of

__all__ = ["Listing", "LIST_SORTS", "list_documents", "natural_key"]

LIST_SORTS = ("id", "title", "date", "section", "outlet", "passages")
"""Columns a listing sorts by."""

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str | None) -> tuple:
    """A sort key that orders numbers inside text by value: "a/2" before "a/10", "#9" before "#10".

    Example:
        >>> sorted(["a#10", "a#9", "a#100"], key=natural_key)
        ['a#9', 'a#10', 'a#100']
    """
    parts = _DIGITS.split((text or "").casefold())
    return tuple((0, int(p), "") if i % 2 else (1, 0, p) for i, p in enumerate(parts) if p)


@dataclass(frozen=True)
class Listing:
    """One page of a listing.

    Attributes:
        rows: the articles on this page, in order.
        total: articles matching the search and filters (all pages).
        page: this page, from 1; pages: number of pages (at least 1).
        by_section, by_month: counts over the matching articles ("(none)" for articles without one), largest
            section first, months newest first.
    """

    rows: tuple[DocumentInfo, ...]
    total: int
    page: int
    pages: int
    per_page: int
    by_section: dict[str, int] = field(default_factory=dict)
    by_month: dict[str, int] = field(default_factory=dict)


def _matches(d: DocumentInfo, words: list[str]) -> bool:
    hay = " ".join(x for x in (d.title, d.id, d.section, d.outlet, d.author, " ".join(d.tags)) if x).casefold()
    return all(w in hay for w in words)


def list_documents(
    docs: Sequence[DocumentInfo],
    *,
    query: str = "",
    section: str | None = None,
    outlet: str | None = None,
    sort: str = "id",
    descending: bool = False,
    page: int = 1,
    per_page: int = 50,
) -> Listing:
    """Search, filter, sort and cut one page of `docs`.

    Args:
        query: words that must all appear in the title, id, section, outlet, author or tags (any case).
        section, outlet: only articles with this section / outlet (any case); None or "" for all.
        sort: one of LIST_SORTS; text sorts naturally (numbers by value); dateless articles sort last either way.
        descending: reverse the order.
        page: the page wanted, from 1 (clamped to the last page).
        per_page: rows per page (1-500).

    Raises:
        FilterError: an unknown sort column.
    """
    if sort not in LIST_SORTS:
        raise FilterError(f"cannot sort the articles by {sort!r}; use one of: {', '.join(LIST_SORTS)}")
    per_page = max(1, min(500, int(per_page)))
    words = (query or "").casefold().split()
    want_section = (section or "").casefold()
    want_outlet = (outlet or "").casefold()
    hits = [
        d
        for d in docs
        if (not want_section or (d.section or "").casefold() == want_section)
        and (not want_outlet or (d.outlet or "").casefold() == want_outlet)
        and (not words or _matches(d, words))
    ]
    if sort == "date":
        dated = sorted((d for d in hits if d.date), key=lambda d: (d.date, natural_key(d.id)), reverse=descending)
        ordered = dated + sorted((d for d in hits if not d.date), key=lambda d: natural_key(d.id))
    elif sort == "passages":
        ordered = sorted(hits, key=lambda d: (d.chunks, natural_key(d.id)), reverse=descending)
    else:
        value = {
            "id": lambda d: d.id,
            "title": lambda d: d.title,
            "section": lambda d: d.section,
            "outlet": lambda d: d.outlet,
        }[sort]
        ordered = sorted(hits, key=lambda d: (natural_key(value(d)), natural_key(d.id)), reverse=descending)
    pages = max(1, -(-len(ordered) // per_page))
    page = max(1, min(int(page), pages))
    # Spellings that differ only in case are one section, shown as first met.
    spelling: dict[str, str] = {}
    for d in docs:
        if d.section:
            spelling.setdefault(d.section.casefold(), d.section)
    sections = Counter(spelling[d.section.casefold()] if d.section else "(none)" for d in hits)
    months = Counter(month_of(d.date) or "(none)" for d in hits)
    return Listing(
        rows=tuple(ordered[(page - 1) * per_page : page * per_page]),
        total=len(ordered),
        page=page,
        pages=pages,
        per_page=per_page,
        by_section=dict(sorted(sections.items(), key=lambda kv: (-kv[1], natural_key(kv[0])))),
        by_month=dict(sorted(months.items(), key=lambda kv: (kv[0] != "(none)", kv[0]), reverse=True)),
    )
