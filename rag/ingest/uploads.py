"""The uploads folder: article files added through the web app or the API, kept beside the index folder and read
by every build with the configured source."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

from rag.config import Settings
from rag.errors import UploadError

__all__ = ["UPLOAD_EXTENSIONS", "safe_upload_name", "uploaded_files", "uploads_folder"]

UPLOAD_EXTENSIONS = (".txt", ".md", ".html", ".htm", ".jsonl", ".pdf")
"""File types accepted from the web UI (a subset of what ingest reads)."""

_SLUG = re.compile(r"[^a-z0-9]+")


def uploads_folder(settings: Settings, index_dir: str | Path | None = None) -> Path:
    """The folder uploads go to: settings.uploads_dir, else `data/uploads/<index name>` beside the index folder.

    Keeping it outside the index folder matters: an index folder refuses files that are not its own.
    """
    if settings.uploads_dir:
        return Path(settings.uploads_dir)
    index = Path(settings.index_dir if index_dir is None else index_dir)
    return index.parent / "data" / "uploads" / index.name


def uploaded_files(folder: str | Path) -> list[Path]:
    """The accepted files stored in an uploads folder (none when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in UPLOAD_EXTENSIONS)


def safe_upload_name(original_name: str, digest: str) -> str:
    """A file name made from the upload's name and content hash: ASCII letters, digits and dashes only.

    Any folder part of `original_name` (POSIX or Windows style, `..` included) is dropped first.

    Raises:
        UploadError: the extension is not one of UPLOAD_EXTENSIONS.
    """
    base = PureWindowsPath(PurePosixPath(original_name.replace("\x00", "")).name).name
    ext = Path(base).suffix.lower()
    if ext not in UPLOAD_EXTENSIONS:
        raise UploadError(
            f"{base or original_name!r}: file type {ext or '(none)'} is not accepted; "
            f"upload one of {', '.join(UPLOAD_EXTENSIONS)}"
        )
    stem = unicodedata.normalize("NFKD", Path(base).stem).encode("ascii", "ignore").decode().lower()
    slug = _SLUG.sub("-", stem).strip("-")[:40].strip("-") or "article"
    return f"{slug}-{digest[:12]}{ext}"
