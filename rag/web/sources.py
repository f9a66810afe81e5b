"""Articles from the web into an index: add pages by URL, follow feeds and sitemaps, keep the index fresh.

`WebIndex` is what `rag add`, `rag sources ...`, `rag watch` and the web app's Library tab call. One operation:
1. reads the web state (sources, pages) from the live index version's catalog;
2. fetches what is new or changed (conditional requests, at most max_items_per_update pages per source, one
   request at a time per host), keeping each article's record and original under the web folder;
3. publishes one new index version with the articles and the new state together (rag.answer.engine.build_index,
   incremental: only new and changed articles are embedded). A failing source is recorded with its error and
   never stops the others; a failure or an interruption before step 3 publishes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.config import Settings
from rag.errors import BuildLockedError, ConfigError, FetchError, SourceError
from rag.index import indexdir
from rag.index.catalog import Catalog
from rag.types import BuildStats
from rag.watch.asking import WatchReport, after_build
from rag.web.feeds import Feed, FeedItem, discover_feeds, looks_like_feed, parse_feed
from rag.web.fetch import Fetcher, FetchResult
from rag.web.pages import decode_page, read_page
from rag.web.state import WebPage, WebSource, WebState
from rag.web.store import ArticleFiles, web_folder
from rag.web.urls import normalize

if TYPE_CHECKING:
    from rag.index.build import ProgressFn
    from rag.index.embedding import Embedder

__all__ = ["WebIndex", "UpdateReport", "SourceReport", "PageOutcome", "WEB_LOCK"]

WEB_LOCK = ".web.lock"
MAX_CHILD_SITEMAPS = 3
"""Sitemaps of a sitemap index read per update (the most recently modified first)."""

Log = Callable[[str], None]


@dataclass(frozen=True)
class PageOutcome:
    """What became of one page: added, changed, unchanged, duplicate (same text as `doc_id`) or failed (`error`)."""

    url: str
    status: str
    doc_id: str = ""
    title: str | None = None
    error: str | None = None


@dataclass
class SourceReport:
    """One source's part of an update."""

    url: str
    status: str = "ok"
    error: str | None = None
    listed: int = 0
    waiting: int = 0  # entries left for a later update (over max_items_per_update)
    pages: list[PageOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for p in self.pages if p.status == status)


