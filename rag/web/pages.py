"""A fetched page or PDF -> a WebArticle: the text and what the page or its URL says (title, author, date, outlet,
section), read with the same extractor as local HTML files (rag.ingest.formats)."""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rag.errors import FetchError, IngestError
from rag.ingest.dates import normalize_date
from rag.ingest.formats import html_fields, pdf_fields
from rag.web.feeds import FeedItem
from rag.web.fetch import FetchResult
from rag.web.urls import normalize, same_site

__all__ = ["WebArticle", "read_page", "decode_page", "text_hash", "section_from_url"]

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{2,40})""", re.IGNORECASE)
_SECTION_WORD = re.compile(r"^[a-z][a-z-]{2,29}$")
_NOT_SECTIONS = {
    "news",
    "article",
    "articles",
    "story",
    "stories",
    "post",
    "posts",
    "blog",
    "www",
    "en",
    "amp",
    "index",
    "page",
    "pages",
    "content",
    "item",
    "items",
    "p",
    "a",
    "s",
    "feed",
    "html",
}


@dataclass(frozen=True)
class WebArticle:
    """An article read from the web, as kept beside the index and read back by every build.

    Attributes:
        id: the article's id in the index: its canonical URL (the page's own rel=canonical / og:url when on the
            same site, else the address it was fetched from, normalized).
        text_hash: sha256 of the text with whitespace folded: the same story under another URL has the same one.
    """

    id: str
    url: str
    fetched_url: str
    text: str
    title: str | None
    author: str | None
    date: str | None
    section: str | None
    outlet: str | None
    tags: tuple[str, ...] = ()
    media_type: str = ""
    fetched_at: str = ""
    text_hash: str = ""
    source_url: str = ""  # the feed or sitemap it came from ("" when added by its URL)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The JSON record ingest reads (`.json` with id, text, title, url, author, date, outlet, section, tags)."""
        rec = {k: v for k, v in asdict(self).items() if v not in (None, "", (), {})}
        rec.pop("extra", None)
        rec["tags"] = list(self.tags)
        return rec


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()


def decode_page(body: bytes, declared: str | None) -> str:
    """Page bytes as text: a BOM first, then valid UTF-8 (whatever the header claims: a server that says
    ISO-8859-1 for UTF-8 bytes is the usual wrong charset), then the declared or `<meta charset>` one, then cp1252.
    Newlines become \\n, as for local files."""
    if body.startswith(codecs.BOM_UTF8):
        text = body[3:].decode("utf-8", "replace")
    elif body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = body.decode("utf-16", "replace")
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            decoded: str | None = None
            m = _META_CHARSET.search(body[:4096])
            for name in (declared, m.group(1).decode("ascii", "ignore") if m else None, "cp1252"):
                if not name:
                    continue
                try:
                    codecs.lookup(name)
                except LookupError:
                    continue
                if codecs.lookup(name).name in ("utf-8", "utf-16", "utf-32"):
                    decoded = body.decode(name, "replace")
                    break
                try:
                    decoded = body.decode(name)
                    break
                except UnicodeDecodeError:
                    continue
            text = decoded if decoded is not None else body.decode("latin-1")
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")


def section_from_url(url: str) -> str | None:
    """The section a URL's path names, e.g. /politics/2024/03/budget -> "politics" (None when it names none)."""
    try:
        parts = [p for p in urlsplit(url).path.lower().split("/") if p]
    except ValueError:
        return None
    for part in parts[:-1][:2]:
        if _SECTION_WORD.match(part) and part not in _NOT_SECTIONS:
            return part
    return None


def _outlet_from_host(url: str) -> str | None:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else (host or None)


def read_page(result: FetchResult, item: FeedItem | None = None, source_url: str = "") -> WebArticle:
    """Extract the article from a fetched HTML page or PDF.

    Args:
        result: a 200 response of kind html or pdf.
        item: the feed entry that listed it, whose title, date and category fill what the page does not state.

    Raises:
        FetchError: the page holds no article text, or cannot be read.
    """
    name = result.final_url
    try:
        if result.kind == "pdf":
            fields = pdf_fields(result.body, name)
            fields["url"] = None
        elif result.kind == "html":
            fields = html_fields(decode_page(result.body, result.charset), name)
        else:
            raise FetchError(result.url, f"a {result.kind} document is not an article page")
    except IngestError as exc:
        raise FetchError(result.url, exc.reason) from None
    text = fields.get("text") or ""
    if not text.strip():
        raise FetchError(result.url, "no article text found on the page")
    canonical = fields.get("url")
    if not (
        isinstance(canonical, str)
        and canonical.startswith(("http://", "https://"))
        and same_site(canonical, result.final_url)
    ):
        canonical = result.final_url
    url = normalize(canonical)
    item = item or FeedItem(result.url)
    raw_date = fields.get("date") or item.date
    tags = fields.get("tags") or ()
    if isinstance(tags, str):
        tags = tuple(t.strip() for t in tags.split(",") if t.strip())
    return WebArticle(
        id=url,
        url=url,
        fetched_url=result.final_url,
        text=text,
        title=fields.get("title") or item.title,
        author=fields.get("author"),
        date=normalize_date(raw_date) or (raw_date if isinstance(raw_date, str) else None),
        section=fields.get("section") or item.section or section_from_url(url),
        outlet=fields.get("outlet") or _outlet_from_host(url),
        tags=tuple(str(t) for t in tags)[:50],
        media_type=result.media_type,
        fetched_at=result.fetched_at,
        text_hash=text_hash(text),
        source_url=source_url,
    )
