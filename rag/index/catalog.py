"""The catalog: documents, chunks and sentences of one index version in SQLite (text kept once, per document)."""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import IndexCorruptError
from rag.types import Chunk, Document, Sentence

__all__ = [
    "Catalog",
    "CatalogWriter",
    "ChunkRow",
    "SentenceRow",
    "DocumentInfo",
    "WEB_SOURCE_COLUMNS",
    "WEB_PAGE_COLUMNS",
]

FILE = "meta.sqlite"

_SCHEMA = """
CREATE TABLE documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, author TEXT, outlet TEXT,
    url TEXT, date TEXT, hash TEXT NOT NULL, text BLOB NOT NULL, chunks INTEGER NOT NULL DEFAULT 0,
    section TEXT, tags TEXT NOT NULL DEFAULT '[]', date_raw TEXT
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, tokens INTEGER NOT NULL
);
CREATE TABLE sentences (
    row INTEGER NOT NULL, doc_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    PRIMARY KEY (doc_id, start)
) WITHOUT ROWID;
CREATE TABLE web_sources (
    url TEXT PRIMARY KEY, kind TEXT, feed_url TEXT, title TEXT, added_at TEXT, last_check TEXT, status TEXT,
    last_error TEXT, new_items INTEGER NOT NULL DEFAULT 0, etag TEXT, last_modified TEXT, content_hash TEXT,
    items INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE web_pages (
    url TEXT PRIMARY KEY, canonical_url TEXT, doc_id TEXT, source_url TEXT, etag TEXT, last_modified TEXT,
    last_check TEXT, status TEXT, content_hash TEXT, original TEXT, updated TEXT
);
"""
# The web sources an index follows and the pages it fetched (rag.web.state): kept in the catalog, so that they are
# published with the version they describe, and carried into every new version.
WEB_SOURCE_COLUMNS = (
    "url",
    "kind",
    "feed_url",
    "title",
    "added_at",
    "last_check",
    "status",
    "last_error",
    "new_items",
    "etag",
    "last_modified",
    "content_hash",
    "items",
)
WEB_PAGE_COLUMNS = (
    "url",
    "canonical_url",
    "doc_id",
    "source_url",
    "etag",
    "last_modified",
    "last_check",
    "status",
    "content_hash",
    "original",
    "updated",
)
_INDEXES = """
CREATE INDEX chunks_doc ON chunks(doc_id, idx);
CREATE INDEX documents_section ON documents(section);
CREATE INDEX documents_date ON documents(date);
"""


@dataclass(frozen=True)
class ChunkRow:
    """A chunk as stored: `id` is the vector id in the store."""

    id: int
    doc_id: str
    index: int
    start: int
    end: int
    tokens: int


@dataclass(frozen=True)
class SentenceRow:
    """A sentence as stored: `row` is its row in the sentence-vector matrix."""

    row: int
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class DocumentInfo:
    """A document's metadata without its text (for listings)."""

    id: str
    title: str
    source: str
    author: str | None
    outlet: str | None
    url: str | None
    date: str | None
    content_hash: str
    chunks: int
    section: str | None = None
    tags: tuple[str, ...] = ()
    date_raw: str | None = None


