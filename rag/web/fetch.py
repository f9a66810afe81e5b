"""Polite, bounded HTTP: one request at a time per host, robots.txt, timeouts, size cap, checked redirects.

The fetcher does the network I/O itself (http.client over a socket opened to the vetted address) so that every
safety check applies to every hop: the URL and each address it resolves to (rag.web.urls), each redirect again,
the response's size while it streams, its content type, and a time limit on the whole response.
"""

from __future__ import annotations

import email.utils
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rag.config import VERSION as _VERSION
from rag.config import Settings
from rag.errors import FetchError
from rag.web.urls import Resolver, Target, check_url

__all__ = ["Fetcher", "FetchResult", "USER_AGENT", "CONTENT_TYPES", "media_kind"]

USER_AGENT = f"rag-articles/{_VERSION} (+local article index)"

CONTENT_TYPES = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/rss+xml": "feed",
    "application/atom+xml": "feed",
    "application/rdf+xml": "feed",
    "application/feed+xml": "feed",
    "application/xml": "feed",
    "text/xml": "feed",
    "application/pdf": "pdf",
    "text/plain": "text",
}
"""Media types that are read, by kind: html (pages), feed (RSS, Atom, sitemaps), pdf; text only for robots.txt."""

_REDIRECTS = (301, 302, 303, 307, 308)
_RETRY = (429, 503)


@dataclass(frozen=True)
class FetchResult:
    """One response body (status 200), or a "not modified" answer to a conditional request (status 304, no body).

    Attributes:
        url: the URL asked for; final_url: where the body came from after redirects.
        kind: html, feed, pdf or text (see CONTENT_TYPES); media_type: as the server declared it (or sniffed).
        charset: the charset the Content-Type header declared, if any (it may be wrong; pages.decode checks it).
        etag, last_modified: validators for the next conditional request.
    """

    url: str
    final_url: str
    status: int
    kind: str
    media_type: str
    charset: str | None
    body: bytes
    etag: str | None
    last_modified: str | None
    fetched_at: str
    seconds: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def media_kind(media_type: str) -> str | None:
    """The kind of a media type (e.g. "application/rss+xml" -> "feed"), or None when it is not read."""
    if media_type in CONTENT_TYPES:
        return CONTENT_TYPES[media_type]
    if media_type.endswith("+xml"):
        return "feed"
    return None


def _sniff(body: bytes) -> str | None:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%pdf-"):
        return "application/pdf"
    if head.startswith(b"<?xml") or head.startswith((b"<rss", b"<feed", b"<urlset", b"<sitemapindex", b"<rdf")):
        return "application/xml"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "text/html"
    return None