@dataclass
class UpdateReport:
    """The result of add / update: per source, the pages, the build that published them (None: nothing
    published, e.g. stopped), and the answers the saved questions got from them."""

    sources: list[SourceReport] = field(default_factory=list)
    build: BuildStats | None = None
    fetch_seconds: float = 0.0
    build_seconds: float = 0.0
    requests: int = 0
    watched: WatchReport | None = None  # the saved questions asked against what the build published

    def count(self, status: str) -> int:
        return sum(s.count(status) for s in self.sources)

    @property
    def new_items(self) -> int:
        return self.count("added") + self.count("changed")

    @property
    def errors(self) -> list[str]:
        out = [f"{s.url}: {s.error}" for s in self.sources if s.error]
        out += [f"{p.url}: {p.error}" for s in self.sources for p in s.pages if p.error]
        return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class WebIndex:
    """The web side of one index folder.

    Args:
        index_dir: the index folder (default settings.index_dir).
        settings: limits and switches (allow_private_urls, fetch_*, max_items_per_update, web_dir).
        embedder: a ready embedder of the index's model (default: loaded when a build needs it).
        fetcher: a ready Fetcher (default: Fetcher.from_settings(settings)); tests pass one with their resolver.

    Example:
        >>> web = WebIndex("index/")
        >>> web.add_source("https://example.com/feed.xml")
        >>> report = web.update()
        >>> report.new_items, report.build.version
    """

    def __init__(
        self,
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        fetcher: Fetcher | None = None,
        log: Log | None = None,
    ):
        self.settings = settings or Settings.load()
        self.index_dir = Path(self.settings.index_dir if index_dir is None else index_dir)
        self.files = ArticleFiles(web_folder(self.settings, self.index_dir))
        self.embedder = embedder
        self.fetcher = fetcher or Fetcher.from_settings(self.settings)
        self.log = log or (lambda _msg: None)

    @property
    def stop(self) -> threading.Event:
        """Set it to stop an update between two requests; nothing is published then."""
        return self.fetcher.stop

    # -- reading the state -----------------------------------------------------------------------------------------

    def state(self) -> WebState:
        """The sources and pages recorded in the live version (empty when there is no index yet)."""
        version = indexdir.current_version(self.index_dir) if self.index_dir.is_dir() else None
        if version is None:
            return WebState.empty()
        catalog = Catalog(version)
        try:
            return WebState.from_catalog(catalog)
        finally:
            catalog.close()

    def sources(self) -> list[WebSource]:
        return list(self.state().sources.values())

    # -- changing it -----------------------------------------------------------------------------------------------

    def add_urls(self, urls: Sequence[str], progress: ProgressFn | None = None) -> UpdateReport:
        """Fetch pages by their URL, keep them and publish them in a new index version.

        A URL already indexed is fetched again (conditionally) and replaced when it changed.

        Raises:
            FetchError: every URL failed (the reasons, one per URL); nothing is published then.
        """
        if not urls:
            raise ConfigError("no URL given; pass one or more http:// or https:// addresses")
        with self._locked():
            state = self.state()
            report = UpdateReport()
            src = SourceReport("(added by URL)", listed=len(urls))
            t0 = time.perf_counter()
            for url in urls:
                if self.stop.is_set():
                    break
                src.pages.append(self._page(FeedItem(url.strip()), state, "", force=True))
            report.sources.append(src)
            report.fetch_seconds = time.perf_counter() - t0
            report.requests = self.fetcher.requests
            if not any(p.status in ("added", "changed", "unchanged", "duplicate") for p in src.pages):
                reasons = "; ".join(f"{p.url}: {p.error}" for p in src.pages)
                raise FetchError(
                    urls[0] if len(urls) == 1 else f"{len(urls)} URLs",
                    f"nothing added ({reasons})"
                    if len(urls) > 1
                    else f"not added ({src.pages[0].error if src.pages else 'stopped'})",
                )
            self._publish(state, report, progress)
            return report

    def add_source(self, url: str, progress: ProgressFn | None = None) -> WebSource:
        """Follow a feed, a sitemap, or a site whose feed its page links to; nothing is fetched beyond that
        (the next update fetches the entries).

        Raises:
            FetchError: the URL cannot be fetched, or is neither a feed/sitemap nor a page linking to one.
            SourceError: the index does not exist yet (the state lives in its catalog).
        """
        with self._locked():
            state = self.state()
            key = normalize(url)
            if key in state.sources:
                raise ConfigError(f"{key} is already followed; `rag sources update` fetches what is new")
            feed_url, feed, result = self._resolve_feed(url)
            source = WebSource(
                key,
                kind=feed.kind,
                feed_url=feed_url,
                title=feed.title,
                added_at=_now(),
                status="new",
                items=len(feed.items),
            )
            state.sources[key] = source
            self._publish(state, UpdateReport(), progress)
            return source

    def remove_source(self, url: str, progress: ProgressFn | None = None) -> WebSource:
        """Stop following a source. Its articles stay in the index (remove them with their files if wanted)."""
        with self._locked():
            state = self.state()
            key = normalize(url)
            source = state.sources.pop(key, None) or state.sources.pop(url, None)
            if source is None:
                known = ", ".join(state.sources) or "none"
                raise ConfigError(f"{url} is not a followed source (followed: {known}); see `rag sources list`")
            self._publish(state, UpdateReport(), progress)
            return source

    def update(self, urls: Iterable[str] | None = None, progress: ProgressFn | None = None) -> UpdateReport:
        """Fetch what is new in every source (or the given ones) and publish it, with each source's outcome.

        Returns:
            UpdateReport; sources that failed carry their error (also recorded in the catalog), the others' new
            pages are published. `report.build` is None when stopped before publishing.
        """
        with self._locked():
            state = self.state()
            wanted = [normalize(u) for u in urls] if urls else list(state.sources)
            unknown = [u for u in wanted if u not in state.sources]
            if unknown:
                raise ConfigError(f"{unknown[0]} is not a followed source; add it with `rag sources add`")
            report = UpdateReport()
            t0 = time.perf_counter()
            for key in wanted:
                if self.stop.is_set():
                    break
                report.sources.append(self._update_source(state, key))
            report.fetch_seconds = time.perf_counter() - t0
            report.requests = self.fetcher.requests
            if self.stop.is_set():
                self.log("stopped: nothing published; the index keeps its previous version")
                return report
            if wanted:
                self._publish(state, report, progress)
            return report

    # -- the work --------------------------------------------------------------------------------------------------

    def _locked(self):
        from contextlib import contextmanager

        from filelock import FileLock, Timeout

        @contextmanager
        def hold():
            indexdir.prepare_index_dir(self.index_dir)
            lock = FileLock(str(self.index_dir / WEB_LOCK), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                raise BuildLockedError(
                    f"a web update is already running on {self.index_dir}; wait for it to finish "
                    f"(lock: {self.index_dir / WEB_LOCK})"
                ) from None
            try:
                self.files.clean_temporary()
                yield
            finally:
                lock.release()

        return hold()

    def _resolve_feed(self, url: str) -> tuple[str, Feed, FetchResult]:
        result = self.fetcher.fetch(url, accept=("feed", "html"))
        if result.kind == "feed" or looks_like_feed(result.body):
            return result.final_url, parse_feed(result.body, result.final_url), result
        found = discover_feeds(decode_page(result.body, result.charset), result.final_url)
        errors = []
        for feed_url in found[:3]:
            try:
                feed_result = self.fetcher.fetch(feed_url, accept=("feed",))
                return feed_result.final_url, parse_feed(feed_result.body, feed_result.final_url), feed_result
            except FetchError as exc:
                errors.append(exc.reason)
        if errors:
            raise FetchError(url, f"the page links to a feed that cannot be read ({errors[0]})")
        raise FetchError(
            url,
            'the page is not a feed or sitemap and links to none (<link rel="alternate" '
            'type="application/rss+xml">); pass the feed\'s own URL',
        )

    def _read_feed(self, source: WebSource) -> tuple[FetchResult, Feed | None]:
        result = self.fetcher.fetch(
            source.feed_url or source.url, accept=("feed",), etag=source.etag, last_modified=source.last_modified
        )
        if result.not_modified:
            return result, None
        feed = parse_feed(result.body, result.final_url)
        if feed.kind == "sitemap-index":
            items: list[FeedItem] = []
            for child in feed.items[:MAX_CHILD_SITEMAPS]:
                try:
                    sub = parse_feed(self.fetcher.fetch(child.url, accept=("feed",)).body, child.url)
                except FetchError as exc:
                    self.log(f"  sitemap {child.url} skipped: {exc.reason}")
                    continue
                items += [i for i in sub.items if sub.kind != "sitemap-index"]
            feed = Feed(feed.kind, feed.title, tuple(dict((i.url, i) for i in items).values()))
        return result, feed

    def _update_source(self, state: WebState, key: str) -> SourceReport:
        import hashlib

        source = state.sources[key]
        report = SourceReport(key)
        now = _now()
        try:
            result, feed = self._read_feed(source)
        except FetchError as exc:
            report.status, report.error = "error", exc.reason
            state.sources[key] = source.with_(last_check=now, status="error", last_error=exc.reason, new_items=0)
            self.log(f"{key}: error: {exc.reason}")
            return report
        body_hash = hashlib.sha256(result.body).hexdigest() if not result.not_modified else source.content_hash
        if feed is None or (body_hash == source.content_hash and source.status != "new"):
            report.status = "not modified"
            state.sources[key] = source.with_(
                last_check=now,
                status="not modified",
                last_error=None,
                new_items=0,
                etag=result.etag,
                last_modified=result.last_modified,
            )
            self.log(f"{key}: not modified")
            return report
        report.listed = len(feed.items)
        new, recheck = [], []
        for item in feed.items:
            known = state.pages.get(normalize(item.url))
            if known is None:
                new.append(item)
            elif (item.updated or item.date) and (item.updated or item.date) != known.updated:
                recheck.append(item)
        todo = (new + recheck)[: self.settings.max_items_per_update]
        report.waiting = len(new) + len(recheck) - len(todo)
        for item in todo:
            if self.stop.is_set():
                break
            report.pages.append(self._page(item, state, key))
        failed = [p for p in report.pages if p.status == "failed"]
        error = None
        if failed:
            error = f"{len(failed)} of {len(report.pages)} pages failed, first: {failed[0].url}: {failed[0].error}"
            report.status = "partial"
        report.error = error
        added = report.count("added") + report.count("changed")
        # A feed whose entries could not all be fetched keeps no validators, so the next update reads it again.
        done = not failed and not report.waiting
        state.sources[key] = source.with_(
            last_check=now,
            status=report.status,
            last_error=error,
            new_items=added,
            title=feed.title or source.title,
            etag=result.etag if done else None,
            last_modified=result.last_modified if done else None,
            content_hash=body_hash if done else None,
            items=len(feed.items),
            kind=feed.kind,
        )
        more = f", {report.waiting} waiting for the next update" if report.waiting else ""
        self.log(
            f"{key}: {len(feed.items)} listed, {report.count('added')} added, {report.count('changed')} changed, "
            f"{report.count('unchanged')} unchanged, {report.count('duplicate')} duplicates, {len(failed)} failed"
            f"{more}"
        )
        return report

    def _page(self, item: FeedItem, state: WebState, source_url: str, force: bool = False) -> PageOutcome:
        """Fetch one page and keep it when it is new or changed; the state is updated in place."""
        key = normalize(item.url)
        known = state.pages.get(key)
        now = _now()
        try:
            result = self.fetcher.fetch(
                item.url,
                accept=("html", "pdf"),
                etag=known.etag if known else None,
                last_modified=known.last_modified if known else None,
            )
            if result.not_modified and known is not None:
                state.pages[key] = known.with_(last_check=now, status="not modified", updated=item.updated or item.date)
                return PageOutcome(item.url, "unchanged", known.doc_id)
            article = read_page(result, item, source_url)
        except FetchError as exc:
            reason = exc.reason
            if "(feed) where" in reason:
                reason += "; follow a feed or sitemap with `rag sources add`"
            if source_url:  # pages added by URL are reported by the caller, once
                self.log(f"  {item.url}: {reason}")
            return PageOutcome(item.url, "failed", error=reason)
        page = WebPage(
            key,
            canonical_url=article.url,
            doc_id=article.id,
            source_url=source_url or (known.source_url if known else ""),
            etag=result.etag,
            last_modified=result.last_modified,
            last_check=now,
            status="ok",
            content_hash=article.text_hash,
            updated=item.updated or item.date,
        )
        if known is not None and known.content_hash == article.text_hash and known.doc_id == article.id:
            state.pages[key] = page.with_(original=known.original)
            return PageOutcome(item.url, "unchanged", article.id, article.title)
        twin = state.page_by_hash(article.text_hash)
        if twin is not None and twin.doc_id != article.id and twin.url != key:
            # The same story under another URL: kept once, as the article first seen.
            state.pages[key] = page.with_(doc_id=twin.doc_id, status="duplicate", original=twin.original)
            self._drop_if_orphan(state, known)
            return PageOutcome(item.url, "duplicate", twin.doc_id, article.title)
        same_doc = [p for p in state.pages.values() if p.doc_id == article.id and p.url != key]
        if known is None and any(p.content_hash == article.text_hash for p in same_doc):
            # Another address of a page already kept as it is (same canonical URL, same text).
            state.pages[key] = page.with_(original=same_doc[0].original)
            return PageOutcome(item.url, "unchanged", article.id, article.title)
        existed = bool(same_doc)
        original = self.files.write(article, result.body, result.kind)
        state.pages[key] = page.with_(original=original)
        self._drop_if_orphan(state, known)
        status = "changed" if existed or known is not None else "added"
        self.log(f"  {status}: {article.title or article.id}")
        return PageOutcome(item.url, status, article.id, article.title)

    def _drop_if_orphan(self, state: WebState, old: WebPage | None) -> None:
        """Remove the record of an article that no page points to any more (its page now has another canonical URL
        or turned out to be a copy)."""
        if old is None or not old.doc_id:
            return
        if not any(p.doc_id == old.doc_id for p in state.pages.values()):
            self.files.remove(old.doc_id)

    def _publish(self, state: WebState, report: UpdateReport, progress: ProgressFn | None = None) -> None:
        from rag.index.build import build_index

        settings, sources = self._build_inputs()
        t0 = time.perf_counter()
        report.build = build_index(
            sources, self.index_dir, settings, embedder=self.embedder, progress=progress, web_state=state.rows()
        )
        report.build_seconds = time.perf_counter() - t0
        report.watched = after_build(self.index_dir, self.settings, embedder=self.embedder)

    def _build_inputs(self) -> tuple[Settings, list[Path]]:
        """The settings and folders a build reads: the index's own source (as its manifest records it), the uploads
        folder when it holds files, and the web articles."""
        from rag.ingest.uploads import uploaded_files, uploads_folder

        version = indexdir.current_version(self.index_dir) if self.index_dir.is_dir() else None
        web_keys = {
            k: getattr(self.settings, k)
            for k in (
                "allow_private_urls",
                "fetch_timeout_s",
                "fetch_max_mb",
                "fetch_delay_s",
                "max_items_per_update",
                "web_dir",
                "index_dir",
                "uploads_dir",
                "max_file_mb",
                "parse_timeout_s",
            )
        }
        sources: list[Path] = []
        if version is not None:
            manifest = indexdir.read_manifest(version)
            saved = {
                k: v for k, v in manifest.get("settings", {}).items() if not k.startswith("reader") and k != "device"
            }
            settings = Settings.from_dict(saved).with_(**web_keys, device=self.settings.device)
            base = Path(settings.source)
            if base.resolve() != self.files.articles.resolve():
                if not base.exists():
                    raise SourceError(
                        f"the index was built from {base}, which is not found from {Path.cwd()}; run this from the "
                        "folder the index was built in, or rebuild it with `rag rebuild-index --source <folder>`"
                    )
                sources.append(base)
        else:
            settings = self.settings.with_(source=str(self.files.articles.resolve()))
        uploads = uploads_folder(settings, self.index_dir)
        if uploaded_files(uploads):
            sources.append(uploads)
        if self.files.has_articles():
            sources.append(self.files.articles)
        if not sources:
            raise SourceError(
                f"{self.index_dir} has no index yet and no web article was kept; add pages with "
                "`rag add URL` or build the index first with `rag rebuild-index`"
            )
        return settings, sources
