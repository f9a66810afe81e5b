"""Finding and reading article files: folders walked safely, size and parse-time limits, in any thread.

Files that cannot be used are reported as SkippedFile with a one-line reason instead of stopping the build. Each
file's bytes become Documents in rag.ingest.formats.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import IngestError, SourceError
from rag.ingest.formats import parse_documents, valid_unicode
from rag.types import Document, SkippedFile

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "IngestResult",
    "SourceFiles",
    "find_files",
    "iter_documents",
    "load_documents",
    "read_file",
    "display_path",
]

SUPPORTED_EXTENSIONS = (".txt", ".md", ".markdown", ".html", ".htm", ".json", ".jsonl", ".pdf")

_CONTROL = re.compile("[\x00-\x1f\x7f]")


@dataclass
class IngestResult:
    """Documents read, in a stable order, and the files skipped with their reasons."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def load_documents(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    max_file_mb: float = 50.0,
    parse_timeout_s: float = 30.0,
    on_skip: Callable[[SkippedFile], None] | None = None,
) -> IngestResult:
    """Read every supported file under the given paths (folders recursively).

    Args:
        paths: a file, a folder, or a list of them.
        max_file_mb: files larger than this are skipped.
        parse_timeout_s: a file whose parsing takes longer is skipped (enforced in any thread).
        on_skip: called with each skipped file as it is found.

    Returns:
        IngestResult; documents are sorted by source path, ids are unique.

    Raises:
        SourceError: a path does not exist, or it holds no supported file at all.

    Example:
        >>> result = load_documents("seeds/")
        >>> result.documents[0].title
    """
    result = IngestResult()
    result.documents = list(
        iter_documents(paths, result.skipped, max_file_mb=max_file_mb, parse_timeout_s=parse_timeout_s)
    )
    if on_skip:
        for s in result.skipped:
            on_skip(s)
    return result