class _HTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to a vetted address that still checks the certificate against the host name."""

    def __init__(self, address: str, port: int, server_hostname: str, timeout: float, context: ssl.SSLContext):
        super().__init__(address, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname
        self._ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self._server_hostname)


@dataclass
class _Host:
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: float = 0.0
    delay: float = 0.0


class Fetcher:
    """Fetches URLs one at a time per host, with every safety check on every hop.

    Args:
        allow_private: fetch loopback and private addresses too (settings.allow_private_urls).
        allowed: exact addresses allowed whatever their kind (tests allow their own 127.0.0.1 server this way).
        timeout_s: connect and read timeout; the whole response must arrive within 4 x timeout_s.
        max_bytes: larger responses are refused (by Content-Length, or while streaming).
        delay_s: pause between two requests to one host (a robots.txt Crawl-delay raises it, up to 60 s).
        max_redirects: redirects followed per fetch; each target is checked like the first URL.
        retries: further tries after a 429 or 503, waiting Retry-After (or backoff_s doubling), at most
            max_wait_s per wait (a longer Retry-After gives up at once with the reason).
        resolver: host -> addresses (default: the system's); stop: set it to end waits early (watch, Ctrl-C).

    Example:
        >>> result = Fetcher(delay_s=1.0).fetch("https://example.com/news/1.html")
        >>> result.kind, len(result.body)
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allowed: Iterable[str] = (),
        timeout_s: float = 20.0,
        max_bytes: int = 10 * 1024 * 1024,
        delay_s: float = 1.0,
        max_redirects: int = 5,
        retries: int = 3,
        backoff_s: float = 1.0,
        max_wait_s: float = 30.0,
        respect_robots: bool = True,
        resolver: Resolver | None = None,
        user_agent: str = USER_AGENT,
        stop: threading.Event | None = None,
    ):
        from rag.web.robots import RobotsCache

        self.allow_private = allow_private
        self.allowed = frozenset(allowed)
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.delay_s = delay_s
        self.max_redirects = max_redirects
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.resolver = resolver
        self.user_agent = user_agent
        self.stop = stop or threading.Event()
        self.requests = 0
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()
        self._ssl = ssl.create_default_context()
        self.robots = RobotsCache(self) if respect_robots else None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Fetcher:
        """A fetcher with the settings' limits (allow_private_urls, fetch_timeout_s, fetch_max_mb, fetch_delay_s)."""
        opts: dict[str, Any] = dict(
            allow_private=settings.allow_private_urls,
            timeout_s=settings.fetch_timeout_s,
            max_bytes=int(settings.fetch_max_mb * 1024 * 1024),
            delay_s=settings.fetch_delay_s,
        )
        opts.update(kwargs)
        return cls(**opts)

    def check(self, url: str, base: str | None = None) -> Target:
        """Clear a URL without fetching it (raises FetchError with the reason)."""
        return check_url(url, allow_private=self.allow_private, allowed=self.allowed, resolver=self.resolver, base=base)

    def fetch(
        self,
        url: str,
        *,
        accept: Iterable[str] = ("html", "feed", "pdf"),
        etag: str | None = None,
        last_modified: str | None = None,
        robots: bool = True,
        max_bytes: int | None = None,
    ) -> FetchResult:
        """GET a URL, following at most max_redirects redirects, each checked again.

        Args:
            accept: the kinds wanted (html, feed, pdf, text); any other content type is refused with the reason.
            etag, last_modified: the validators of a previous fetch; an unchanged resource gives status 304.
            robots: obey the host's robots.txt (only robots.txt itself is fetched without).

        Raises:
            FetchError: naming the URL and the reason (refused address, HTTP error, timeout, size, type, robots).
        """
        t0 = time.monotonic()
        accept = tuple(accept)
        limit = self.max_bytes if max_bytes is None else max_bytes
        current = url
        seen: list[str] = []
        for _ in range(self.max_redirects + 1):
            target = self.check(current, base=seen[-1] if seen else None)
            if target.url in seen:
                raise FetchError(url, f"redirect loop ({' -> '.join(seen[-3:] + [target.url])})")
            seen.append(target.url)
            if robots and self.robots is not None:
                self.robots.require(target)
            status, headers, body = self._request_retrying(target, etag, last_modified, accept, limit, url)
            if status in _REDIRECTS:
                location = headers.get("location")
                if not location:
                    raise FetchError(url, f"HTTP {status} redirect without a Location header")
                current = location
                continue
            if status == 304:
                return FetchResult(
                    url,
                    target.url,
                    304,
                    "",
                    "",
                    None,
                    b"",
                    headers.get("etag") or etag,
                    headers.get("last-modified") or last_modified,
                    _now(),
                    time.monotonic() - t0,
                )
            media, charset, kind = headers["_media"], headers["_charset"], headers["_kind"]
            return FetchResult(
                url,
                target.url,
                status,
                kind,
                media,
                charset,
                body,
                headers.get("etag"),
                headers.get("last-modified"),
                _now(),
                time.monotonic() - t0,
            )
        raise FetchError(url, f"more than {self.max_redirects} redirects; open the final address instead")

    # -- one request, with politeness and retries ------------------------------------------------------------------

    def _host(self, target: Target) -> _Host:
        key = f"{target.scheme}://{target.host}:{target.port}"
        with self._hosts_lock:
            return self._hosts.setdefault(key, _Host())

    def set_delay(self, target: Target, seconds: float) -> None:
        """Raise the pause between requests to this host (robots.txt Crawl-delay), capped at 60 s."""
        host = self._host(target)
        host.delay = max(host.delay, min(60.0, seconds))

    def _wait(self, seconds: float, url: str) -> None:
        if seconds > 0 and self.stop.wait(seconds):
            raise FetchError(url, "stopped before the request was sent")
        if self.stop.is_set():
            raise FetchError(url, "stopped before the request was sent")

    def _request_retrying(
        self,
        target: Target,
        etag: str | None,
        last_modified: str | None,
        accept: tuple[str, ...],
        limit: int,
        shown: str,
    ) -> tuple[int, dict, bytes]:
        host = self._host(target)
        attempt = 0
        while True:
            with host.lock:  # one request at a time per host, spaced by the delay
                self._wait(host.last + max(self.delay_s, host.delay) - time.monotonic(), shown)
                try:
                    status, headers, body = self._request(target, etag, last_modified, accept, limit, shown)
                finally:
                    host.last = time.monotonic()
            if status not in _RETRY:
                return status, headers, body
            wait = _retry_after(headers.get("retry-after"))
            if wait is None:
                wait = self.backoff_s * (2**attempt)
            if attempt >= self.retries:
                raise FetchError(
                    shown,
                    f"HTTP {status} ({http.client.responses.get(status, '')}) after "
                    f"{attempt + 1} tries; the server is busy, try again later",
                )
            if wait > self.max_wait_s:
                raise FetchError(
                    shown,
                    f"HTTP {status}: the server asks to wait {wait:.0f} s, more than the "
                    f"{self.max_wait_s:g} s this fetcher waits; try again later",
                )
            attempt += 1
            self._wait(wait, shown)

    def _request(
        self,
        target: Target,
        etag: str | None,
        last_modified: str | None,
        accept: tuple[str, ...],
        limit: int,
        shown: str,
    ) -> tuple[int, dict, bytes]:
        self.requests += 1
        deadline = time.monotonic() + 4 * self.timeout_s
        if target.scheme == "https":
            conn: http.client.HTTPConnection = _HTTPS(
                target.address, target.port, target.host, self.timeout_s, self._ssl
            )
        else:
            conn = http.client.HTTPConnection(target.address, target.port, timeout=self.timeout_s)
        try:
            conn.putrequest("GET", target.path, skip_host=True, skip_accept_encoding=True)
            default_port = 443 if target.scheme == "https" else 80
            host = target.host if ":" not in target.host else f"[{target.host}]"
            conn.putheader("Host", host if target.port == default_port else f"{host}:{target.port}")
            conn.putheader("User-Agent", self.user_agent)
            conn.putheader(
                "Accept",
                "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
                "application/xml;q=0.9,text/xml;q=0.9,application/pdf;q=0.8,*/*;q=0.1",
            )
            conn.putheader("Accept-Encoding", "identity")
            if etag:
                conn.putheader("If-None-Match", etag)
            if last_modified:
                conn.putheader("If-Modified-Since", last_modified)
            conn.endheaders()
            resp = conn.getresponse()
            # The response's headers, and below the media type, charset and kind this fetcher read from them.
            headers: dict[str, str | None] = {k.lower(): v for k, v in resp.getheaders()}
            status = resp.status
            if status in _REDIRECTS or status in _RETRY or status == 304:
                return status, headers, b""
            if status != 200:
                reason = resp.reason or http.client.responses.get(status, "")
                hint = (
                    "check the address"
                    if status in (404, 410)
                    else "try again later"
                    if status >= 500
                    else "the server refuses it"
                )
                raise FetchError(shown, f"HTTP {status} {reason}".rstrip() + f"; {hint}")
            media, charset = _content_type(headers.get("content-type") or "")
            length = headers.get("content-length")
            if length and length.strip().isdigit() and int(length) > limit:
                raise FetchError(
                    shown,
                    f"the response is {int(length) / 1048576:.1f} MB, over the "
                    f"{limit / 1048576:g} MB limit (fetch_max_mb)",
                )
            kind = media_kind(media) if media else None
            if media and kind is None:
                raise FetchError(
                    shown, f"content type {media} is not read (pages: HTML or PDF; feeds: RSS, Atom or sitemap XML)"
                )
            body = _read_capped(resp, limit, deadline, shown, self.timeout_s)
            if not media:
                media = _sniff(body) or ""
                kind = media_kind(media) if media else None
                if kind is None:
                    raise FetchError(shown, "no Content-Type and the body looks like neither HTML, XML nor PDF")
            if kind not in accept:
                wanted = " or ".join(accept)
                raise FetchError(shown, f"content type {media} ({kind}) where {wanted} was expected")
            headers.update(_media=media, _charset=charset, _kind=kind)
            return status, headers, body
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(
                shown, f"no answer within {self.timeout_s:g} s (fetch_timeout_s); the server may be down"
            ) from None
        except ssl.SSLError as exc:
            raise FetchError(shown, f"TLS failed ({exc.reason or exc}); check the address") from None
        except ConnectionRefusedError:
            raise FetchError(shown, "connection refused; the server is not running or the port is wrong") from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(shown, f"connection failed ({type(exc).__name__}: {str(exc)[:120]})") from None
        finally:
            conn.close()


def _read_capped(resp: http.client.HTTPResponse, limit: int, deadline: float, shown: str, timeout_s: float) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise FetchError(shown, f"the response took longer than {4 * timeout_s:g} s (4 x fetch_timeout_s)")
        block = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not block:
            break
        size += len(block)
        if size > limit:
            raise FetchError(
                shown, f"the response is over the {limit / 1048576:g} MB limit (fetch_max_mb); stopped reading"
            )
        parts.append(block)
    return b"".join(parts)


def _content_type(value: str) -> tuple[str, str | None]:
    media, _, params = value.partition(";")
    charset = None
    for p in params.split(";"):
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset" and v.strip():
            charset = v.strip().strip("\"'").lower()[:40]
    return media.strip().lower(), charset


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
