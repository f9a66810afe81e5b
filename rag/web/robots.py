"""robots.txt: fetched once per host through the same safe fetcher, then obeyed for every URL of that host.

As RFC 9309 says: a robots.txt that is missing (4xx) allows everything; one that cannot be read (5xx, timeout,
refused connection) allows nothing for now, so a server in trouble is not crawled.
"""

from __future__ import annotations

import threading
import urllib.robotparser
from dataclasses import dataclass
from typing import Any, Protocol

from rag.errors import FetchError
from rag.web.urls import Target

__all__ = ["RobotsCache", "RobotsRules"]

MAX_ROBOTS_BYTES = 512 * 1024
_PRODUCT = "rag-articles"


@dataclass
class RobotsRules:
    """One host's rules: `parser` is None when everything is allowed; `error` when nothing is (unreadable)."""

    parser: urllib.robotparser.RobotFileParser | None = None
    error: str | None = None

    def allows(self, url: str) -> bool:
        if self.error is not None:
            return False
        return self.parser is None or self.parser.can_fetch(_PRODUCT, url)


class RobotsFetcher(Protocol):
    """What the cache needs of a fetcher (rag.web.fetch.Fetcher is one); handed in, so robots does not import it."""

    def fetch(self, url: str, *, accept: tuple[str, ...], robots: bool, max_bytes: int | None) -> Any: ...

    def set_delay(self, target: Target, seconds: float) -> None: ...


class RobotsCache:
    """robots.txt rules per scheme, host and port, read through `fetcher` (which stays polite doing it)."""

    def __init__(self, fetcher: RobotsFetcher):
        self._fetcher = fetcher
        self._rules: dict[str, RobotsRules] = {}
        self._lock = threading.Lock()

    def rules(self, target: Target) -> RobotsRules:
        default_port = 443 if target.scheme == "https" else 80
        host = target.host if ":" not in target.host else f"[{target.host}]"
        origin = f"{target.scheme}://{host}" + ("" if target.port == default_port else f":{target.port}")
        with self._lock:
            cached = self._rules.get(origin)
        if cached is not None:
            return cached
        rules = self._load(origin, target)
        with self._lock:
            self._rules[origin] = rules
        return rules

    def _load(self, origin: str, target: Target) -> RobotsRules:
        url = origin + "/robots.txt"
        try:
            result = self._fetcher.fetch(url, accept=("text", "html", "feed"), robots=False, max_bytes=MAX_ROBOTS_BYTES)
        except FetchError as exc:
            reason = exc.reason
            if "HTTP 4" in reason:  # missing or forbidden: no rules
                return RobotsRules()
            return RobotsRules(error=f"its robots.txt could not be read ({reason})")
        parser = urllib.robotparser.RobotFileParser(url)
        parser.parse(result.body.decode("utf-8", "replace").splitlines())
        delay = parser.crawl_delay(_PRODUCT)
        if delay:
            try:
                self._fetcher.set_delay(target, float(delay))
            except (TypeError, ValueError):
                pass
        return RobotsRules(parser)

    def require(self, target: Target) -> None:
        """Raise FetchError when robots.txt does not allow fetching `target`."""
        rules = self.rules(target)
        if rules.error is not None:
            raise FetchError(target.url, f"not fetched: {rules.error}; try again later")
        if not rules.allows(target.url):
            raise FetchError(target.url, "robots.txt of this site disallows it for rag-articles; it is not fetched")
