"""Files -> Documents: txt, md, html, json/jsonl and pdf, with metadata and a content hash.

Every reader returns the text exactly as citations will quote it; nothing downstream rewrites it.
Files that cannot be used are reported as SkippedFile with a one-line reason instead of stopping the build.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import IngestError, SourceError
from rag.ingest.dates import normalize_date
from rag.ingest.htmlmeta import read_page_meta
from rag.types import Document, SkippedFile

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "IngestResult",
    "SourceFiles",
    "find_files",
    "iter_documents",
    "load_documents",
    "read_file",
    "content_hash",
    "parse_byline",
    "valid_unicode",
    "display_path",
    "html_fields",
    "pdf_fields",
]

SUPPORTED_EXTENSIONS = (".txt", ".md", ".markdown", ".html", ".htm", ".json", ".jsonl", ".pdf")

_BYLINE = re.compile(r"\A\s*\(([^(),\n]{2,80}),\s*([^(),\n]{2,80})\)\s*")
_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_FIRST_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)", re.DOTALL)
# Lone surrogates come from JSON escapes such as "\ud800" and from file names that are not valid UTF-8; SQLite
# and JSON files cannot store them.
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*(?:\n|\Z)", re.DOTALL)


@dataclass
class IngestResult:
    """Documents read, in a stable order, and the files skipped with their reasons."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def content_hash(text: str, **meta: Any) -> str:
    """sha256 over the text and its metadata, so a changed title also counts as a change."""
    h = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    h.update(json.dumps(meta, sort_keys=True, default=str).encode("utf-8"))
    return h.hexdigest()


def parse_byline(text: str) -> tuple[str | None, str | None, int]:
    """Find a leading "(Author, Outlet)" byline.

    Returns:
        (author, outlet, end) where `end` is where the body starts after the byline (0 when none).
    """
    m = _BYLINE.match(text)
    if not m:
        return None, None, 0
    return m.group(1).strip(), m.group(2).strip(), m.end()


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
    ext = path.suffix.lower()
    if ext == ".pdf":
        return [_finish(_read_pdf(path, data), rel, rel)]
    text = decode_text(data, str(path))
    if ext in (".html", ".htm"):
        return [_finish(_read_html(path, text), rel, rel)]
    if ext == ".jsonl":
        return _read_jsonl(path, text, rel, skipped)
    if ext == ".json":
        return _read_json(path, text, rel, skipped)
    if ext in (".md", ".markdown"):
        front, text = _front_matter(text, str(path))
        m = _MD_HEADING.search(text)
        fields = {**front, "text": text}
        fields["title"] = fields.get("title") or (m.group(1).strip() if m else None)
        return [_finish(fields, rel, rel)]
    return [_finish({"text": text}, rel, rel)]


