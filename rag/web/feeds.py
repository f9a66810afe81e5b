"""RSS, Atom and sitemap parsing, and finding a site's feed from its page.

The XML is parsed with lxml with entity expansion, DTD loading and network access off, and a document that
declares entities at all is refused (as defusedxml does): a feed cannot expand into gigabytes ("billion laughs")
or read a local file (external entities). The fetcher has already capped its size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from rag.errors import FetchError
from rag.ingest.dates import normalize_date

if TYPE_CHECKING:
    from lxml import etree

__all__ = ["FeedItem", "Feed", "parse_feed", "discover_feeds", "looks_like_feed"]

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
)


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed or sitemap: the page's URL and what the feed says of it (each may be missing)."""

    url: str
    title: str | None = None
    date: str | None = None  # ISO, from pubDate / published / news:publication_date
    updated: str | None = None  # ISO, from updated / lastmod: a change here means the page changed
    section: str | None = None  # the first category


@dataclass(frozen=True)
class Feed:
    """A parsed feed or sitemap.

    Attributes:
        kind: rss, atom, sitemap or sitemap-index (whose `items` are the sitemaps it lists).
        items: newest first where dates are given, else in the document's order.
    """

    kind: str
    title: str | None
    items: tuple[FeedItem, ...]


def looks_like_feed(body: bytes) -> bool:
    """Whether the bytes start like an RSS, Atom or sitemap document (not HTML)."""
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<?xml"):
        head = head[head.find(b"?>") + 2 :].lstrip()
        while head.startswith(b"<!--") or head.startswith(b"<?"):
            end = head.find(b"-->") + 3 if head.startswith(b"<!--") else head.find(b"?>") + 2
            head = head[end:].lstrip()
    return head.startswith((b"<rss", b"<feed", b"<urlset", b"<sitemapindex", b"<rdf:rdf", b"<rdf"))


def parse_feed(body: bytes, base_url: str) -> Feed:
    """Parse RSS 2.0 / RSS 1.0 (RDF) / Atom / a sitemap or sitemap index.

    Args:
        body: the document's bytes as fetched.
        base_url: where it came from (relative links are resolved against it).

    Raises:
        FetchError: not XML, not a feed or sitemap, or a document declaring entities.
    """
    from lxml import etree

    if _ENTITY_DECL.search(body[:65536]):
        raise FetchError(
            base_url,
            "the XML declares entities, which are not read (they can expand without bound or read local files)",
        )
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        recover=True,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(body, parser=parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise FetchError(base_url, f"not a readable feed or sitemap ({str(exc)[:100]})") from None
    if root is None:
        raise FetchError(base_url, "not a readable feed or sitemap (empty or not XML)")
    name = _local(root)
    if name == "rss" or name == "rdf":
        channel = _child(root, "channel")
        title = _text(_child(channel, "title")) if channel is not None else None
        entries = [e for e in root.iter() if _local(e) == "item"]
        items = [_rss_item(e, base_url) for e in entries]
        kind = "rss"
    elif name == "feed":
        title = _text(_child(root, "title"))
        items = [_atom_item(e, base_url) for e in root if _local(e) == "entry"]
        kind = "atom"
    elif name in ("urlset", "sitemapindex"):
        title = None
        tag = "url" if name == "urlset" else "sitemap"
        items = [_sitemap_item(e, base_url) for e in root if _local(e) == tag]
        kind = "sitemap" if name == "urlset" else "sitemap-index"
    else:
        raise FetchError(base_url, f"<{name}> is not an RSS, Atom or sitemap document; pass the feed's own URL")
    kept = [i for i in items if i is not None]
    if any(i.date or i.updated for i in kept):
        # Newest first (stable: undated entries keep their place after the dated ones).
        kept.sort(key=lambda i: i.updated or i.date or "", reverse=True)
    return Feed(kind, title, tuple(dict((i.url, i) for i in kept).values()))


def _local(el: etree._Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag.rsplit("}", 1)[-1].split(":")[-1].lower()


def _child(el: etree._Element | None, name: str) -> etree._Element | None:
    if el is None:
        return None
    for c in el:
        if _local(c) == name:
            return c
    return None


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    text = " ".join("".join(el.itertext()).split())
    return text[:500] or None


def _date(value: str | None) -> str | None:
    return normalize_date(value) if value else None


def _link(base: str, href: str | None) -> str | None:
    href = (href or "").strip()
    if not href:
        return None
    url = urljoin(base, href)
    return url if url.lower().startswith(("http://", "https://")) else None


def _rss_item(e: etree._Element, base: str) -> FeedItem | None:
    url = _link(base, _text(_child(e, "link")) or (e.get("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about")))
    guid = _child(e, "guid")
    if url is None and guid is not None and (guid.get("isPermaLink") or "true").lower() == "true":
        url = _link(base, _text(guid))
    if url is None:
        return None
    date = _text(_child(e, "pubdate")) or _text(_child(e, "date"))
    category = _text(_child(e, "category")) or _text(_child(e, "subject"))
    return FeedItem(url, _text(_child(e, "title")), _date(date), None, category)


def _atom_item(e: etree._Element, base: str) -> FeedItem | None:
    href = None
    for c in e:
        if _local(c) == "link" and (c.get("rel") or "alternate") == "alternate":
            href = c.get("href")
            break
    url = _link(base, href)
    if url is None:
        return None
    category = next((c.get("term") or c.get("label") for c in e if _local(c) == "category"), None)
    published = _text(_child(e, "published")) or _text(_child(e, "issued"))
    updated = _text(_child(e, "updated"))
    return FeedItem(
        url,
        _text(_child(e, "title")),
        _date(published or updated),
        _date(updated),
        category.strip() if category and category.strip() else None,
    )


def _sitemap_item(e: etree._Element, base: str) -> FeedItem | None:
    url = _link(base, _text(_child(e, "loc")))
    if url is None:
        return None
    news = _child(e, "news")
    title = date = None
    if news is not None:
        title = _text(_child(news, "title"))
        date = _text(_child(news, "publication_date"))
    lastmod = _text(_child(e, "lastmod"))
    return FeedItem(url, title, _date(date), _date(lastmod), None)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.feeds: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        if tag != "link":
            return
        rel = a.get("rel", "").lower().split()
        kind = a.get("type", "").lower().split(";")[0].strip()
        if "alternate" in rel and kind in _FEED_TYPES and a.get("href"):
            self.feeds.append(a["href"])


def discover_feeds(html: str, page_url: str) -> list[str]:
    """The feeds a page links to (`<link rel="alternate" type="application/rss+xml" href=...>`), absolute, in order."""
    links = _Links()
    try:
        links.feed(html[:2_000_000])
        links.close()
    except Exception:  # html.parser is lenient; a page it still cannot read links to nothing
        pass
    base = urljoin(page_url, links.base) if links.base else page_url
    found = [_link(base, href) for href in links.feeds]
    return list(dict.fromkeys(u for u in found if u))
