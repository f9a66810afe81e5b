"""The article library behind the web app: the live index, uploaded articles and rebuilds (excerpts: rag.library.excerpts).

Everything the UI needs that is not presentation lives here, so the UI only calls this module:
- `Library.index` reopens the index when a newer build has been published (by the app or by the CLI);
- `save_upload()` validates an uploaded file and stores it under a generated, sanitized name;
- `Library.rebuild()` rebuilds from the index's original source folder plus the uploads folder;
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, TypeVar

from rag.answer.engine import Index, open_index
from rag.config import Settings
from rag.errors import BuildLockedError, ConfigError, IngestError, RagError, SourceError, UploadError
from rag.index.build import ProgressFn, build_index
from rag.index.catalog import DocumentInfo
from rag.index.embedding import Embedder
from rag.ingest.uploads import UPLOAD_EXTENSIONS, safe_upload_name, uploaded_files, uploads_folder
from rag.library.listing import Listing, list_documents
from rag.types import Answer, BuildStats, Document, Passage
from rag.watch.asking import WatchReport, after_build

if TYPE_CHECKING:
    from rag.web.sources import UpdateReport, WebIndex
    from rag.web.state import WebSource

_T = TypeVar("_T")

__all__ = [
    "UPLOAD_EXTENSIONS",
    "QUESTIONS_FILE",
    "Library",
    "LibraryStatus",
    "StoredUpload",
    "uploads_folder",
    "uploaded_files",
    "save_upload",
    "safe_upload_name",
    "shown_path",
]

QUESTIONS_FILE = ".questions"
"""Optional file in an article folder: example questions, one per line (ingest skips dot-files)."""


@dataclass(frozen=True)
class StoredUpload:
    """An accepted upload: `path` lies inside the uploads folder; `articles` counts the documents it holds."""

    original_name: str
    path: Path
    size: int
    articles: int
    title: str
    already_present: bool = False


@dataclass(frozen=True)
class LibraryStatus:
    """What the library view shows about the live index and the uploads folder (folders as `shown_path` gives them)."""

    index_dir: str
    version: str
    model: str
    documents: int
    chunks: int
    built_at: str
    source: str
    uploads_dir: str
    pending_uploads: tuple[str, ...]
    building: bool


def shown_path(path: str | Path, beside: str | Path | None = None) -> str:
    """A folder as the web app may show it: relative to the working folder when inside it, else relative to the
    folder that holds `beside` (the index folder) when inside that, else its name only.

    The page is for whoever can open it; where files live on the server is none of their business. The middle case
    keeps the default uploads folder recognisable ("data/uploads/idx", not "idx", the index's own name).

    Example:
        >>> shown_path("/srv/news/data/uploads/idx", beside="/srv/news/idx")  # working folder elsewhere
        'data/uploads/idx'
    """
    p = Path(path)
    anchors = [Path.cwd()] + ([Path(beside).resolve().parent] if beside is not None else [])
    for anchor in anchors:
        try:
            anchor = anchor.resolve()
            rel = p.resolve().relative_to(anchor)
        except (OSError, ValueError):
            continue
        if anchor != Path(anchor.anchor):
            return rel.as_posix() or "."
    return p.name or "."


def save_upload(
    src: str | Path, original_name: str, dest_dir: str | Path, *, max_mb: float = 20.0, parse_timeout_s: float = 30.0
) -> StoredUpload:
    """Validate an uploaded file and copy it into `dest_dir` under a generated name.

    The file is only read as data (never run); it is refused unless its type is accepted, it is at most
    `max_mb`, and ingest can read at least one article from it.

    Args:
        src: the temporary file the web server wrote.
        original_name: the name the person uploaded (untrusted: only its extension and letters are kept).
        dest_dir: the uploads folder (created when missing).
        max_mb: size cap in MiB.

    Returns:
        StoredUpload; uploading identical content twice stores it once.

    Raises:
        UploadError: with the reason, naming the file.
    """
    src = Path(src)
    shown = PureWindowsPath(PurePosixPath(original_name).name).name or "upload"
    safe_upload_name(original_name, "0" * 12)  # type check before touching the content
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise UploadError(f"{shown}: cannot read the uploaded file ({exc.strerror or exc})") from None
    if size > max_mb * 1024 * 1024:
        raise UploadError(
            f"{shown}: {size / 1024 / 1024:.1f} MB is over the {max_mb:g} MB upload limit (max_upload_mb)"
        )
    if size == 0:
        raise UploadError(f"{shown}: the file is empty")
    data = src.read_bytes()
    name = safe_upload_name(original_name, hashlib.sha256(data).hexdigest())
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / name
    # Parse a private copy under the generated name, so the check sees exactly the bytes that will be stored.
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".check-") as tmp:
        probe = Path(tmp) / name
        _write_private(probe, data)
        try:
            docs = _read_articles(probe, max_mb, parse_timeout_s)
        except IngestError as exc:
            raise UploadError(f"{shown}: {exc.reason}") from None
        if not docs:
            raise UploadError(f"{shown}: no article could be read from it")
        existed = target.exists()
        if not existed:
            os.replace(probe, target)
    return StoredUpload(shown, target, size, len(docs), docs[0].title, existed)


def _write_private(path: Path, data: bytes) -> None:
    # 0o600 and no execute bit: an upload is data for the indexer, nothing else.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _read_articles(path: Path, max_mb: float, parse_timeout_s: float) -> list[Document]:
    from rag.ingest.files import load_documents

    result = load_documents(path, max_file_mb=max(max_mb, 0.001), parse_timeout_s=parse_timeout_s)
    if not result.documents and result.skipped:
        raise IngestError(str(path), result.skipped[0].reason)
    return result.documents


class Library:
    """An index folder as the web app sees it: answers from the live version, uploads, and rebuilds.

    Thread-safe: many questions may run while one rebuild writes a new version; they keep using the previous
    version until the new one is published, and the next question opens it.

    Example:
        >>> lib = Library("index/")
        >>> lib.ask("what would lift the pause?").citations[0].quote
    """

    def __init__(
        self,
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        source: str | Path | None = None,
    ):
        """Open the live version of `index_dir`.

        Args:
            index_dir: the index folder (default settings.index_dir).
            settings: query settings and the uploads folder (default Settings.load()).
            embedder: a ready embedder of the index's model (default: loaded from the manifest's model).
            source: the folder the index was built from (default: the one its manifest records).
        """
        self._source = None if source is None else str(source)
        self.settings = settings or Settings.load()
        self.index_dir = Path(self.settings.index_dir if index_dir is None else index_dir)
        self.uploads_dir = uploads_folder(self.settings, self.index_dir)
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._index = open_index(self.index_dir, settings=self.settings, embedder=embedder)
        self._embedder = self._index.embedder
        self._listed: tuple[str, list[DocumentInfo]] = ("", [])
        self.watched: WatchReport | None = None
        """What the saved questions got from the last build made here (rebuild, or the web sources' report)."""

    @property
    def index(self) -> Index:
        """The live index version, reopened when a newer build has been published since the last call."""
        with self._lock:
            if self._index.is_stale():
                # The previous version is not closed here: a question running on it in another thread finishes.
                self._index = open_index(self.index_dir, settings=self.settings, embedder=self._embedder)
            return self._index

    def ask(
        self,
        question: str,
        k: int | None = None,
        doc_ids: Sequence[str] | None = None,
        *,
        since: str | None = None,
        until: str | None = None,
        section: str | Sequence[str] | None = None,
        outlet: str | Sequence[str] | None = None,
        sort: str = "relevance",
        history: Any = None,
        sources: Sequence[str] | None = None,
        abstain_threshold: float | None = None,
    ) -> Answer:
        """Index.query on the live version (see there for the filters and `history`).

        Raises:
            ConfigError: abstain_threshold is outside [0, 1] (the message `rag ask --threshold` gives).
        """
        if abstain_threshold is not None and not 0.0 <= abstain_threshold <= 1.0:
            raise ConfigError(f"abstain_threshold must be in [0, 1], got {abstain_threshold}")
        return self.index.query(
            question,
            k,
            doc_ids=list(doc_ids) if doc_ids else None,
            since=since or None,
            until=until or None,
            section=section or None,
            outlet=outlet or None,
            sort=sort or "relevance",
            history=history or None,
            sources=list(sources) if sources else None,
            abstain_threshold=abstain_threshold,
        )

    def search(
        self,
        question: str,
        k: int | None = None,
        doc_ids: Sequence[str] | None = None,
        *,
        since: str | None = None,
        until: str | None = None,
        section: str | Sequence[str] | None = None,
        outlet: str | Sequence[str] | None = None,
        sort: str = "relevance",
        sources: Sequence[str] | None = None,
    ) -> list[Passage]:
        """Index.search on the live version."""
        return self.index.search(
            question,
            k,
            doc_ids=list(doc_ids) if doc_ids else None,
            since=since or None,
            until=until or None,
            section=section or None,
            outlet=outlet or None,
            sort=sort or "relevance",
            sources=list(sources) if sources else None,
        )

    def documents(self) -> list[DocumentInfo]:
        idx = self.index
        with self._lock:
            if self._listed[0] != idx.version:
                self._listed = (idx.version, idx.documents())
            return self._listed[1]

    def listing(
        self,
        query: str = "",
        *,
        section: str | None = None,
        outlet: str | None = None,
        sort: str = "id",
        descending: bool = False,
        page: int = 1,
        per_page: int = 50,
    ) -> Listing:
        """One page of the live version's articles, searched, filtered and sorted (see rag.library.listing.list_documents)."""
        return list_documents(
            self.documents(),
            query=query,
            section=section,
            outlet=outlet,
            sort=sort,
            descending=descending,
            page=page,
            per_page=per_page,
        )

    def find_articles(self, text: str, limit: int = 20) -> list[DocumentInfo]:
        """Articles whose title, id, section or outlet hold every word of `text` (for a type-ahead picker)."""
        if not (text or "").strip():
            return []
        return list(self.listing(text, per_page=limit).rows)

    def sections(self) -> dict[str, int]:
        """Section -> article count in the live version."""
        return self.index.sections()

    def outlets(self) -> dict[str, int]:
        """Outlet -> article count in the live version."""
        return self.index.outlets()

    def document(self, doc_id: str) -> Document | None:
        """The article from the live version, or None when it is no longer indexed."""
        try:
            return self.index.document(doc_id)
        except KeyError:
            return None

    def source(self) -> str:
        """The folder the index was first built from (given to the constructor, else recorded in its manifest)."""
        if self._source is not None:
            return self._source
        idx = self.index
        return str(idx.manifest.get("settings", {}).get("source") or self.settings.source)

    def rebuild_sources(self) -> list[Path]:
        """What a rebuild reads: the index's original source and, when it holds files, the uploads folder.

        Raises:
            SourceError: the original source is missing (a rebuild without it would drop its articles).
        """
        src = Path(self.source())
        if not src.exists():
            raise SourceError(
                f"the index was built from {src}, which is not found from {Path.cwd()}; start the app from the "
                "folder the index was built in, or rebuild it with `rag rebuild-index --source <folder>`"
            )
        sources = [src]
        if self._upload_files():
            sources.append(self.uploads_dir)
        from rag.web.store import ArticleFiles, web_folder

        web = ArticleFiles(web_folder(self.settings, self.index_dir))
        if web.has_articles() and web.articles.resolve() != src.resolve():
            sources.append(web.articles)
        return sources

    def save_upload(self, src: str | Path, original_name: str) -> StoredUpload:
        """Validate and store one uploaded file in the uploads folder (see save_upload())."""
        return save_upload(
            src,
            original_name,
            self.uploads_dir,
            max_mb=self.settings.max_upload_mb,
            parse_timeout_s=self.settings.parse_timeout_s,
        )

    def rebuild(self, progress: ProgressFn | None = None) -> BuildStats:
        """Rebuild from rebuild_sources(); questions keep using the previous version until the swap.

        Raises:
            BuildLockedError: a build of this index is already running (here or in another process).
            SourceError: see rebuild_sources().
        """
        if not self._build_lock.acquire(blocking=False):
            raise BuildLockedError(f"a build is already running on {self.index_dir}; wait for it to finish")
        try:
            idx = self.index
            settings = idx.settings.with_(source=self.source())
            stats = build_index(
                self.rebuild_sources(), self.index_dir, settings, embedder=self._embedder, progress=progress
            )
            # The saved questions, against the new and changed articles of the version just reopened.
            self.watched = after_build(self.index_dir, self.settings, index=self.index, embedder=self._embedder)
        finally:
            self._build_lock.release()
        return stats

    @property
    def building(self) -> bool:
        return self._build_lock.locked()

    def status(self) -> LibraryStatus:
        idx = self.index
        info = idx.info()
        indexed = {Path(d.source.split("#", 1)[0]).name for d in idx.documents()}
        pending = tuple(p.name for p in self._upload_files() if p.name not in indexed)
        return LibraryStatus(
            index_dir=shown_path(self.index_dir),
            version=str(info.get("version", "")),
            model=str(info.get("model", "")),
            documents=int(info.get("documents") or 0),
            chunks=int(info.get("chunks") or 0),
            built_at=str(info.get("built_at", "")),
            source=shown_path(self.source()),
            uploads_dir=shown_path(self.uploads_dir, beside=self.index_dir),
            pending_uploads=pending,
            building=self.building,
        )

    def examples(self, limit: int = 3) -> list[str]:
        """Example questions the index can answer: its article folder's .questions file, else article titles.

        Only questions that get an answer (not an abstention) from the live index are returned.
        """
        candidates: list[str] = []
        qfile = Path(self.source()) / QUESTIONS_FILE
        if qfile.is_file():
            try:
                lines = qfile.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                lines = []
            candidates += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if len(candidates) < limit:
            for d in self.documents():
                title = " ".join(d.title.split())
                if title:
                    candidates.append(title if len(title) <= 90 else title[:90].rsplit(" ", 1)[0])
        out: list[str] = []
        for q in dict.fromkeys(candidates):
            if len(out) >= limit:
                break
            try:
                if not self.ask(q).abstained:
                    out.append(q)
            except RagError:
                continue
        return out

    # -- articles from the web (rag.web): the same build lock as rebuild(), so one build runs at a time ---------------

    MAX_URLS = 20
    """URLs accepted in one "Add by URL" submission."""

    def web(self) -> WebIndex:
        """The index's web side (rag.web.sources.WebIndex), with the server's own settings: whoever uses the app
        cannot change which addresses may be fetched (allow_private_urls)."""
        from rag.web.sources import WebIndex

        return WebIndex(self.index_dir, self.settings, embedder=self._embedder)

    def web_sources(self) -> list[WebSource]:
        """The followed feeds and sitemaps with their last check, new items and last error (rag.web.state.WebSource)."""
        return self.web().sources()

    def add_urls(self, text: str, progress: ProgressFn | None = None) -> UpdateReport:
        """Fetch the pages whose URLs `text` lists (one per line or separated by spaces) and publish them.

        Raises:
            ConfigError: no URL, or more than MAX_URLS; FetchError: none could be added; BuildLockedError.
        """
        from rag.errors import ConfigError

        urls = list(dict.fromkeys(u for u in (text or "").split() if u))
        if not urls:
            raise ConfigError("no URL given; paste one or more http:// or https:// addresses")
        if len(urls) > self.MAX_URLS:
            raise ConfigError(f"{len(urls)} URLs at once; add at most {self.MAX_URLS} per submission")
        return self._building(lambda: self.web().add_urls(urls, progress=progress))

    def add_web_source(self, url: str, progress: ProgressFn | None = None) -> WebSource:
        """Follow a feed, sitemap or site (see WebIndex.add_source)."""
        return self._building(lambda: self.web().add_source((url or "").strip(), progress=progress))

    def remove_web_source(self, url: str, progress: ProgressFn | None = None) -> WebSource:
        return self._building(lambda: self.web().remove_source((url or "").strip(), progress=progress))

    def update_web_sources(self, progress: ProgressFn | None = None) -> UpdateReport:
        """Fetch what is new in every followed source and publish it (see WebIndex.update)."""
        return self._building(lambda: self.web().update(progress=progress))

    def _building(self, work: Callable[[], _T]) -> _T:
        if not self._build_lock.acquire(blocking=False):
            raise BuildLockedError(f"a build is already running on {self.index_dir}; wait for it to finish")
        try:
            result = work()
        finally:
            self._build_lock.release()
        self.index  # noqa: B018 - reopen now, so the next question does not pay for it
        self.watched = getattr(result, "watched", None)
        return result

    def _upload_files(self) -> list[Path]:
        return uploaded_files(self.uploads_dir)
