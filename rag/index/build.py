"""build_index(): articles in, a new index version out (read, split and embedded in batches, written beside the
live version and published atomically)."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.errors import RagError, SourceError
from rag.index import indexdir
from rag.index.catalog import Catalog, CatalogWriter, ChunkRow, SentenceRow
from rag.index.embedding import Embedder, make_embedder
from rag.index.lexical import TOKENIZER, LexicalBuilder, saved_tokenizer
from rag.index.sentvecs import ENCODING as SENTENCE_ENCODING
from rag.index.sentvecs import FILE as SENTENCE_VECTORS
from rag.index.sentvecs import SentenceVectorWriter
from rag.index.version import IndexVersion
from rag.ingest.chunking import chunk_document, make_splitter
from rag.ingest.files import find_files, iter_documents
from rag.ingest.sentences import split_sentences
from rag.stores import create_store, keeps_metadata
from rag.types import BuildStats, Document, SkippedFile

__all__ = ["build_index", "ProgressFn"]

ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): called during a build; stages are read (files found), embed (articles read and
embedded, of about `total`) and write."""


def _chunk_id(doc_hash: str, doc_id: str, index: int) -> int:
    """A stable positive int64 id: the same chunk of an unchanged document keeps its id across builds."""
    digest = hashlib.blake2b(
        f"{doc_id}\x00{doc_hash}\x00{index}".encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


BATCH_DOCUMENTS = 64
"""Articles read, split and embedded together: a build's memory is bounded by one batch, not by the collection."""
# BM25 term ids collected during a build go to this file of the work folder; it is gone before the version is published.
_TERM_SPILL = "lexical-terms.tmp"


@dataclass
class _Batch:
    """Changed articles of one batch, split and tokenized by the reading thread, ready for the model."""

    docs: list[Document]
    chunks: list[ChunkRow]
    chunk_texts: list[str]
    chunk_sentences: list[list[int]]  # per chunk: the positions in `sentences` of the sentences it holds
    sentences: list[tuple[str, int, int]]  # (doc_id, start, end)
    sentence_texts: list[str]


def _split(docs: Sequence[Document], settings: Settings, embedder: Embedder, splitter: Any) -> _Batch:
    count = embedder.count_tokens
    out = _Batch(list(docs), [], [], [], [], [])
    for doc in docs:
        sentences = split_sentences(doc.text, doc.id) if settings.sentence_vectors else []
        base = len(out.sentences)
        starts = [s.start for s in sentences]
        ends = [s.end for s in sentences]
        out.sentences += [(doc.id, s.start, s.end) for s in sentences]
        out.sentence_texts += [s.text for s in sentences]
        for c in chunk_document(doc, settings.chunk_size, settings.chunk_overlap, count, embedder.max_tokens, splitter):
            out.chunks.append(
                ChunkRow(_chunk_id(doc.content_hash, doc.id, c.index), doc.id, c.index, c.start, c.end, 0)
            )
            out.chunk_texts.append(c.text)
            # The sentences this chunk holds, whole or in part.
            lo, hi = bisect_right(ends, c.start), bisect_left(starts, c.end)
            out.chunk_sentences.append([base + j for j in range(lo, hi)])
    batch = getattr(embedder, "count_tokens_batch", None)
    tokens = batch(out.chunk_texts) if batch else [count(t) for t in out.chunk_texts]
    out.chunks = [ChunkRow(r.id, r.doc_id, r.index, r.start, r.end, n) for r, n in zip(out.chunks, tokens)]
    return out


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: its allocator keeps its own policy
        return None


def _return_freed_memory() -> None:
    """Hand the heap pages freed since the last batch back to the OS.

    A build frees as much as it allocates, batch after batch, from several threads (reader, model, writer), and
    glibc keeps the freed pages of each thread's arena. Releasing them after every batch took a 10,000-article
    build's peak from 599 to 544 MiB; a call costs about 2 ms on a churned heap, against seconds per batch.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _embed(batch: _Batch, settings: Settings, embedder: Embedder) -> tuple[np.ndarray, np.ndarray]:
    """Chunk vectors and sentence vectors of a batch.

    By default the model reads each sentence once, and a chunk's vector is the mean of its sentences' vectors:
    half the model work of embedding chunks and sentences apart, on shorter inputs, for the same retrieval
    (docs/benchmarks.md). `chunk_vectors="model"` embeds chunks on their own as well.
    """
    dim = embedder.dimension
    sent = (
        embedder.embed_documents(batch.sentence_texts, settings.batch_size)
        if batch.sentences
        else np.zeros((0, dim), np.float32)
    )
    if settings.chunk_vectors == "model" or not batch.sentences:
        return embedder.embed_documents(batch.chunk_texts, settings.batch_size), sent
    chunks = np.zeros((len(batch.chunks), dim), np.float32)
    alone = []
    for i, rows in enumerate(batch.chunk_sentences):
        if rows:
            chunks[i] = sent[rows].mean(axis=0)
        else:
            alone.append(i)
    if alone:  # a chunk no sentence overlaps (none in practice) is embedded itself
        chunks[alone] = embedder.embed_documents([batch.chunk_texts[i] for i in alone], settings.batch_size)
    chunks /= np.clip(np.linalg.norm(chunks, axis=1, keepdims=True), 1e-12, None)
    return chunks, sent


class _Reader:
    """Reads, compares and splits articles in a background thread, one batch ahead of the model.

    The model's forward pass releases the GIL, so parsing, sentence splitting and tokenizing the next batch run
    while the current one is embedded. Unchanged articles are only counted here: their rows are copied later.
    """

    def __init__(self, docs: Iterator[Document], old_hashes: dict[str, str], settings: Settings, embedder: Embedder):
        import queue

        self.hashes: dict[str, str] = {}
        self.unchanged: list[str] = []
        self.added = 0
        self._docs = docs
        self._old = old_hashes
        self._settings = settings
        self._embedder = embedder
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rag-build-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            splitter = make_splitter(
                self._settings.chunk_size, self._settings.chunk_overlap, self._embedder.count_tokens
            )
            pending: list[Document] = []
            for doc in self._docs:
                if self._stop.is_set():
                    return
                self.hashes[doc.id] = doc.content_hash
                if self._old.get(doc.id) == doc.content_hash:
                    self.unchanged.append(doc.id)
                    continue
                self.added += doc.id not in self._old
                pending.append(doc)
                if len(pending) >= BATCH_DOCUMENTS:
                    self._put(_split(pending, self._settings, self._embedder, splitter))
                    pending = []
            if pending:
                self._put(_split(pending, self._settings, self._embedder, splitter))
            self._put(None)
        except BaseException as exc:  # handed to the building thread, which raises it
            self._put(exc)

    def _put(self, item: Any) -> None:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[_Batch]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class _VersionWriter:
    """Everything a new index version is written through, opened on first use (a build with nothing to do opens
    nothing, so it never touches the vector store)."""

    def __init__(self, index_dir: Path, settings: Settings, embedder: Embedder, prev: IndexVersion | None):
        self.index_dir = index_dir
        self.settings = settings
        self.prev = prev
        self.dimension = embedder.dimension
        self.work: Path | None = None
        self.chunks = 0

    def open(self) -> _VersionWriter:
        if self.work is not None:
            return self
        self.work = indexdir.new_work_dir(self.index_dir)
        self.catalog = CatalogWriter(self.work)
        self.sentences = SentenceVectorWriter(self.work / SENTENCE_VECTORS, self.dimension)
        self.lexical = LexicalBuilder(self.work / _TERM_SPILL)
        # Last: an external store that refuses (a server down, a wrong login) fails the build before any write.
        if self.prev is not None:
            self.store = self.prev.store
        else:
            self.store = create_store(
                self.settings.store, self.dimension, self.settings, self.work, live=_live_store(self.index_dir)
            )
        return self

    def add_batch(self, batch: _Batch, chunk_vecs: np.ndarray, sent_vecs: np.ndarray) -> None:
        ids = np.array([c.id for c in batch.chunks], dtype=np.int64)
        if keeps_metadata(self.store):
            # Stores that filter inside their engine (Milvus) keep each chunk's document, source and date.
            from rag.stores import ChunkMeta

            by_id = {d.id: d for d in batch.docs}
            meta = [ChunkMeta(c.doc_id, by_id[c.doc_id].source, by_id[c.doc_id].date) for c in batch.chunks]
            self.store.add(ids, chunk_vecs, metadata=meta)
        else:
            self.store.add(ids, chunk_vecs)
        rows = self.sentences.add(sent_vecs)
        self.catalog.add_sentences(SentenceRow(r, d, s, e) for r, (d, s, e) in zip(rows, batch.sentences))
        self.catalog.add_chunks(batch.chunks)
        counts: dict[str, int] = {}
        for c in batch.chunks:
            counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
        self.catalog.add_documents(batch.docs, counts)
        for c, text in zip(batch.chunks, batch.chunk_texts):
            self.lexical.add(c.id, text)
        self.chunks += len(batch.chunks)

    def copy_unchanged(self, doc_ids: Sequence[str]) -> None:
        """Copy unchanged articles' rows, chunk vectors (they stay in the store) and sentence codes from the
        previous version, a slice at a time."""
        prev = self.prev
        assert prev is not None, "copy_unchanged needs the previous version"
        for i in range(0, len(doc_ids), 500):
            part = list(doc_ids[i : i + 500])
            self.catalog.add_raw_documents(prev.catalog.raw_documents(part))
            chunks = prev.catalog.chunks_of(part)
            self.catalog.add_chunks(chunks)
            doc_id, text = None, ""
            for c in chunks:  # in document order: each article's text is read once
                if c.doc_id != doc_id:
                    doc = prev.catalog.document(c.doc_id, cache=False)
                    assert doc is not None, f"{c.doc_id} has chunks but no row in {prev.catalog.path}"
                    doc_id, text = c.doc_id, doc.text
                self.lexical.add(c.id, text[c.start : c.end])
            old = prev.catalog.sentences_of(part)
            if old:
                rows = self.sentences.add_codes(prev.sentence_matrix.codes([s.row for s in old]))
                self.catalog.add_sentences(SentenceRow(r, s.doc_id, s.start, s.end) for r, s in zip(rows, old))
            self.chunks += len(chunks)

    def abort(self) -> None:
        if self.work is None:
            return
        sentences, catalog = getattr(self, "sentences", None), getattr(self, "catalog", None)
        if sentences is not None:
            sentences.abort()
        if getattr(self, "lexical", None) is not None:
            self.lexical.close()
        if catalog is not None:
            catalog.conn.close()
        shutil.rmtree(self.work, ignore_errors=True)


def build_index(
    source: str | Path | Sequence[str | Path] | None = None,
    index_dir: str | Path | None = None,
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    full: bool = False,
    progress: ProgressFn | None = None,
    web_state: tuple[list[tuple], list[tuple]] | None = None,
) -> BuildStats:
    """Index the articles under `source` into `index_dir`, reusing vectors of unchanged articles.

    Articles stream through in batches (read and split in a background thread while the model embeds the
    previous batch), so memory does not grow with the collection. The new index is written beside the old one
    and swapped in atomically; on any error the old index stays.

    Args:
        source: a file, folder or list of them (default: settings.source).
        index_dir: the index folder (default: settings.index_dir).
        settings: engine settings (default: Settings.load()).
        embedder: a ready embedder (default: the settings' model, loaded once per process).
        full: re-embed every article even when the previous index could be reused.
        progress: optional callback progress(stage, done, total); stage "embed" counts articles.
        web_state: the web sources and fetched pages to record in the new version's catalog (rag.web.state);
            None carries the live version's forward. Given, the build always publishes a new version.

    Returns:
        BuildStats: documents, chunks, added, updated, removed, seconds, and the skipped files with reasons.

    Example:
        >>> stats = build_index("seeds/", "index/")
        >>> stats.documents, stats.chunks
    """
    t0 = time.perf_counter()
    settings = settings or Settings.load()
    source = settings.source if source is None else source
    if isinstance(source, (str, Path)):
        # The manifest records where the articles came from, so a later rebuild (UI, `make run`) finds them.
        settings = settings.with_(source=str(Path(source).resolve()))
    index_dir = indexdir.prepare_index_dir(Path(settings.index_dir if index_dir is None else index_dir))
    with indexdir.build_lock(index_dir):
        indexdir.clean_stale(index_dir)
        files = find_files(source)
        skipped: list[SkippedFile] = []
        docs = iter_documents(
            files, skipped, max_file_mb=settings.max_file_mb, parse_timeout_s=settings.parse_timeout_s
        )
        embedder = embedder or make_embedder(settings.model, settings.backend, settings.device)
        # The manifest names the model and backend that made the vectors.
        settings = settings.with_(model=embedder.name, backend=getattr(embedder, "backend", None))
        prev = None if full else _previous(index_dir, settings, embedder)
        carried = web_state is None
        if web_state is None:
            web_state = _web_state_of(index_dir, prev)
        old_hashes = prev.catalog.hashes() if prev else {}
        total = files.estimated_documents() if progress else 0
        reader = _Reader(docs, old_hashes, settings, embedder)
        writer = _VersionWriter(index_dir, settings, embedder, prev)
        embedded = tokens = 0
        try:
            if progress:
                progress("read", 0, total)  # files found; articles are read, split and embedded as one stream
                progress("embed", 0, total)
            for batch in reader:
                chunk_vecs, sent_vecs = _embed(batch, settings, embedder)
                indexdir.pause_point("embed")  # crash tests stop the build here (RAG_PAUSE_AT); a no-op otherwise
                writer.open().add_batch(batch, chunk_vecs, sent_vecs)
                embedded += len(batch.chunks)
                tokens += sum(c.tokens for c in batch.chunks)
                _return_freed_memory()
                if progress:
                    done = len(reader.hashes)
                    progress("embed", done, max(total, done))
            hashes, unchanged = reader.hashes, reader.unchanged
            if progress:
                progress("embed", len(hashes), len(hashes))
            if not hashes:
                reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
                raise SourceError(
                    f"no readable articles in {source} ({reasons}); the existing index was left unchanged"
                )
            removed_ids = [i for i in old_hashes if i not in hashes]
            changed = len(hashes) - len(unchanged)
            if (
                prev is not None
                and carried
                and not changed
                and not removed_ids
                and saved_tokenizer(prev.version_dir) == TOKENIZER
            ):
                # Nothing to do: the live index already matches the articles, the settings and this version's stemmer.
                return BuildStats(
                    len(hashes),
                    int(prev.manifest["counts"]["chunks"]),
                    0,
                    0,
                    0,
                    round(time.perf_counter() - t0, 3),
                    int(prev.manifest["counts"]["sentences"]),
                    0,
                    0,
                    tuple(skipped),
                    prev.version,
                )
            writer.open()
            if prev is not None:
                writer.copy_unchanged(unchanged)
                kept = set(unchanged)
                stale_docs = [d for d in hashes if d in old_hashes and d not in kept] + removed_ids
                writer.store.remove(np.array([c.id for c in prev.catalog.chunks_of(stale_docs)], dtype=np.int64))
            writer.catalog.add_web_state(*web_state)
            stats = _finish_version(writer, settings, hashes, skipped, progress)
        except BaseException:
            writer.abort()
            raise
        finally:
            reader.close()
            if prev:
                prev.close()
            _return_freed_memory()  # the BM25 fit's arrays, now saved: a process that goes on to serve needs them no more
        return BuildStats(
            documents=len(hashes),
            chunks=stats["chunks"],
            added=reader.added,
            updated=changed - reader.added,
            removed=len(removed_ids),
            seconds=round(time.perf_counter() - t0, 3),
            sentences=stats["sentences"],
            embedded_chunks=embedded,
            tokens=tokens,
            skipped=tuple(skipped),
            version=stats["version"],
        )


def _finish_version(
    writer: _VersionWriter,
    settings: Settings,
    hashes: dict[str, str],
    skipped: list[SkippedFile],
    progress: ProgressFn | None,
) -> dict[str, Any]:
    """Close every file of the new version, write its manifest and publish it."""
    work, store = writer.work, writer.store
    assert work is not None
    writer.sentences.close()
    indexdir.pause_point("write")
    writer.catalog.close()
    if progress:
        progress("write", 1, 2)
    # BM25 is fitted in full each time (its statistics are global): about 0.1 s per 6,000 passages, in slices.
    lexical = writer.lexical.build()
    files = store.save(work) + ["meta.sqlite", SENTENCE_VECTORS] + lexical.save(work)
    n_sentences = writer.sentences.rows
    manifest = {
        "format_version": indexdir.FORMAT_VERSION,
        "model": settings.model,
        "dimension": writer.dimension,
        "index_settings": settings.index_signature(),
        "settings": settings.to_dict(),
        "store": store.params(),
        "sentence_vectors": {"encoding": SENTENCE_ENCODING, "rows": n_sentences},
        "counts": {"documents": len(hashes), "chunks": writer.chunks, "sentences": n_sentences},
        "documents": hashes,
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": indexdir.checksums(work, files),
    }
    indexdir.write_manifest(work, manifest)
    final = indexdir.publish(writer.index_dir, work)
    published = getattr(store, "published", None)
    if published is not None:
        # The version is live whatever happens here: a store that cannot tidy up now does it after the next build.
        try:
            published()
        except RagError as exc:
            import warnings

            warnings.warn(f"{final}: the vector store could not finish publishing ({exc})", stacklevel=2)
    if writer.prev is None:
        store.close()
    if progress:
        progress("write", 2, 2)
    return {"chunks": writer.chunks, "sentences": n_sentences, "version": final.name}


def _web_state_of(index_dir: Path, prev: IndexVersion | None) -> tuple[list[tuple], list[tuple]]:
    """The web sources and fetched pages the live version records, to carry into the next one (none when there is
    no readable live version)."""
    if prev is not None:
        return prev.catalog.web_state()
    try:
        version = indexdir.current_version(index_dir)
        if version is None:
            return [], []
        catalog = Catalog(version)
    except RagError:
        return [], []
    try:
        return catalog.web_state()
    except RagError:
        return [], []
    finally:
        catalog.close()


def _previous(index_dir: Path, settings: Settings, embedder: Embedder) -> IndexVersion | None:
    """The current index if its vectors can be reused for this build, else None (then everything is embedded)."""
    try:
        version = indexdir.current_version(index_dir)
        if version is None:
            return None
        idx = IndexVersion(index_dir, embedder=embedder, settings=settings, _version=version, _reuse=True)
    except RagError:
        return None
    sig = idx.manifest.get("index_settings", {})
    if sig != settings.index_signature() or not _same_store(idx.manifest.get("store", {}), settings, index_dir):
        idx.close()
        return None
    return idx


def _live_store(index_dir: Path) -> dict[str, Any] | None:
    """The store entry of the index folder's live manifest (None: no readable live version)."""
    try:
        version = indexdir.current_version(index_dir)
        return indexdir.read_manifest(version).get("store", {}) if version is not None else None
    except RagError:
        return None


def _same_store(params: dict[str, Any], settings: Settings, index_dir: Path) -> bool:
    """Whether the previous version's vectors live where this build's settings put them."""
    if params.get("kind", "faiss") != settings.store:
        return False
    if settings.store == "milvus":
        from rag.stores.milvus import same_location

        return same_location(params, settings, index_dir)
    return True
