"""A small news site on 127.0.0.1 for the web tests: pages, an RSS and an Atom feed, a sitemap, robots.txt, and
routes that misbehave on purpose (never answers, too large, redirect loop, 404/429/500, wrong or missing charset,
10,000-item feed, redirects to private and metadata addresses).

Nothing here reaches beyond 127.0.0.1: the redirects to private addresses are only ever followed by a fetcher that
refuses them before connecting. The server stops itself after `lifetime_s` whatever the test does.
"""

from __future__ import annotations

import hashlib
import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["WebServer", "Route", "article_html", "rss", "atom", "sitemap", "ARTICLES", "build_site"]


@dataclass
class Route:
    body: bytes = b""
    content_type: str | None = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = True  # answer If-None-Match with 304
    handler: Callable[[_Handler], None] | None = None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        site = self.server.site
        site.requests.append((self.path, dict(self.headers.items())))
        route = site.routes.get(self.path.split("#")[0]) or site.routes.get(self.path.split("?")[0])
        if route is None:
            self._send(404, b"not found", "text/plain")
            return
        if route.handler is not None:
            route.handler(self)
            return
        tag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
        if route.etag and route.status == 200 and self.headers.get("If-None-Match") == tag:
            self._send(304, b"", None, {"ETag": tag})
            return
        headers = dict(route.headers)
        if route.etag and route.status == 200:
            headers["ETag"] = tag
        self._send(route.status, route.body, route.content_type, headers)

    def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: WebServer

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up on purpose (size cap, timeout) is not an error here


class WebServer:
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port; use as a context manager."""

    def __init__(self, lifetime_s: float = 600.0):
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.site = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def set(
        self,
        path: str,
        body: bytes | str,
        content_type: str | None = "text/html; charset=utf-8",
        status: int = 200,
        **kw,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(data, content_type, status, **kw)

    def handle(self, path: str, handler: Callable[[_Handler], None]) -> None:
        self.routes[path] = Route(handler=handler)

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


# -- content ------------------------------------------------------------------------------------------------------

ARTICLES = [
    (
        "harbour",
        "Harbour pier reopens after repairs",
        "2024-03-05T09:00:00Z",
        "business",
        "The Port Elsa harbour authority reopened the northern pier on Tuesday after three weeks of repairs. "
        "Ferries will run on the winter timetable until March. The mayor said the repairs cost 40,000 euros, "
        "less than the council had expected, because the contractor reused the old timber.",
    ),
    (
        "library",
        "City library extends its opening hours",
        "2024-03-06T10:30:00Z",
        "culture",
        "The central library of Port Elsa will open until nine in the evening from April. The librarian, Ana Reyes, "
        "said that students had asked for longer hours during the examination season. The council approved the plan "
        "on Monday and will hire two more staff.",
    ),
    (
        "storm",
        "Storm closes the coastal road",
        "2024-03-07T07:15:00Z",
        "weather",
        "A storm with winds of 110 kilometres an hour closed the coastal road between Port Elsa and Santa Lina on "
        "Thursday. Police said the road would stay closed until the fallen trees were cleared. No one was hurt.",
    ),
]


def article_html(
    title: str,
    body: str,
    date: str | None = None,
    section: str | None = None,
    outlet: str | None = "Port Elsa Gazette",
    canonical: str | None = None,
    charset_meta: str | None = None,
    author: str = "Maria Lopez",
) -> str:
    meta = [f'<meta charset="{charset_meta}">'] if charset_meta else []
    meta.append(f"<title>{html.escape(title)}</title>")
    if outlet:
        meta.append(f'<meta property="og:site_name" content="{html.escape(outlet)}">')
    if date:
        meta.append(f'<meta property="article:published_time" content="{date}">')
    if section:
        meta.append(f'<meta property="article:section" content="{html.escape(section)}">')
    meta.append(f'<meta name="author" content="{html.escape(author)}">')
    if canonical:
        meta.append(f'<link rel="canonical" href="{html.escape(canonical)}">')
    paragraphs = "".join(f"<p>{html.escape(s.strip())}.</p>" for s in body.split(". ") if s.strip())
    return (
        f"<!DOCTYPE html><html><head>{''.join(meta)}</head><body><header><nav><a href='/'>Home</a></nav>"
        f"</header><main><article><h1>{html.escape(title)}</h1>{paragraphs}</article></main>"
        f"<footer><p>Copyright Port Elsa Gazette</p></footer></body></html>"
    )


def _rfc822(iso: str) -> str:
    t = time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", t)


def rss(base: str, items: list[tuple[str, str, str, str]], title: str = "Port Elsa Gazette") -> str:
    """items: (path, title, iso date, category)."""
    body = "".join(
        f"<item><title>{html.escape(t)}</title><link>{base}{p}</link><guid>{base}{p}</guid>"
        f"<pubDate>{_rfc822(d)}</pubDate><category>{html.escape(c)}</category></item>"
        for p, t, d, c in items
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>{base}/</link>{body}</channel></rss>"
    )


def atom(base: str, items: list[tuple[str, str, str, str]]) -> str:
    body = "".join(
        f'<entry><title>{html.escape(t)}</title><link rel="alternate" href="{base}{p}"/><id>{base}{p}</id>'
        f'<published>{d}</published><updated>{d}</updated><category term="{html.escape(c)}"/></entry>'
        for p, t, d, c in items
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Port Elsa Gazette (Atom)</title>{body}</feed>"
    )


def sitemap(base: str, items: list[tuple[str, str]]) -> str:
    """items: (path, lastmod)."""
    body = "".join(f"<url><loc>{base}{p}</loc><lastmod>{m}</lastmod></url>" for p, m in items)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>'


def build_site(server: WebServer, articles=ARTICLES) -> list[tuple[str, str, str, str]]:
    """Serve the articles under /news/<section>/<slug>.html with an RSS feed (/feed.xml), an Atom feed (/atom.xml),
    a sitemap (/sitemap.xml), a home page linking to the feed, and robots.txt. Returns the feed items."""
    base = server.url("")
    items = []
    for slug, title, date, section, body in articles:
        path = f"/news/{section}/{slug}.html"
        server.set(path, article_html(title, body, date, section))
        items.append((path, title, date, section))
    server.set("/feed.xml", rss(base, items), "application/rss+xml; charset=utf-8")
    server.set("/atom.xml", atom(base, items), "application/atom+xml")
    server.set("/sitemap.xml", sitemap(base, [(p, d[:10]) for p, _, d, _ in items]), "application/xml")
    server.set(
        "/",
        '<html><head><title>Port Elsa Gazette</title><link rel="alternate" type="application/rss+xml" '
        'href="/feed.xml"></head><body><p>News</p></body></html>',
    )
    server.set("/robots.txt", "User-agent: *\nDisallow: /private/\n", "text/plain")
    return items
