"""The Atom feed of new answers to the watched questions, at /answers.xml, behind the web app's login.

Any feed reader can follow it: one entry per recorded answer (newest first), with the question, the short answer,
the quote, the article's title, date and URL (or, for an article that has none, its place in the app:
`<app>/#answer-<id>` opens the answer in the Sources panel), and the time it was recorded. Readers that send the
login as HTTP Basic credentials (as for /api) get it; others get 401 with a Basic challenge. An ETag lets a reader
that polls get 304 until a new answer is recorded.

Example:
    curl -u user:password http://127.0.0.1:7860/answers.xml
"""

from __future__ import annotations

import hashlib
import html
import uuid
from collections.abc import Sequence
from xml.sax.saxutils import escape

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Route

from rag.library.library import Library
from rag.watch.store import WatchedAnswer, WatchStore, now
from ui.access import Credentials

__all__ = ["atom_feed", "feed_route", "MAX_ENTRIES", "answer_link"]

MAX_ENTRIES = 200
"""Entries in the feed: the newest answers (a reader keeps what it has seen)."""
ATOM = "http://www.w3.org/2005/Atom"


def answer_link(a: WatchedAnswer, base: str) -> str:
    """Where an entry points: the article's own web address, else the answer in the app."""
    if a.url and a.url.startswith(("http://", "https://")):
        return a.url
    return f"{base}#answer-{a.id}"


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def _entry_id(feed_id: str, a: WatchedAnswer) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.UUID(feed_id), str(a.id))}"


def _content(a: WatchedAnswer, base: str) -> str:
    """The entry's body as HTML (escaped once more by the XML writer): question, short answer, quote, citation."""
    e = html.escape
    c = a.citation
    quote = e(a.quote)
    start, end, ans = c.get("start"), c.get("end"), c.get("answer")
    if ans and isinstance(start, int) and isinstance(c.get("answer_start"), int):
        lo, hi = c["answer_start"] - start, c["answer_end"] - start
        if 0 <= lo < hi <= len(a.quote):
            quote = f"{e(a.quote[:lo])}<b>{e(a.quote[lo:hi])}</b>{e(a.quote[hi:])}"
    about = " · ".join(x for x in ((a.date or "")[:10], c.get("section"), c.get("outlet")) if x)
    link = answer_link(a, base)
    where = f"{e(a.url or c.get('source') or a.doc_id)}, characters {start}–{end}"
    parts = [f"<p><b>[{a.question_id}] {e(a.question)}</b></p>"]
    if a.short_answer:
        parts.append(f"<p>{e(a.short_answer)}</p>")
    parts.append(f"<blockquote>{quote}</blockquote>")
    parts.append(
        f'<p><a href="{e(link, quote=True)}">{e(a.title)}</a>{f" ({e(about)})" if about else ""}<br>'
        f"{where} · confidence {a.confidence:.2f}</p>"
    )
    return "".join(parts)


def atom_feed(
    answers: Sequence[WatchedAnswer], *, base: str, feed_id: str, title: str = "New answers to the watched questions"
) -> str:
    """The Atom document (RFC 4287) for `answers`, newest first.

    Args:
        answers: recorded answers, in any order (the newest MAX_ENTRIES are kept).
        base: the app's address, with a trailing slash (links to the app and the feed itself).
        feed_id: a UUID that names this index's feed for good (its entries' ids derive from it).
    """
    newest = sorted(answers, key=lambda a: a.id, reverse=True)[:MAX_ENTRIES]
    updated = newest[0].recorded_at if newest else now()
    x = escape
    out = [
        f'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="{ATOM}">',
        f"<id>urn:uuid:{x(feed_id)}</id>",
        f"<title>{x(title)}</title>",
        f"<updated>{x(updated)}</updated>",
        f'<link rel="self" type="application/atom+xml" href="{_attr(base)}answers.xml"/>',
        f'<link rel="alternate" type="text/html" href="{_attr(base)}"/>',
        "<author><name>rag-articles</name></author>",
        "<generator>rag-articles</generator>",
    ]
    for a in newest:
        said = a.short_answer or a.quote
        head = f"[{a.question_id}] {a.question} \u2014 {said}"
        link = answer_link(a, base)
        out += [
            "<entry>",
            f"<id>{_entry_id(feed_id, a)}</id>",
            f"<title>{x(head)}</title>",
            f"<updated>{x(a.recorded_at)}</updated>",
            f"<published>{x(a.recorded_at)}</published>",
            f'<link rel="alternate" type="text/html" href="{_attr(link)}"/>',
            f"<summary>{x(said)}</summary>",
            f'<content type="html">{x(_content(a, base))}</content>',
        ]
        section = a.citation.get("section")
        if section:
            out.append(f'<category term="{_attr(section)}"/>')
        out.append("</entry>")
    out.append("</feed>\n")
    return "\n".join(out)


def _app(library: Library, credentials: Credentials | None) -> FastAPI:
    from ui.api_errors import install_error_handlers
    from ui.api_router import check_login

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.credentials = credentials  # what check_login compares with, as for /api
    install_error_handlers(app, check_login)

    @app.api_route("/answers.xml", methods=["GET", "HEAD"], include_in_schema=False)
    async def answers_xml(request: Request) -> Response:
        check_login(request)
        store = WatchStore(library.index_dir)
        answers = store.answers()
        tag = '"' + hashlib.sha256(f"{len(answers)}:{answers[-1].id if answers else 0}".encode()).hexdigest()[:16] + '"'
        headers = {"ETag": tag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers=headers)
        base = str(request.base_url)
        body = atom_feed(answers, base=base, feed_id=store.feed_id())
        return Response(body, media_type="application/atom+xml; charset=utf-8", headers=headers)

    return app


def feed_route(library: Library, credentials: Credentials | None) -> Route:
    """The /answers.xml route for the server (ui.server.start(routes=...)), with the login of /api."""
    return Route("/answers.xml", _app(library, credentials), methods=["GET", "HEAD"])