@dataclass
class SourceFiles:
    """The files a source names, found before any is read (so a build can tell how far along it is)."""

    files: list[tuple[Path, Path]]
    skipped: list[SkippedFile]

    def estimated_documents(self) -> int:
        """About how many documents the files hold: one per file, one per line of a .jsonl (counted, not parsed)."""
        total = 0
        for path, _ in self.files:
            if path.suffix.lower() != ".jsonl":
                total += 1
                continue
            try:
                with open(path, "rb") as fh:
                    total += max(1, sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")))
            except OSError:
                total += 1
        return total


def find_files(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> SourceFiles:
    """The supported files under the given paths, in a stable order, and the ones skipped by type.

    Raises:
        SourceError: a path does not exist, or it holds no supported file at all.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    skipped: list[SkippedFile] = []
    files: list[tuple[Path, Path]] = []
    for raw in paths:
        root = Path(raw).expanduser()
        if not root.exists() and not root.is_symlink():
            raise SourceError(f"{root}: no such file or folder; pass --source with a folder of articles")
        files.extend(_walk(root, skipped))
    if not files and not skipped:
        names = ", ".join(str(p) for p in paths)
        raise SourceError(
            f"{names}: no articles found (supported: {', '.join(SUPPORTED_EXTENSIONS)}); add files or pick another --source"
        )
    return SourceFiles(files, skipped)


def iter_documents(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | SourceFiles,
    skipped: list[SkippedFile],
    *,
    max_file_mb: float = 50.0,
    parse_timeout_s: float = 30.0,
) -> Iterator[Document]:
    """Documents one at a time, in `load_documents` order, holding one file's documents at most.

    Files that cannot be used are appended to `skipped` (paths as `display_path` shows them) as they are met.

    Raises:
        SourceError: as `find_files`, on the first step.
    """
    found = paths if isinstance(paths, SourceFiles) else find_files(paths)
    skipped.extend(SkippedFile(display_path(s.path), s.reason) for s in found.skipped)
    seen_ids: dict[str, int] = {}
    for path, root in found.files:
        try:
            docs, notes = _read_limited(path, root, max_file_mb, parse_timeout_s)
        except IngestError as exc:
            skipped.append(SkippedFile(display_path(str(path)), exc.reason))
            continue
        except Exception as exc:  # one hostile file must not stop the build; the reason names what failed
            skipped.append(SkippedFile(display_path(str(path)), f"could not be parsed ({_one_line(exc)})"))
            continue
        skipped.extend(SkippedFile(display_path(s.path), s.reason) for s in notes)
        for doc in docs:
            n = seen_ids.get(doc.id, 0)
            seen_ids[doc.id] = n + 1
            if n:
                doc = Document(**{**doc.__dict__, "id": f"{doc.id}~{n + 1}"})
            yield doc


def _walk(root: Path, skipped: list[SkippedFile]) -> Iterator[tuple[Path, Path]]:
    if root.is_file():
        yield root, root.parent
        return
    if root.is_symlink() and not root.exists():
        skipped.append(SkippedFile(str(root), "broken symbolic link"))
        return
    if not root.is_dir():
        skipped.append(SkippedFile(str(root), "not a regular file or folder"))
        return
    found: list[Path] = []
    # followlinks=False: a symlink loop cannot recurse forever.
    for dirpath, dirnames, filenames in os.walk(
        root,
        followlinks=False,
        onerror=lambda e: skipped.append(
            SkippedFile(str(getattr(e, "filename", root)), f"cannot list folder ({e.strerror or e})")
        ),
    ):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.suffix.lower() not in SUPPORTED_EXTENSIONS:
                if name.lower() not in ("readme", "license"):
                    skipped.append(SkippedFile(str(p), f"unsupported file type {p.suffix or '(none)'}"))
                continue
            found.append(p)
    for p in sorted(found):
        yield p, root


def read_file(
    path: Path, *, root: Path | None = None, max_file_mb: float = 50.0, skipped: list[SkippedFile] | None = None
) -> list[Document]:
    """Read one file into zero or more Documents (JSON lines give one per record).

    Raises:
        IngestError: the file cannot be used; the reason is one line.
    """
    path = Path(path)
    try:
        if path.is_symlink() and not path.exists():
            try:
                os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise IngestError(str(path), "symbolic link loop") from None
            raise IngestError(str(path), "broken symbolic link")
        if not path.is_file():
            raise IngestError(str(path), "not a regular file")
        size = path.stat().st_size
    except OSError as exc:
        raise IngestError(str(path), f"cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise IngestError(str(path), "empty file (0 bytes)")
    if size > max_file_mb * 1024 * 1024:
        raise IngestError(str(path), f"larger than the {max_file_mb:g} MB limit (max_file_mb)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(str(path), f"cannot read ({exc.strerror or exc})") from None
    rel = _relative_id(path, root)
    return parse_documents(path, data, rel, skipped)


def _relative_id(path: Path, root: Path | None) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve()) if root else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    return rel.as_posix()


def display_path(path: str) -> str:
    """A path fit for a one-line message: control characters escaped, undecodable bytes shown as U+FFFD."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], valid_unicode(path))


class _ParseTimeout(Exception):
    """Raised inside a parser thread that ran past parse_timeout_s, to stop it at its next Python instruction."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def _read_limited(
    path: Path, root: Path, max_file_mb: float, seconds: float
) -> tuple[list[Document], list[SkippedFile]]:
    """read_file() in a worker thread, giving up after `seconds` whichever thread calls it.

    A signal-based alarm only works in the main thread, and a build may run in a server's background thread.
    On timeout the worker is asked to stop (an asynchronous exception, taken at its next Python instruction)
    and abandoned; a parser stuck inside C code finishes on its own, but the build has already moved on.

    Returns:
        (documents, notes): the notes are skipped records inside the file (JSON lines), kept apart so that an
        abandoned worker cannot add to the build's list.
    """
    box: dict[str, Any] = {}
    notes: list[SkippedFile] = []

    def work() -> None:
        try:
            box["docs"] = read_file(path, root=root, max_file_mb=max_file_mb, skipped=notes)
        except BaseException as exc:  # handed to the calling thread below
            box["error"] = exc

    worker = threading.Thread(target=work, name=f"rag-parse:{path.name[:40]}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        if worker.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(_ParseTimeout))
        raise IngestError(str(path), f"parsing took longer than {seconds:g} s (parse_timeout_s)")
    if "error" in box:
        raise box["error"]
    return box["docs"], list(notes)