class CatalogWriter:
    """Writes a new catalog file in one transaction."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / FILE
        self.conn = sqlite3.connect(self.path)
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.executescript(_SCHEMA)

    def add_documents(self, docs: Iterable[Document], chunk_counts: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                (
                    d.id,
                    d.title,
                    d.source,
                    d.author,
                    d.outlet,
                    d.url,
                    d.date,
                    d.content_hash,
                    _pack(d.text),
                    chunk_counts.get(d.id, 0),
                    d.section,
                    json.dumps(list(d.tags), ensure_ascii=False),
                    d.date_raw,
                )
                for d in docs
            ),
        )

    def add_raw_documents(self, rows: Iterable[tuple]) -> None:
        """Rows read by `Catalog.raw_documents` from a catalog of the same format."""
        self.conn.executemany("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def add_chunks(self, rows: Iterable[ChunkRow]) -> None:
        self.conn.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?)",
            ((r.id, r.doc_id, r.index, r.start, r.end, r.tokens) for r in rows),
        )

    def add_sentences(self, rows: Iterable[SentenceRow]) -> None:
        self.conn.executemany(
            "INSERT INTO sentences VALUES (?,?,?,?)", ((r.row, r.doc_id, r.start, r.end) for r in rows)
        )

    def add_web_state(self, sources: Iterable[tuple], pages: Iterable[tuple]) -> None:
        """Rows of the web sources and fetched pages, in WEB_SOURCE_COLUMNS / WEB_PAGE_COLUMNS order."""
        self.conn.executemany(f"INSERT INTO web_sources VALUES ({','.join('?' * len(WEB_SOURCE_COLUMNS))})", sources)
        self.conn.executemany(f"INSERT INTO web_pages VALUES ({','.join('?' * len(WEB_PAGE_COLUMNS))})", pages)

    def close(self) -> None:
        self.conn.executescript(_INDEXES)
        self.conn.commit()
        self.conn.close()


class Catalog:
    """Read-only access to one version's catalog, safe to share between threads.

    One connection is opened up front and shared under a lock. A newer build removes this version's folder
    once it is published; the open connection keeps reading the removed file (POSIX keeps it until closed),
    whereas a connection opened later, say by a new server thread, would fail.
    """

    def __init__(self, folder: Path, doc_cache: int = 256):
        self.path = Path(folder) / FILE
        if not self.path.is_file():
            raise IndexCorruptError(f"{self.path} is missing; run `rag rebuild-index`")
        self._docs: OrderedDict[str, Document] = OrderedDict()
        self._doc_cache = doc_cache
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._db.execute("SELECT count(*) FROM documents").fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise IndexCorruptError(f"{self.path} is not a valid catalog ({exc}); run `rag rebuild-index`") from None

    def _query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._db_lock:
            if self._db is None:
                raise IndexCorruptError(f"{self.path} was closed; open the index again")
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                raise IndexCorruptError(f"{self.path} cannot be read ({exc}); run `rag rebuild-index`") from None

    def counts(self) -> dict[str, int]:
        return {t: self._query(f"SELECT count(*) FROM {t}")[0][0] for t in ("documents", "chunks", "sentences")}

    def document(self, doc_id: str, cache: bool = True) -> Document | None:
        """The document with its text, or None; `cache=False` reads it without keeping it (a build's copy pass)."""
        with self._lock:
            hit = self._docs.get(doc_id)
            if hit is not None:
                self._docs.move_to_end(doc_id)
                return hit
        rows = self._query(
            "SELECT id, text, title, source, hash, author, outlet, url, date, section, tags, date_raw FROM documents WHERE id = ?",
            (doc_id,),
        )
        if not rows:
            return None
        r = rows[0]
        doc = Document(
            id=r[0],
            text=_unpack(r[1], self.path),
            title=r[2],
            source=r[3],
            content_hash=r[4],
            author=r[5],
            outlet=r[6],
            url=r[7],
            date=r[8],
            section=r[9],
            tags=_tags(r[10]),
            date_raw=r[11],
        )
        if not cache:
            return doc
        with self._lock:
            self._docs[doc_id] = doc
            if len(self._docs) > self._doc_cache:
                self._docs.popitem(last=False)
        return doc

    def raw_documents(self, doc_ids: Sequence[str]) -> list[tuple]:
        """The stored rows of these documents, as they are (text still compressed), for copying into a new catalog."""
        if not doc_ids:
            return []
        return self._query(f"SELECT * FROM documents WHERE id IN ({','.join('?' * len(doc_ids))})", list(doc_ids))

    def documents(self) -> list[DocumentInfo]:
        rows = self._query(
            "SELECT id, title, source, author, outlet, url, date, hash, chunks, section, tags, date_raw FROM documents "
            "ORDER BY source, id"
        )
        return [
            DocumentInfo(id_, title, source, author, outlet, url, date, hash_, chunks, section, _tags(tags), date_raw)
            for id_, title, source, author, outlet, url, date, hash_, chunks, section, tags, date_raw in rows
        ]

    def values(self, column: str) -> dict[str, int]:
        """Distinct values of `section` or `outlet` with their article counts (articles without one left out).

        Spellings that differ only in case count as one value, shown as its first spelling in id order.
        """
        if column not in ("section", "outlet"):
            raise ValueError(f"cannot list values of {column!r}")
        rows = self._query(
            f"SELECT (SELECT {column} FROM documents e WHERE lower(e.{column}) = lower(d.{column}) ORDER BY e.id LIMIT 1), "
            f"count(*) FROM documents d WHERE {column} IS NOT NULL GROUP BY lower({column})"
        )
        return {r[0]: r[1] for r in rows}

    def existing_ids(self, doc_ids: Sequence[str]) -> set[str]:
        """The ids among `doc_ids` that the catalog holds."""
        found: set[str] = set()
        ids = list(dict.fromkeys(doc_ids))
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            found.update(
                r[0] for r in self._query(f"SELECT id FROM documents WHERE id IN ({','.join('?' * len(part))})", part)
            )
        return found

    def chunk_ids_matching(
        self,
        *,
        doc_ids: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        sections: Sequence[str] | None = None,
        outlets: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[int]:
        """Ids of chunks whose document passes every given condition (None: no condition).

        Articles listed by id or by source path are one choice (either matches); sections and outlets match
        ignoring case; `since`/`until` are inclusive "YYYY-MM-DD" bounds and a dateless article never passes one.
        """
        clauses, args = [], []
        picked = []
        if doc_ids:
            picked.append(f"d.id IN ({','.join('?' * len(doc_ids))})")
            args += list(doc_ids)
        if sources:
            picked.append(f"d.source IN ({','.join('?' * len(sources))})")
            args += list(sources)
        if picked:
            clauses.append("(" + " OR ".join(picked) + ")")
        for column, values in (("section", sections), ("outlet", outlets)):
            if values:
                clauses.append(f"lower(d.{column}) IN ({','.join('?' * len(values))})")
                args += [v.lower() for v in values]
        if since:
            clauses.append("substr(d.date, 1, 10) >= ?")
            args.append(since)
        if until:
            clauses.append("substr(d.date, 1, 10) <= ?")
            args.append(until)
        where = " AND ".join(clauses) if clauses else "1"
        return [
            r[0]
            for r in self._query(f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}", args)
        ]

    def hashes(self) -> dict[str, str]:
        return dict(self._query("SELECT id, hash FROM documents"))

    def chunks_by_ids(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        if not len(ids):
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(
            f'SELECT id, doc_id, idx, start, "end", tokens FROM chunks WHERE id IN ({marks})', [int(i) for i in ids]
        )
        return {r[0]: ChunkRow(*r) for r in rows}

    def chunks_of(self, doc_ids: Sequence[str]) -> list[ChunkRow]:
        if not doc_ids:
            return []
        marks = ",".join("?" * len(doc_ids))
        rows = self._query(
            f'SELECT id, doc_id, idx, start, "end", tokens FROM chunks WHERE doc_id IN ({marks}) ORDER BY doc_id, idx',
            list(doc_ids),
        )
        return [ChunkRow(*r) for r in rows]

    def chunk_ids_where(self, doc_ids: Sequence[str] | None = None, sources: Sequence[str] | None = None) -> list[int]:
        """Ids of chunks whose document id or source is in the given lists (for filtered search)."""
        clauses, args = [], []
        if doc_ids:
            clauses.append(f"d.id IN ({','.join('?' * len(doc_ids))})")
            args += list(doc_ids)
        if sources:
            clauses.append(f"d.source IN ({','.join('?' * len(sources))})")
            args += list(sources)
        where = " OR ".join(clauses) if clauses else "1"
        return [
            r[0]
            for r in self._query(f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}", args)
        ]

    def sentences_in(self, doc_id: str, start: int, end: int) -> list[SentenceRow]:
        """Sentences of a document that overlap [start, end)."""
        rows = self._query(
            'SELECT row, doc_id, start, "end" FROM sentences WHERE doc_id = ? AND "end" > ? AND start < ? ORDER BY start',
            (doc_id, start, end),
        )
        return [SentenceRow(*r) for r in rows]

    def sentences_of_chunks(self, chunk_ids: Sequence[int]) -> dict[int, list[SentenceRow]]:
        """chunk id -> the sentences overlapping that chunk, in document order (one query for all chunks)."""
        if not len(chunk_ids):
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self._query(
            f'SELECT c.id, s.row, s.doc_id, s.start, s."end" FROM chunks c JOIN sentences s ON s.doc_id = c.doc_id '
            f'AND s."end" > c.start AND s.start < c."end" WHERE c.id IN ({marks}) ORDER BY c.id, s.start',
            [int(i) for i in chunk_ids],
        )
        out: dict[int, list[SentenceRow]] = {}
        for cid, *rest in rows:
            out.setdefault(cid, []).append(SentenceRow(*rest))
        return out

    def sentences_of(self, doc_ids: Sequence[str]) -> list[SentenceRow]:
        if not doc_ids:
            return []
        marks = ",".join("?" * len(doc_ids))
        rows = self._query(
            f'SELECT row, doc_id, start, "end" FROM sentences WHERE doc_id IN ({marks}) ORDER BY doc_id, start',
            list(doc_ids),
        )
        return [SentenceRow(*r) for r in rows]

    def web_state(self) -> tuple[list[tuple], list[tuple]]:
        """(web source rows, fetched page rows) in WEB_SOURCE_COLUMNS / WEB_PAGE_COLUMNS order; none in a catalog
        written before they existed."""
        tables = {r[0] for r in self._query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"web_sources", "web_pages"} <= tables:
            return [], []
        sources = self._query(f"SELECT {', '.join(WEB_SOURCE_COLUMNS)} FROM web_sources ORDER BY added_at, url")
        pages = self._query(f"SELECT {', '.join(WEB_PAGE_COLUMNS)} FROM web_pages ORDER BY url")
        return sources, pages

    def all_chunks(self) -> list[ChunkRow]:
        return [
            ChunkRow(*r)
            for r in self._query('SELECT id, doc_id, idx, start, "end", tokens FROM chunks ORDER BY doc_id, idx')
        ]

    def close(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _pack(text: str) -> bytes:
    # Article text is most of a catalog's size; zlib keeps about a third of it and costs microseconds per read.
    return zlib.compress(text.encode("utf-8", "surrogatepass"), 6)


def _unpack(blob: bytes | str, path: Path) -> str:
    if isinstance(blob, str):
        return blob
    try:
        return zlib.decompress(blob).decode("utf-8", "surrogatepass")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{path}: a stored article cannot be read ({exc}); run `rag rebuild-index`") from None


def _tags(value: str | None) -> tuple[str, ...]:
    try:
        tags = json.loads(value or "[]")
    except ValueError:
        return ()
    return tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ()


def as_chunk(row: ChunkRow, doc: Document) -> Chunk:
    return Chunk(row.doc_id, row.index, row.start, row.end, doc.text[row.start : row.end])


def as_sentence(row: SentenceRow, doc: Document) -> Sentence:
    return Sentence(row.doc_id, row.start, row.end, doc.text[row.start : row.end])
