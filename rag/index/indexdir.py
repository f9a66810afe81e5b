"""The index folder: versioned subfolders, an atomically replaced CURRENT pointer, the manifest and the build lock.

A build writes `.tmp-<id>/`, renames it to `v-<time>-<id>/`, then replaces `CURRENT` with os.replace, so a
reader sees either the old version or the new one, never a mix, and a crash at any point leaves the old one.

The manifest records the sha256 of every file and of itself; opening an index checks them all before any file
is handed to FAISS, SQLite or NumPy, because those readers may crash or return wrong data on a damaged file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag.errors import BuildLockedError, ConfigError, IndexCorruptError, IndexMismatchError, IndexNotFoundError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "current_version",
    "read_manifest",
    "write_manifest",
    "new_work_dir",
    "publish",
    "build_lock",
    "checksums",
    "verify_files",
    "clean_stale",
    "prepare_index_dir",
    "pause_point",
    "PAUSE_ENV",
    "WATCHED",
    "write_atomic",
]

# 2: the catalog keeps each article's section, tags and raw date, and sources relative to the folder built from.
# 3: article text compressed in the catalog, sentence vectors as 4-bit codes (rag.index.sentvecs), chunk vectors 8-bit.
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
LOCK = ".build.lock"
WATCHED = "watched"
"""The folder of saved questions and their answers (rag.watch.store): beside the versions, never inside one."""
_OWN = {CURRENT, LOCK, WATCHED, "README.md", ".gitkeep"}
SELF_CHECKSUM = "manifest_sha256"
PAUSE_ENV = "RAG_PAUSE_AT"
PAUSE_STAGES = ("embed", "write", "swap", "published")


def pause_point(stage: str) -> None:
    """Hold a build at a named stage while the RAG_PAUSE_AT environment variable names it (a testing aid).

    Crash tests set RAG_PAUSE_AT to one of PAUSE_STAGES, wait for the line "paused at <stage>" on stderr, and
    kill the process there: embed (chunks embedded, sentences not yet), write (files half written in the work
    folder), swap (new version folder renamed, CURRENT not yet replaced), published (CURRENT replaced, older
    versions not yet removed). rag.watch.asking holds at "watched" after a build (answers found, not yet recorded).
    The pause ends after an hour so a forgotten variable cannot hang a build forever.
    """
    if os.environ.get(PAUSE_ENV) != stage:
        return
    sys.stderr.write(f"paused at {stage} ({PAUSE_ENV})\n")
    sys.stderr.flush()
    time.sleep(3600)


def _is_own(name: str) -> bool:
    return name in _OWN or name.startswith(("v-", ".tmp-", ".CURRENT.")) or name.endswith(".lock")


def _is_milvus_lite(path: Path) -> bool:
    """A Milvus Lite data folder (`--store milvus --milvus-uri INDEX/milvus.db` puts one here): a `.db` folder
    with Milvus Lite's LOCK file and collections folder."""
    if not (path.name.endswith(".db") and path.is_dir() and not path.is_symlink()):
        return False
    return (path / "LOCK").is_file() and (path / "collections").is_dir()


def prepare_index_dir(index_dir: Path) -> Path:
    """Create the index folder, refusing a folder that holds files which are not an index's."""
    index_dir = Path(index_dir)
    if index_dir.exists() and not index_dir.is_dir():
        raise ConfigError(f"{index_dir} is a file, not an index folder; pass --index with a folder path")
    if index_dir.is_dir():
        foreign = sorted(n for n in os.listdir(index_dir) if not _is_own(n) and not _is_milvus_lite(index_dir / n))
        if foreign:
            raise ConfigError(
                f"{index_dir} holds files that are not part of an index ({', '.join(foreign[:3])}); "
                "pass --index with an empty or existing index folder"
            )
    index_dir.mkdir(parents=True, exist_ok=True)
    return index_dir


def current_version(index_dir: Path) -> Path | None:
    """The live version folder, or None when the folder holds no index yet."""
    pointer = Path(index_dir) / CURRENT
    # A build publishes by pointing CURRENT at its version and only then removing the older one, so a version that
    # vanished between reading CURRENT and looking for it means CURRENT has moved on: read it again.
    for _attempt in range(3):
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexCorruptError(f"{pointer} cannot be read ({exc.strerror}); run `rag rebuild-index`") from None
        except UnicodeDecodeError:
            raise IndexCorruptError(f"{pointer} is damaged (not text); run `rag rebuild-index`") from None
        if not name.startswith("v-") or "/" in name or "\\" in name:
            raise IndexCorruptError(f"{pointer} is damaged; run `rag rebuild-index`")
        folder = Path(index_dir) / name
        if folder.is_dir():
            return folder
    raise IndexCorruptError(f"{pointer} names {name}, which is missing; run `rag rebuild-index`")


