"""Where fetched articles are kept: beside the index, so that any rebuild, even from scratch, needs no network.

    data/web/<index name>/            (settings.web_dir to change it)
        articles/<name>.json          the extracted record (id = canonical URL, text, title, date, section, ...);
                                      every build of the index reads this folder like any folder of articles
        originals/<name>.html|.pdf    the response body as fetched, kept for reference and re-extraction

Files are written to a dot-named temporary file and renamed, mode 0600: a killed update leaves either the old file
or the new one, and ingest never reads a half-written one (it skips dot-files).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from rag.config import Settings
from rag.web.pages import WebArticle

__all__ = ["web_folder", "ArticleFiles"]

_SLUG = re.compile(r"[^a-z0-9]+")
_EXT = {"html": ".html", "pdf": ".pdf"}


def web_folder(settings: Settings, index_dir: str | Path | None = None) -> Path:
    """settings.web_dir, else `data/web/<index name>` beside the index folder (like the uploads folder)."""
    if settings.web_dir:
        return Path(settings.web_dir)
    index = Path(settings.index_dir if index_dir is None else index_dir)
    return index.parent / "data" / "web" / index.name


def file_stem(doc_id: str) -> str:
    """A file name for an article: its host and path as ASCII letters, digits and dashes, then a hash of the id."""
    try:
        parts = urlsplit(doc_id)
        readable = f"{parts.hostname or ''}-{parts.path}"
    except ValueError:
        readable = doc_id
    slug = _SLUG.sub("-", readable.lower()).strip("-")[:60].strip("-") or "page"
    return f"{slug}-{hashlib.sha256(doc_id.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


class ArticleFiles:
    """The articles/ and originals/ folders of one index."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.articles = self.folder / "articles"
        self.originals = self.folder / "originals"

    def has_articles(self) -> bool:
        return self.articles.is_dir() and any(p.suffix == ".json" for p in self.articles.iterdir())

    def write(self, article: WebArticle, body: bytes, kind: str) -> str:
        """Keep an article's record and original body (replacing an earlier version). Returns the original's name."""
        stem = file_stem(article.id)
        original = stem + _EXT.get(kind, ".bin")
        self.originals.mkdir(parents=True, exist_ok=True)
        self.articles.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.originals / original, body)
        record = json.dumps(article.to_record(), ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass")
        _write_atomic(self.articles / f"{stem}.json", record)
        return original

    def remove(self, doc_id: str) -> None:
        """Drop an article's record (and its originals), so the next build no longer indexes it."""
        stem = file_stem(doc_id)
        (self.articles / f"{stem}.json").unlink(missing_ok=True)
        for ext in (*_EXT.values(), ".bin"):
            (self.originals / f"{stem}{ext}").unlink(missing_ok=True)

    def clean_temporary(self) -> None:
        """Remove temporary files a killed update left."""
        for folder in (self.articles, self.originals):
            if folder.is_dir():
                for p in folder.iterdir():
                    if p.name.startswith(".tmp-"):
                        p.unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