def decode_text(data: bytes, name: str) -> str:
    """Decode bytes as UTF-8 (or UTF-16 with a BOM), falling back to cp1252/Latin-1.

    Raises:
        IngestError: the bytes look binary (NUL bytes or many control characters).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise IngestError(name, "invalid UTF-16 text") from None
    else:
        if b"\x00" in data[:65536]:
            raise IngestError(name, "looks like a binary file (NUL bytes), not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    sample = text[:65536]
    if sample:
        control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f")
        if control / len(sample) > 0.05 or "\x00" in sample:
            raise IngestError(name, "looks like a binary file (control characters), not text")
    # One newline convention, so offsets are the same whichever system wrote the file.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _relative_id(path: Path, root: Path | None) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve()) if root else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    return rel.as_posix()


def _read_html(path: Path, html: str) -> dict[str, Any]:
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(
            html, with_metadata=True, include_comments=False, include_tables=True, favor_recall=True
        )
    except Exception as exc:  # trafilatura raises many parser errors on broken markup
        raise IngestError(str(path), f"malformed HTML ({type(exc).__name__})") from None
    if doc is None:
        raise IngestError(str(path), "no article text found in the HTML")
    get = (lambda k: doc.get(k)) if isinstance(doc, dict) else (lambda k: getattr(doc, k, None))
    text = get("text") or ""
    page = read_page_meta(html)
    return {
        "text": text,
        "title": get("title") or page.title,
        "author": get("author") or page.author,
        "outlet": page.outlet or get("sitename"),
        "url": get("url"),
        # What the page states first; trafilatura's own date search only when the page states none.
        "date": page.date or get("date"),
        "section": page.section or _first_category(get("categories")),
        "tags": page.tags or get("tags") or None,
    }


def _first_category(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _read_pdf(path: Path, data: bytes) -> dict[str, Any]:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                raise IngestError(str(path), "encrypted PDF; save an unencrypted copy to index it")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta = reader.metadata or {}
        title = getattr(meta, "title", None) if meta else None
        author = getattr(meta, "author", None) if meta else None
        info = {str(k): v for k, v in dict(meta).items()} if meta else {}
        date = _pdf_date(info.get("/CreationDate"))
        subject, keywords = info.get("/Subject"), info.get("/Keywords")
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, IndexError) as exc:
        raise IngestError(str(path), f"corrupt or unreadable PDF ({type(exc).__name__})") from None
    except Exception as exc:  # pypdf surfaces many internal errors on damaged files
        raise IngestError(str(path), f"corrupt or unreadable PDF ({type(exc).__name__})") from None
    return {
        "text": "\n\n".join(p for p in pages if p),
        "title": title,
        "author": author,
        "date": date,
        "section": str(subject) if isinstance(subject, str) and subject.strip() else None,
        "tags": str(keywords) if isinstance(keywords, str) else None,
    }


def _pdf_date(value: Any) -> str | None:
    """A PDF date ("D:20240305101500+01'00'") as ISO text (normalize_date reads it), or None."""
    if not isinstance(value, str):
        return None
    m = re.match(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?", value.strip())
    if not m or not m.group(3):
        return None
    y, mo, d, hh, mm, ss = m.groups()
    return f"{y}-{mo}-{d}" + (f"T{hh}:{mm or '00'}:{ss or '00'}" if hh else "")


def _record_fields(rec: Any) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise ValueError(f"expected an object with a 'text' field, got {type(rec).__name__}")
    text = rec.get("text")
    if not isinstance(text, str):
        raise ValueError("'text' is missing or not a string")
    out: dict[str, Any] = {"text": text}
    for key in (
        "id",
        "title",
        "url",
        "author",
        "date",
        "published",
        "outlet",
        "source",
        "publisher",
        "section",
        "topic",
        "category",
    ):
        value = rec.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)) and key in ("id", "date", "published"):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f"'{key}' must be a string")
        out[key] = value
    # One vocabulary whatever the data set calls its fields: a record's `source` names its outlet (the file it came
    # from is known already), and `topic` or `category` is its section.
    out["date"] = out.get("date") or out.pop("published", None)
    out.pop("published", None)
    out["outlet"] = out.get("outlet") or out.pop("publisher", None) or out.pop("source", None)
    out.pop("publisher", None)
    out.pop("source", None)
    out["section"] = out.get("section") or out.pop("topic", None) or out.pop("category", None)
    out.pop("topic", None)
    out.pop("category", None)
    for key in ("tags", "keywords"):
        if rec.get(key) is not None:
            out["tags"] = rec[key]
            break
    return out


def _front_matter(text: str, name: str) -> tuple[dict[str, Any], str]:
    """YAML front matter between `---` lines at the top of a Markdown file, and the body after it.

    Only the fields an article can have are kept (title, date, author, outlet/publisher/source, section/topic/
    category, tags/keywords, url, id); a block that is not valid YAML is left in the text.
    """
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(data, dict):
        return {}, text
    data = {str(k).lower(): v for k, v in data.items()}
    rec: dict[str, Any] = {"text": ""}
    for key in ("id", "title", "url", "author", "outlet", "publisher", "source", "section", "topic", "category"):
        value = data.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            rec[key] = str(value)
    for key in ("date", "published"):
        if data.get(key) is not None:
            # YAML reads an unquoted 2024-03-05 as a date object: keep what the file says as the raw date.
            value = data[key]
            rec[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    for key in ("tags", "keywords"):
        if data.get(key) is not None:
            rec[key] = data[key]
    fields = _record_fields(rec)
    del fields["text"]
    return fields, text[m.end() :]


def _read_jsonl(path: Path, text: str, rel: str, skipped: list[SkippedFile] | None) -> list[Document]:
    docs: list[Document] = []
    bad = 0
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            fields = _record_fields(json.loads(line))
        except (json.JSONDecodeError, ValueError, RecursionError) as exc:
            bad += 1
            if skipped is not None:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                skipped.append(SkippedFile(f"{path}:{lineno}", f"malformed JSON line ({reason})"))
            continue
        try:
            docs.append(_finish(fields, f"{rel}#{lineno}", f"{rel}#{lineno}"))
        except IngestError as exc:
            if skipped is not None:
                skipped.append(SkippedFile(f"{path}:{lineno}", exc.reason))
    if not docs:
        raise IngestError(str(path), "no usable JSON lines (each needs a string 'text')" if bad else "no records")
    return docs


def _read_json(path: Path, text: str, rel: str, skipped: list[SkippedFile] | None) -> list[Document]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise IngestError(str(path), f"malformed JSON{where}") from None
    if isinstance(data, dict) and "text" not in data:
        for key in ("articles", "documents", "data", "records"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    records = data if isinstance(data, list) else [data]
    docs: list[Document] = []
    for i, rec in enumerate(records):
        try:
            fields = _record_fields(rec)
            name = f"{rel}#{i}" if len(records) > 1 else rel
            docs.append(_finish(fields, name, name))
        except (ValueError, IngestError) as exc:
            if skipped is not None:
                reason = exc.reason if isinstance(exc, IngestError) else str(exc)
                skipped.append(SkippedFile(f"{path}[{i}]", f"unusable record ({reason})"))
    if not docs:
        raise IngestError(str(path), "no usable records (each needs a string 'text')")
    return docs


def _clean_title(title: str | None) -> str | None:
    if not title:
        return None
    title = " ".join(title.split())
    return title[:200] if title else None


def _title_from_text(text: str, fallback: str) -> str:
    body = text.strip()
    if not body:
        return fallback
    first_line = body.split("\n", 1)[0].strip()
    if 0 < len(first_line) <= 120 and not first_line.endswith((".", ",", ";", ":")):
        return first_line
    m = _FIRST_SENTENCE.match(body)
    sentence = " ".join((m.group(1) if m else first_line).split())
    return sentence if len(sentence) <= 120 else sentence[:117].rsplit(" ", 1)[0] + "…"


def valid_unicode(value: str) -> str:
    """`value` with each lone surrogate replaced by U+FFFD: same length, so offsets taken later stay exact."""
    return _SURROGATE.sub("\ufffd", value)


def display_path(path: str) -> str:
    """A path fit for a one-line message: control characters escaped, undecodable bytes shown as U+FFFD."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], valid_unicode(path))


