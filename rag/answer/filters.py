"""Search filters, one vocabulary for the library, the CLI, the HTTP/MCP endpoints and the web app.

A filter picks articles by publication date range, section, outlet, id or source path; the index turns it into the
chunk ids the vector store and BM25 may return, so that `k` results come back after filtering, not before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import FilterError
from rag.ingest.dates import parse_bound

if TYPE_CHECKING:  # pragma: no cover
    from rag.index.catalog import Catalog

__all__ = ["Filters", "make_filters", "allowed_chunks", "SORTS"]

SORTS = ("relevance", "newest")
"""How results are ordered: by relevance (default), or newest article first (dateless ones last)."""


@dataclass(frozen=True)
class Filters:
    """Which articles a search may return; an empty field sets no condition.

    Attributes:
        since, until: inclusive publication-date bounds, "YYYY-MM-DD"; dateless articles never pass a bound.
        sections, outlets: any of these (ignoring case).
        doc_ids, sources: any of these article ids or source paths (either list matches).
    """

    since: str | None = None
    until: str | None = None
    sections: tuple[str, ...] = ()
    outlets: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.since or self.until or self.sections or self.outlets or self.doc_ids or self.sources)

    def describe(self) -> str:
        """The filter in words, for messages ("section politics, since 2024-01-01")."""
        parts = []
        if self.sections:
            parts.append(f"section {', '.join(self.sections)}")
        if self.outlets:
            parts.append(f"outlet {', '.join(self.outlets)}")
        if self.since:
            parts.append(f"since {self.since}")
        if self.until:
            parts.append(f"until {self.until}")
        if self.doc_ids:
            parts.append(f"{len(self.doc_ids)} chosen article(s)")
        if self.sources:
            parts.append(f"{len(self.sources)} source path(s)")
        return ", ".join(parts) or "no filter"


def _values(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """A tuple from None, one string ("a" or "a, b"), or a list of strings; blanks dropped."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value if v is not None]
    return tuple(dict.fromkeys(v.strip() for v in items if v and v.strip()))


def make_filters(
    *,
    since: str | None = None,
    until: str | None = None,
    section: str | Iterable[str] | None = None,
    outlet: str | Iterable[str] | None = None,
    doc_ids: str | Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
) -> Filters:
    """Validated Filters from what a person typed.

    Args:
        since, until: "YYYY-MM-DD", "YYYY-MM" or "YYYY" (a month or year covers all of it).
        section, outlet: one name, comma-separated names, or a list.
        doc_ids: article ids (a string may list several, comma-separated).
        sources: source paths as the index shows them.

    Raises:
        FilterError: a date cannot be read, or `since` is after `until`.

    Example:
        >>> make_filters(since="2024-03", section="politics")
        Filters(since='2024-03-01', until=None, sections=('politics',), outlets=(), doc_ids=(), sources=())
    """
    try:
        lo, hi = parse_bound(since, "since"), parse_bound(until, "until")
    except ValueError as exc:
        raise FilterError(str(exc)) from None
    if lo and hi and lo > hi:
        raise FilterError(f"--since {lo} is after --until {hi}; swap them or widen the range")
    ids = _values(doc_ids) if isinstance(doc_ids, str) else tuple(dict.fromkeys(str(i) for i in (doc_ids or ()) if i))
    return Filters(lo, hi, _values(section), _values(outlet), ids, tuple(dict.fromkeys(sources or ())))


def allowed_chunks(catalog: Catalog, filters: Filters, built_from: str | None = None) -> np.ndarray | None:
    """The ids of the chunks a filtered search may return, int64 (n,); None when the filter is empty.

    Args:
        catalog: the index version's catalog.
        filters: what to keep.
        built_from: the folder (or file) the index was built from: an absolute source path under it is matched
            by its path relative to it, as the catalog keeps it.

    Raises:
        FilterError: a section, outlet or article id the index does not have, listing what it has; or a filter that
            no article passes.
    """
    if filters.empty:
        return None
    for name, given in (("section", filters.sections), ("outlet", filters.outlets)):
        if not given:  # counting every article's values costs a scan of the catalog: only to check given names
            continue
        known = catalog.values(name)
        lower = {v.lower() for v in known}
        unknown = [v for v in given if v.lower() not in lower]
        if unknown:
            listed = ", ".join(sorted(known, key=str.casefold)[:12]) + (" ..." if len(known) > 12 else "")
            hint = f"the index has: {listed}" if known else f"no article in the index has a {name}"
            raise FilterError(f"unknown {name} {unknown[0]!r}; {hint}")
    if filters.doc_ids:
        found = catalog.existing_ids(filters.doc_ids)
        missing = [i for i in filters.doc_ids if i not in found]
        if missing:
            raise FilterError(f"no article with id {missing[0]!r} in the index; `rag info` lists the ids")
    ids = catalog.chunk_ids_matching(
        doc_ids=filters.doc_ids,
        sources=[_as_stored(s, built_from) for s in filters.sources],
        sections=filters.sections,
        outlets=filters.outlets,
        since=filters.since,
        until=filters.until,
    )
    if not ids:
        raise FilterError(f"no indexed article matches the filter ({filters.describe()}); widen it")
    return np.array(ids, dtype=np.int64)


def _as_stored(source: str, built_from: str | None) -> str:
    """A source path as the catalog keeps it: an absolute path under the folder built from becomes relative."""
    path = Path(source)
    if not path.is_absolute() or not built_from:
        return source
    root = Path(built_from)
    for base in (root, root.parent):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return source
