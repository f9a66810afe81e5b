"""One file's bytes -> Documents: txt, md, html, json/jsonl and pdf, with metadata and a content hash.

Every reader returns the text exactly as citations will quote it; nothing downstream rewrites it. Finding the
files and reading them within their limits is rag.ingest.files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from rag.errors import IngestError
from rag.ingest.dates import normalize_date
from rag.ingest.htmlmeta import read_page_meta
from rag.types import Document, SkippedFile

__all__ = [
    "parse_documents",
    "decode_text",
    "content_hash",
    "parse_byline",
    "valid_unicode",
    "html_fields",
    "pdf_fields",
]

_BYLINE = re.compile(r"\A\s*\(([^(),\n]{2,80}),\s*([^(),\n]{2,80})\)\s*")
_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_FIRST_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)", re.DOTALL)
# Lone surrogates come from JSON escapes such as "\ud800" and from file names that are not valid UTF-8; SQLite
# and JSON files cannot store them.
_SURROGATE = re.compile("[\ud800-\udfff]")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*(?:\n|\Z)", re.DOTALL)


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


def parse_documents(path: Path, data: bytes, rel: str, skipped: list[SkippedFile] | None) -> list[Document]:
    """One file's bytes as Documents, read by the file's extension (JSON lines give one per record).

    Args:
        path: the file, for its extension and for messages.
        data: its bytes.
        rel: its path relative to the source folder, the default id and source of its documents.
        skipped: unusable records inside the file are appended here (None: not reported).

    Raises:
        IngestError: the file cannot be used; the reason is one line.
    """
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

    from pypdf import PasswordType, PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = PasswordType.NOT_DECRYPTED
            if not ok:
                raise IngestError(str(path), "encrypted PDF; save an unencrypted copy to index it")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta = reader.metadata
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


class _Metadata(TypedDict):
    """An article's metadata as `_finish` records it: the fields of Document beside id, text, source and hash."""

    title: str
    author: str | None
    outlet: str | None
    url: str | None
    date: str | None
    section: str | None
    tags: tuple[str, ...]
    date_raw: str | None


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
    meta: _Metadata = {
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
    items: Sequence[str | int | float]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = [v for v in value if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
    else:
        return ()
    tags = [t for t in (_clean_title(valid_unicode(str(v))) for v in items) if t]
    return tuple(dict.fromkeys(tags))[:50]


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