def read_manifest(version_dir: Path) -> dict[str, Any]:
    path = Path(version_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is missing; run `rag rebuild-index`") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{path} is damaged ({type(exc).__name__}); run `rag rebuild-index`") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path} is damaged; run `rag rebuild-index`")
    recorded = manifest.pop(SELF_CHECKSUM, None)
    if recorded != _manifest_digest(manifest):
        raise IndexCorruptError(f"{path} does not match its checksum (altered); run `rag rebuild-index`")
    fmt = manifest.get("format_version")
    if fmt != FORMAT_VERSION:
        raise IndexMismatchError(
            f"{path}: index format {fmt} but this version reads format {FORMAT_VERSION}; run `rag rebuild-index`"
        )
    return manifest


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != SELF_CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode("ascii")).hexdigest()


def write_manifest(version_dir: Path, manifest: dict[str, Any]) -> None:
    """Write manifest.json atomically, with a checksum of its own content.

    ASCII escapes keep the file valid UTF-8 even when a skipped file's name holds undecodable bytes.
    """
    body = {**{k: v for k, v in manifest.items() if k != SELF_CHECKSUM}, SELF_CHECKSUM: _manifest_digest(manifest)}
    _write_atomic(Path(version_dir) / MANIFEST, json.dumps(body, indent=1, sort_keys=True, ensure_ascii=True))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) so that a reader, or a crash, sees the old content or the new, never a mix."""
    _write_atomic(Path(path), text)
    _fsync_dir(Path(path).parent)


def new_work_dir(index_dir: Path) -> Path:
    work = Path(index_dir) / f".tmp-{uuid.uuid4().hex[:12]}"
    work.mkdir()
    return work


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(index_dir: Path, work_dir: Path) -> Path:
    """Make `work_dir` the live version; older versions are removed afterwards.

    Open readers keep working: on POSIX, files they hold stay readable after removal.
    """
    index_dir = Path(index_dir)
    for f in sorted(work_dir.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        elif f.is_dir():
            _fsync_dir(f)
    _fsync_dir(work_dir)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    final = index_dir / f"v-{stamp}-{work_dir.name.split('-', 1)[1]}"
    os.rename(work_dir, final)
    _fsync_dir(index_dir)
    pause_point("swap")
    _write_atomic(index_dir / CURRENT, final.name + "\n")
    _fsync_dir(index_dir)
    pause_point("published")
    for old in index_dir.iterdir():
        if old.name.startswith("v-") and old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def clean_stale(index_dir: Path) -> list[str]:
    """Remove work folders left by killed builds (call only while holding the build lock)."""
    removed = []
    try:
        live = current_version(index_dir)
    except IndexCorruptError:
        live = None
        keep_versions = True  # a damaged CURRENT is replaced by this build; until then nothing else is removed
    else:
        keep_versions = False
    for p in Path(index_dir).iterdir():
        if p.name.startswith(".tmp-") or p.name.startswith(".CURRENT."):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p.name)
        elif p.name.startswith("v-") and not keep_versions and p != live:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index's build lock; a second builder gets BuildLockedError at once."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(Path(index_dir) / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise BuildLockedError(
            f"a build is already running on {index_dir}; wait for it to finish (lock: {Path(index_dir) / LOCK})"
        ) from None
    try:
        yield
    finally:
        lock.release()


def checksums(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """sha256 and size of each named file."""
    out = {}
    for name in names:
        h = hashlib.sha256()
        path = Path(folder) / name
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out[name] = {"sha256": h.hexdigest(), "bytes": path.stat().st_size}
    return out


def verify_files(version_dir: Path, manifest: dict[str, Any], deep: bool = True) -> list[str]:
    """Problems found with the files the manifest lists: missing, wrong size, or (deep) wrong checksum."""
    problems = []
    files = manifest.get("files") or {}
    if not files:
        problems.append(f"{Path(version_dir) / MANIFEST} lists no files")
    for name, info in files.items():
        path = Path(version_dir) / name
        try:
            size = path.stat().st_size if path.is_file() else None
            if size is None:
                problems.append(f"{path} is missing")
            elif size != info.get("bytes"):
                problems.append(f"{path} has {size} bytes, expected {info.get('bytes')} (truncated or altered)")
            elif deep and checksums(Path(version_dir), [name])[name]["sha256"] != info.get("sha256"):
                problems.append(f"{path} does not match its checksum (altered)")
        except OSError as exc:  # removed or made unreadable while being checked
            problems.append(f"{path} cannot be read ({exc.strerror or exc})")
    return problems


def require_index(index_dir: Path) -> Path:
    """The live version folder, or IndexNotFoundError naming the fix."""
    index_dir = Path(index_dir)
    if not index_dir.exists():
        raise IndexNotFoundError(f"no index at {index_dir}; build one with `rag rebuild-index --index {index_dir}`")
    version = current_version(index_dir)
    if version is None:
        raise IndexNotFoundError(
            f"{index_dir} holds no index yet; build one with `rag rebuild-index --index {index_dir}`"
        )
    return version
