"""Articles from the web: pages by URL, RSS/Atom feeds and sitemaps, fetched politely and safely.

One concept per module: `urls` (which addresses may be fetched), `fetch` (the HTTP client), `robots`
(robots.txt), `feeds` (RSS, Atom, sitemaps, feed discovery), `pages` (a fetched page -> an article record),
`store` (where fetched articles are kept), `state` (sources and pages recorded in the catalog) and `sources`
(WebIndex: add, follow, update, publish).
"""

from __future__ import annotations

from rag.web.fetch import USER_AGENT, Fetcher, FetchResult
from rag.web.sources import UpdateReport, WebIndex
from rag.web.state import WebPage, WebSource, WebState
from rag.web.store import web_folder
from rag.web.urls import check_url

__all__ = [
    "Fetcher",
    "FetchResult",
    "USER_AGENT",
    "WebIndex",
    "UpdateReport",
    "WebSource",
    "WebPage",
    "WebState",
    "web_folder",
    "check_url",
]
