"""Article metadata an HTML page declares about itself: Open Graph / article meta tags, JSON-LD, and `<time>`.

trafilatura finds the text and some of this; the publication date, section, outlet and tags are read here from
what the page states explicitly, so that a page that states no date stays dateless instead of getting one guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

__all__ = ["PageMeta", "read_page_meta"]

_DATE_META = (
    "article:published_time",
    "og:published_time",
    "datepublished",
    "pubdate",
    "publishdate",
    "dc.date",
    "dc.date.issued",
    "date",
    "sailthru.date",
    "parsely-pub-date",
)
_SECTION_META = ("article:section", "section", "parsely-section", "category")
_OUTLET_META = ("og:site_name", "application-name", "publisher", "dc.publisher")
_TAG_META = ("article:tag", "keywords", "news_keywords", "parsely-tags")
_ARTICLE_TYPES = {"article", "newsarticle", "reportagenewsarticle", "blogposting", "analysisnewsarticle", "webpage"}


@dataclass
class PageMeta:
    """What the page declares; every field may be missing."""

    date: str | None = None
    section: str | None = None
    outlet: str | None = None
    author: str | None = None
    title: str | None = None
    tags: list[str] = field(default_factory=list)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, list[str]] = {}
        self.ld: list[str] = []
        self.times: list[str] = []
        self._in_ld = False
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            key = (a.get("property") or a.get("name") or a.get("itemprop") or "").strip().lower()
            if key and a.get("content"):
                self.meta.setdefault(key, []).append(a["content"].strip())
        elif tag == "script" and a.get("type", "").strip().lower() == "application/ld+json":
            self._in_ld, self._buf = True, []
        elif tag == "time" and a.get("datetime"):
            self.times.append(a["datetime"].strip())

    def handle_data(self, data: str) -> None:
        if self._in_ld:
            self._buf.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_ld:
            self._in_ld = False
            self.ld.append("".join(self._buf))


def _first(meta: dict[str, list[str]], keys: tuple[str, ...]) -> str | None:
    for k in keys:
        if meta.get(k):
            return meta[k][0]
    return None


def _name(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        return _name(value.get("name"))
    if isinstance(value, list) and value:
        names = [n for n in (_name(v) for v in value) if n]
        return ", ".join(names) or None
    return None


def _ld_objects(blob: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(blob)
    except (ValueError, RecursionError):
        return []
    out: list[dict[str, Any]] = []
    stack = [data]
    while stack and len(out) < 50:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            out.append(item)
            if isinstance(item.get("@graph"), list):
                stack.extend(reversed(item["@graph"]))
    return out


def _is_article(obj: dict[str, Any]) -> bool:
    kind = obj.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return any(isinstance(k, str) and k.lower() in _ARTICLE_TYPES for k in kinds)


def _tags(value: Any) -> list[str]:
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list):
        return [t.strip() for t in value if isinstance(t, str) and t.strip()]
    return []


def read_page_meta(html: str) -> PageMeta:
    """The metadata an HTML page declares (JSON-LD first, then meta tags, then the first `<time datetime>`).

    Dates come back as written; `rag.ingest.dates.normalize_date` reads them.
    """
    c = _Collector()
    try:
        c.feed(html)
        c.close()
    except Exception:  # html.parser is lenient; a page it still cannot read simply declares nothing
        pass
    page = PageMeta()
    for blob in c.ld:
        for obj in _ld_objects(blob):
            if not _is_article(obj):
                continue
            page.date = page.date or _name(obj.get("datePublished")) or _name(obj.get("dateCreated"))
            page.section = page.section or _name(obj.get("articleSection"))
            page.outlet = page.outlet or _name(obj.get("publisher"))
            page.author = page.author or _name(obj.get("author"))
            page.title = page.title or _name(obj.get("headline"))
            page.tags = page.tags or _tags(obj.get("keywords"))
    page.date = page.date or _first(c.meta, _DATE_META) or (c.times[0] if c.times else None)
    page.section = page.section or _first(c.meta, _SECTION_META)
    page.outlet = page.outlet or _first(c.meta, _OUTLET_META)
    if not page.tags:
        tags = c.meta.get("article:tag") or []
        page.tags = [t for t in tags if t] if tags else _tags(_first(c.meta, _TAG_META[1:]))
    return page
