"""What an index knows of the web: the sources it follows and the pages it fetched, as typed records.

They are stored in the catalog of each index version (tables web_sources and web_pages, rag.index.catalog), so they are
published atomically with the articles they describe and carried into every later version.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from rag.index.catalog import WEB_PAGE_COLUMNS, WEB_SOURCE_COLUMNS

if TYPE_CHECKING:
    from rag.index.catalog import Catalog

__all__ = ["WebSource", "WebPage", "WebState"]


@dataclass(frozen=True)
class WebSource:
    """A feed, sitemap or site the index follows.

    Attributes:
        url: as added (normalized); feed_url: the feed or sitemap actually read (discovered from a site's page).
        kind: rss, atom, sitemap or sitemap-index.
        last_check: when it was last fetched (ISO, UTC); status: ok, not modified or error; last_error: the reason.
        new_items: pages added or changed by the last update; items: entries the feed listed then.
        etag, last_modified: the feed's validators for the next conditional request; content_hash: of its body.
    """

    url: str
    kind: str = ""
    feed_url: str = ""
    title: str | None = None
    added_at: str = ""
    last_check: str | None = None
    status: str = "new"
    last_error: str | None = None
    new_items: int = 0
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    items: int = 0

    def with_(self, **changes: Any) -> WebSource:
        return replace(self, **changes)


@dataclass(frozen=True)
class WebPage:
    """A page fetched into the index.

    Attributes:
        url: the address it was listed or added under (normalized); canonical_url: the page's own canonical one.
        doc_id: the article it is in the index (an earlier page with the same text keeps the story once).
        source_url: the source that listed it ("" when added by its URL).
        content_hash: sha256 of its text (whitespace folded); original: the kept response body, under web_dir.
        updated: the feed's updated/lastmod date for it when last fetched.
    """

    url: str
    canonical_url: str = ""
    doc_id: str = ""
    source_url: str = ""
    etag: str | None = None
    last_modified: str | None = None
    last_check: str | None = None
    status: str = ""
    content_hash: str = ""
    original: str = ""
    updated: str | None = None

    def with_(self, **changes: Any) -> WebPage:
        return replace(self, **changes)


assert tuple(f.name for f in fields(WebSource)) == WEB_SOURCE_COLUMNS
assert tuple(f.name for f in fields(WebPage)) == WEB_PAGE_COLUMNS


@dataclass
class WebState:
    """All sources and pages of one index version, keyed by URL (mutable while an update works on it)."""

    sources: dict[str, WebSource]
    pages: dict[str, WebPage]

    @classmethod
    def empty(cls) -> WebState:
        return cls({}, {})

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> WebState:
        src_rows, page_rows = catalog.web_state()
        return cls({r[0]: WebSource(*r) for r in src_rows}, {r[0]: WebPage(*r) for r in page_rows})

    def rows(self) -> tuple[list[tuple], list[tuple]]:
        """The rows for rag.answer.engine.build_index(web_state=...)."""
        return [astuple(s) for s in self.sources.values()], [astuple(p) for p in self.pages.values()]

    def page_by_hash(self, content_hash: str) -> WebPage | None:
        return next((p for p in self.pages.values() if p.content_hash == content_hash), None)

    def pages_of_doc(self, doc_id: str) -> list[WebPage]:
        return [p for p in self.pages.values() if p.doc_id == doc_id]