def _finish(fields: dict[str, Any], default_id: str, source: str) -> Document:
    fields = {k: valid_unicode(v) if isinstance(v, str) else v for k, v in fields.items()}
    default_id, source = valid_unicode(default_id), valid_unicode(source)
    text = fields.get("text") or ""
    if "\x00" in text:
        raise IngestError(source, "text contains NUL characters")
    if not text.strip():
        raise IngestError(source, "no text (empty after extraction)")
    author, outlet = fields.get("author"), fields.get("outlet")
    b_author, b_outlet, body_start = parse_byline(text)
    if b_author:
        author = author or b_author
        outlet = outlet or b_outlet
    title = _clean_title(fields.get("title")) or _title_from_text(text[body_start:], Path(default_id).name)
    raw_date = fields.get("date")
    raw_date = " ".join(raw_date.split())[:80] or None if isinstance(raw_date, str) else None
    meta = {
        "title": title,
        "author": _clean_title(author),
        "outlet": _clean_title(outlet),
        "url": fields.get("url"),
        # Never a guessed date: an unreadable one leaves the article dateless, with what it said kept in date_raw.
        "date": normalize_date(raw_date),
        "section": _clean_title(fields.get("section")),
        "tags": _clean_tags(fields.get("tags")),
        "date_raw": raw_date,
    }
    doc_id = str(fields.get("id") or default_id)
    return Document(
        id=doc_id,
        text=text,
        source=source,
        content_hash=content_hash(text, **meta),
        **meta,
    )


def _clean_tags(value: Any) -> tuple[str, ...]:
    """Tags from a list of strings or one comma-separated string: trimmed, unique, at most 50."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = [v for v in value if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
    else:
        return ()
    tags = [t for t in (_clean_title(valid_unicode(str(v))) for v in items) if t]
    return tuple(dict.fromkeys(tags))[:50]


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


def html_fields(html: str, name: str) -> dict[str, Any]:
    """The text and metadata of one HTML page as ingest reads them (rag.web reads fetched pages with it).

    Raises:
        IngestError: no article text, or markup the extractor cannot read.
    """
    return _read_html(Path(name), html)


def pdf_fields(data: bytes, name: str) -> dict[str, Any]:
    """The text and metadata of one PDF as ingest reads them.

    Raises:
        IngestError: an encrypted, corrupt or unreadable PDF.
    """
    return _read_pdf(Path(name), data)
