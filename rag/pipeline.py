"""build_index(), open_index(), query(): the one place that wires ingest, chunking, embedding, store and answer."""

from __future__ import annotations

import hashlib
import shutil
from bisect import bisect_left, bisect_right
import threading
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import followup as followup_weights
from . import indexdir
from .answer import compose_answer, load_reranker
from .catalog import Catalog, CatalogWriter, ChunkRow, DocumentInfo, SentenceRow
from .chunking import chunk_document, make_splitter
from .config import Settings
from .embedding import Embedder, make_embedder
from .errors import FilterError, IndexCorruptError, IndexMismatchError, QuestionError, RagError, SourceError
from .filters import SORTS, Filters, allowed_chunks, make_filters
from .followup import FollowUp, Turn, parse_history, prefer_articles, read_followup
from .ingest import find_files, iter_documents
from .lexical import FOLDER as LEXICAL_FOLDER
from .lexical import TOKENIZER, LexicalBuilder, LexicalIndex, saved_tokenizer
from .ranking import Candidate, Signals, confidence_features, load_model, rank_pool, score_candidates
from .reader import Reading, load_reader
from .reading import load_blend, read_candidates, rescore
from .recency import newest_first, order_citations, prefer_cued, time_cue
from .retrieval import Hit, HybridRetriever, Retriever, make_retriever
from .sentences import split_sentences
from .sentvecs import FILE as SENTENCE_VECTORS
from .sentvecs import ENCODING as SENTENCE_ENCODING
from .sentvecs import SentenceVectors, SentenceVectorWriter
from .stores import VectorStore, create_store, open_store
from .types import Answer, BuildStats, Document, Passage, Sentence, SkippedFile

__all__ = ["build_index", "open_index", "query", "check_question", "Index", "ProgressFn"]

# Passages retrieved before ranking by best sentence (30 and 40 measured alike on the SQuAD 2.0 dev fit half).
RANK_POOL = 30

ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): called during a build; stages are read (files found), embed (articles read and
embedded, of about `total`) and write."""


def _chunk_id(doc_hash: str, doc_id: str, index: int) -> int:
    """A stable positive int64 id: the same chunk of an unchanged document keeps its id across builds."""
    digest = hashlib.blake2b(f"{doc_id}\x00{doc_hash}\x00{index}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
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
            out.chunks.append(ChunkRow(_chunk_id(doc.content_hash, doc.id, c.index), doc.id, c.index, c.start, c.end, 0))
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
    sent = embedder.embed_documents(batch.sentence_texts, settings.batch_size) if batch.sentences else \
        np.zeros((0, dim), np.float32)
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
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rag-build-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            splitter = make_splitter(self._settings.chunk_size, self._settings.chunk_overlap, self._embedder.count_tokens)
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

    def __init__(self, index_dir: Path, settings: Settings, embedder: Embedder, prev: "Index | None"):
        self.index_dir = index_dir
        self.settings = settings
        self.prev = prev
        self.dimension = embedder.dimension
        self.work: Path | None = None
        self.chunks = 0

    def open(self) -> "_VersionWriter":
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
            self.store = create_store(self.settings.store, self.dimension, self.settings, self.work)
        return self

    def add_batch(self, batch: _Batch, chunk_vecs: np.ndarray, sent_vecs: np.ndarray) -> None:
        ids = np.array([c.id for c in batch.chunks], dtype=np.int64)
        if getattr(self.store, "supports_metadata", False):
            # Stores that filter inside their engine (Milvus) keep each chunk's document, source and date.
            from .stores import ChunkMeta

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
        for i in range(0, len(doc_ids), 500):
            part = list(doc_ids[i : i + 500])
            self.catalog.add_raw_documents(prev.catalog.raw_documents(part))
            chunks = prev.catalog.chunks_of(part)
            self.catalog.add_chunks(chunks)
            doc_id, text = None, ""
            for c in chunks:  # in document order: each article's text is read once
                if c.doc_id != doc_id:
                    doc_id, text = c.doc_id, prev.catalog.document(c.doc_id, cache=False).text
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
        docs = iter_documents(files, skipped, max_file_mb=settings.max_file_mb, parse_timeout_s=settings.parse_timeout_s)
        embedder = embedder or make_embedder(settings.model, settings.backend, settings.device)
        # The manifest names the model and backend that made the vectors.
        settings = settings.with_(model=embedder.name, backend=getattr(embedder, "backend", None))
        prev = None if full else _previous(index_dir, settings, embedder)
        carried = web_state is None
        if carried:
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
                raise SourceError(f"no readable articles in {source} ({reasons}); the existing index was left unchanged")
            removed_ids = [i for i in old_hashes if i not in hashes]
            changed = len(hashes) - len(unchanged)
            if prev is not None and carried and not changed and not removed_ids and saved_tokenizer(prev.version_dir) == TOKENIZER:
                # Nothing to do: the live index already matches the articles, the settings and this version's stemmer.
                return BuildStats(len(hashes), int(prev.manifest["counts"]["chunks"]), 0, 0, 0,
                                  round(time.perf_counter() - t0, 3), int(prev.manifest["counts"]["sentences"]),
                                  0, 0, tuple(skipped), prev.version)
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


def _finish_version(writer: _VersionWriter, settings: Settings, hashes: dict[str, str],
                    skipped: list[SkippedFile], progress: ProgressFn | None) -> dict[str, Any]:
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


def _web_state_of(index_dir: Path, prev: "Index | None") -> tuple[list[tuple], list[tuple]]:
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


def _previous(index_dir: Path, settings: Settings, embedder: Embedder) -> "Index | None":
    """The current index if its vectors can be reused for this build, else None (then everything is embedded)."""
    try:
        version = indexdir.current_version(index_dir)
        if version is None:
            return None
        idx = Index(index_dir, embedder=embedder, settings=settings, _version=version, _reuse=True)
    except RagError:
        return None
    sig = idx.manifest.get("index_settings", {})
    if sig != settings.index_signature() or not _same_store(idx.manifest.get("store", {}), settings, index_dir):
        idx.close()
        return None
    return idx


def _same_store(params: dict[str, Any], settings: Settings, index_dir: Path) -> bool:
    """Whether the previous version's vectors live where this build's settings put them."""
    if params.get("kind", "faiss") != settings.store:
        return False
    if settings.store == "milvus":
        from .stores.milvus import same_location

        return same_location(params, settings, index_dir)
    return True


class Index:
    """An opened index version: load once, query many times, from any thread.

    Example:
        >>> idx = open_index("index/")
        >>> answer = idx.query("what would lift the pause?", k=5)
        >>> answer.citations[0].quote
    """

    def __init__(
        self,
        index_dir: str | Path,
        *,
        embedder: Embedder | None = None,
        settings: Settings | None = None,
        verify: bool = True,
        _version: Path | None = None,
        _reuse: bool = False,
    ):
        self.index_dir = Path(index_dir)
        self.version_dir = _version or indexdir.require_index(self.index_dir)
        self.version = self.version_dir.name
        self.manifest = indexdir.read_manifest(self.version_dir)
        problems = indexdir.verify_files(self.version_dir, self.manifest, deep=verify)
        if problems:
            from .errors import IndexCorruptError

            raise IndexCorruptError(f"{problems[0]}; run `rag rebuild-index`")
        # Which reader reads is a query-time choice (this process's settings), never the build's.
        # So is the device: an index built on a GPU is read on a laptop.
        saved = Settings.from_dict({k: v for k, v in self.manifest.get("settings", {}).items()
                                    if not k.startswith("reader") and k != "device"})
        self.settings = settings.with_(**saved.index_signature()) if settings else saved
        self.embedder = embedder or make_embedder(saved.model, self.settings.backend, self.settings.device)
        if embedder is not None and getattr(embedder, "name", saved.model) != saved.model:
            raise IndexMismatchError(
                f"{self.index_dir} was built with model {saved.model!r}, not {embedder.name!r}; "
                "run `rag rebuild-index` to rebuild it with the new model"
            )
        self.catalog = Catalog(self.version_dir)
        self.store: VectorStore = open_store(self.version_dir, self.manifest.get("store", {"kind": "faiss"}),
                                             self.settings)
        if self.store.dimension != int(self.manifest.get("dimension", self.store.dimension)):
            raise IndexMismatchError(f"{self.version_dir}: store dimension differs from the manifest; run `rag rebuild-index`")
        self.sentence_matrix = SentenceVectors(self.version_dir / SENTENCE_VECTORS, int(self.manifest.get("dimension", self.store.dimension)))
        # Indexes built before the lexical index existed have no lexical/ folder: they fall back to dense search.
        has_lexical = (self.version_dir / LEXICAL_FOLDER).is_dir()
        # A build reusing this version's vectors (`_reuse`) rebuilds the lexical index anyway: it is not read.
        self.lexical = LexicalIndex.load(self.version_dir) if has_lexical and not _reuse else None
        self.retriever: Retriever = make_retriever(self.settings.retriever, self.store, self.lexical)
        self.reranker = load_reranker(self.settings.reranker) if self.settings.reranker else None
        # The reader is not tied to the index: any index can be read with any reader, or none.
        self.reader = load_reader(self.settings.reader)
        self.blend = load_blend(self.reader.folder, load_model()) if self.reader is not None else None

    # -- public API -------------------------------------------------------------------------------------------

    def query(
        self,
        question: str,
        k: int | None = None,
        *,
        doc_ids: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        abstain_threshold: float | None = None,
        since: str | None = None,
        until: str | None = None,
        section: str | Sequence[str] | None = None,
        outlet: str | Sequence[str] | None = None,
        sort: str = "relevance",
        filters: Filters | None = None,
        history: Sequence[Turn | Answer | str | dict] | None = None,
        read: bool | float = True,
        vector: np.ndarray | None = None,
    ) -> Answer:
        """Answer `question` with quoted, cited sentences from the indexed articles, or abstain.

        Args:
            question: 1 to settings.max_question_chars characters.
            k: passages to retrieve (default settings.k).
            doc_ids, sources: restrict the search to these articles or source paths.
            abstain_threshold: override the settings' threshold for this call.
            since, until: publication dates, inclusive ("YYYY-MM-DD", "YYYY-MM" or "YYYY"); dateless articles are left out.
            section, outlet: only articles of these sections / outlets (a name, comma-separated names, or a list).
            sort: "relevance" (default) or "newest": the passages shown newest article first.
            filters: a ready `Filters` (then the filter arguments above are ignored).
            history: the conversation's earlier turns, oldest first: `Answer`s, `rag.followup.Turn`s, question
                strings, or objects with "question" (and "answer": an `Answer.to_dict()`). A question that leans on
                the last of them is read with it (`Answer.read_as` says how); None or [] answers it alone. The
                last `rag.followup.MAX_TURNS` turns are kept; history is never stored.
            read: False answers with the linear sentence model alone, as `reader="none"` would (a fraction of the
                time); a number answers so unless the linear model's confidence reaches it, and reads otherwise: for
                many questions of which few are answered (rag.watching).
            vector: the question's vector, (dimension,) float32, when the caller kept it (`embed_query` of this
                model gave it); None embeds the question. Ignored for a follow-up.

        Raises:
            QuestionError: the question is empty or too long, or the history is malformed.
            FilterError: a filter names an unknown section, outlet or article, or a date cannot be read.

        Example:
            >>> idx.query("What did Ed Balls say about the Budget?", section="politics").citations[0].section
            'politics'
            >>> first = idx.query("How many jobs is ABN Amro cutting?")
            >>> idx.query("How many will go in IT?", history=[first]).read_as
            'How many will go in IT? (ABN Amro)'
        """
        return self.query_ranked(question, k, doc_ids=doc_ids, sources=sources, abstain_threshold=abstain_threshold,
                                 since=since, until=until, section=section, outlet=outlet, sort=sort,
                                 filters=filters, history=history, read=read, vector=vector)[0]

    def query_ranked(
        self,
        question: str,
        k: int | None = None,
        *,
        doc_ids: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        abstain_threshold: float | None = None,
        since: str | None = None,
        until: str | None = None,
        section: str | Sequence[str] | None = None,
        outlet: str | Sequence[str] | None = None,
        sort: str = "relevance",
        filters: Filters | None = None,
        history: Sequence[Turn | Answer | str | dict] | None = None,
        read: bool | float = True,
        vector: np.ndarray | None = None,
    ) -> tuple[Answer, list[Passage]]:
        """`query`'s answer and the whole ranked pool it came from (best first; the answer shows the first k).

        One retrieval and one reading serve both, so an evaluation can judge the answer and the ranking at k > 5
        without asking twice. Arguments as for `query`.
        """
        question = self._check_question(question)
        k = self._k(k)
        sort = _check_sort(sort)
        filters = filters or make_filters(since=since, until=until, section=section, outlet=outlet, doc_ids=doc_ids,
                                          sources=sources)
        followup = self._followup(question, history)
        qvec = vector if vector is not None and followup is None else self._query_vector(question, followup)
        passages, candidates, docs, readings = self._rank(question, qvec, k, filters, followup, read)
        answer = compose_answer(
            question,
            passages,
            candidates,
            docs,
            k=k,
            abstain_threshold=self.settings.abstain_threshold if abstain_threshold is None else abstain_threshold,
            max_sentences=self.settings.max_answer_sentences,
            index_version=self.version,
            idf=self._idf,
            reranker=self.reranker,
            model=self.blend.model if self.blend is not None and readings is not None else None,
            readings=readings,
        )
        if followup is not None:
            answer = replace(answer, read_as=followup.read_as, follows=followup.follows)
        return self._dated(answer, docs, sort), passages

    def search(
        self,
        question: str,
        k: int | None = None,
        *,
        doc_ids: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        section: str | Sequence[str] | None = None,
        outlet: str | Sequence[str] | None = None,
        sort: str = "relevance",
        filters: Filters | None = None,
        history: Sequence[Turn | Answer | str | dict] | None = None,
    ) -> list[Passage]:
        """The k best passages for `question`, best first (or newest first with sort="newest"), without an answer.

        The filter and `history` arguments are those of `query`.
        """
        question = self._check_question(question)
        k = self._k(k)
        sort = _check_sort(sort)
        filters = filters or make_filters(since=since, until=until, section=section, outlet=outlet, doc_ids=doc_ids,
                                          sources=sources)
        followup = self._followup(question, history)
        qvec = self._query_vector(question, followup)
        top = self._rank(question, qvec, k, filters, followup)[0][:k]
        return newest_first(top) if sort == "newest" else top

    def sections(self) -> dict[str, int]:
        """Section -> number of articles, for filter choices."""
        return self.catalog.values("section")

    def outlets(self) -> dict[str, int]:
        """Outlet -> number of articles, for filter choices."""
        return self.catalog.values("outlet")

    def allowed_chunks(self, filters: Filters) -> np.ndarray | None:
        """The chunk ids a filtered search may return (None: no filter); see `rag.filters.allowed_chunks`."""
        return allowed_chunks(self.catalog, filters, self.manifest.get("settings", {}).get("source"))

    def _dated(self, answer: Answer, docs: dict[str, Document], sort: str) -> Answer:
        """Citations with their article's date and section, later quotes newest first; passages sorted if asked."""
        cites = tuple(
            replace(c, date=docs[c.doc_id].date, section=docs[c.doc_id].section, outlet=c.outlet or docs[c.doc_id].outlet)
            if c.doc_id in docs else c
            for c in answer.citations
        )
        answer = order_citations(replace(answer, citations=cites))
        if sort == "newest":
            answer = replace(answer, passages=tuple(newest_first(answer.passages)))
        return answer

    def document(self, doc_id: str) -> Document:
        """The full document (its text is what every offset indexes into)."""
        doc = self.catalog.document(doc_id)
        if doc is None:
            raise KeyError(f"no document {doc_id!r} in {self.index_dir}")
        return doc

    def documents(self) -> list[DocumentInfo]:
        """Metadata of every indexed document (no text), ordered by source."""
        return self.catalog.documents()

    def info(self) -> dict[str, Any]:
        """Model, counts, build time and version of this index."""
        return {
            "index_dir": str(self.index_dir),
            "version": self.version,
            "model": self.manifest.get("model"),
            "dimension": self.manifest.get("dimension"),
            "built_at": self.manifest.get("built_at"),
            "store": self.manifest.get("store", {}),
            "reader": self.settings.reader,
            **self.manifest.get("counts", {}),
        }

    def is_stale(self) -> bool:
        """True when a newer version has been published since this one was opened."""
        try:
            return indexdir.current_version(self.index_dir) != self.version_dir
        except RagError:
            return False

    def close(self) -> None:
        self.catalog.close()
        self.store.close()

    # -- internals --------------------------------------------------------------------------------------------

    def _check_question(self, question: str) -> str:
        return check_question(question, self.settings.max_question_chars)

    def _followup(self, question: str, history: Any) -> FollowUp | None:
        """How `question` leans on the history (None: it is read alone, exactly as without history)."""
        turns = parse_history(history, self.settings.max_question_chars)
        if not turns:
            return None

        def article_text(doc_id: str) -> str | None:
            doc = self.catalog.document(doc_id)
            return doc.text if doc is not None else None

        return read_followup(question, turns, idf=self._idf, article_text=article_text)

    def _query_vector(self, question: str, followup: FollowUp | None) -> np.ndarray:
        """The question's vector; a follow-up's leans toward the previous turn's subject (CARRY_DENSE of it)."""
        qvec = self.embedder.embed_query(question)
        if followup is None:
            return qvec
        # The previous turn's reading was embedded when it was asked: the query cache usually holds it.
        blend = qvec + followup_weights.CARRY_DENSE * self.embedder.embed_query(followup.subject)
        return (blend / (np.linalg.norm(blend) or 1.0)).astype(qvec.dtype, copy=False)

    def _k(self, k: int | None) -> int:
        k = self.settings.k if k is None else int(k)
        if not 1 <= k <= 100:
            raise QuestionError(f"k must be between 1 and 100, got {k}")
        return k

    @property
    def _idf(self):
        return self.lexical.idf_of if self.lexical is not None else None

    def _rank(
        self, question, qvec, k, filters: Filters, followup: FollowUp | None = None, read: bool | float = True
    ) -> tuple[list[Passage], list[Candidate], dict[str, Document], dict[tuple[str, int], Reading] | None]:
        """Retrieve a pool, score every sentence (`rag.ranking`), let the reader re-read the best (`rag.reading`),
        and rank the passages by their best sentence; the passages come back best first, with the readings.

        The filter becomes the ids the store and BM25 may return; a time named in the question nudges the ranking.
        A follow-up retrieves with the previous turn's subject, is read by the reader as `read_as`, and prefers the
        previous answer's articles (`rag.followup`).
        """
        allowed = self.allowed_chunks(filters)
        passages, sentences, vectors, signals, docs = self.pool(question, qvec, k, allowed, followup)
        # The sentence features compare sentences with the question as asked: scoring them against `read_as`
        # (the previous subject's words added) was measured worse (docs/quality.md).
        candidates = score_candidates(question, passages, sentences, vectors, qvec, signals, idf=self._idf)
        if followup is not None:
            # Before the reader picks what to read, so the previous articles' best sentences are read too.
            candidates = prefer_articles(candidates, followup.prefer, followup_weights.PREFER_LINEAR)
        readings = None
        if read is not True and read is not False and candidates:
            # A floor: the reader reads only when the linear model alone is that confident (the answer it would give).
            linear = candidates if followup is None else \
                prefer_articles(candidates, followup.prefer, followup_weights.PREFER_BONUS)
            cued = rank_pool(passages, prefer_cued(linear, docs, time_cue(question)))[1]
            read = any(c.passage < k for c in cued) and \
                load_model().confidence(confidence_features(question, cued, self._idf)) >= float(read)
        if read and self.reader is not None and self.blend is not None and candidates:
            top = self.settings.reader_candidates or self.blend.candidates
            texts = {d: doc.text for d, doc in docs.items()}
            asked = followup.read_as if followup is not None else question
            readings = read_candidates(asked, candidates, sentences, self.reader, texts, top)
            candidates = rescore(candidates, readings, self.blend)
        if followup is not None:
            candidates = prefer_articles(candidates, followup.prefer, followup_weights.PREFER_BONUS)
        candidates = prefer_cued(candidates, docs, time_cue(question))
        ranked, candidates = rank_pool(passages, candidates)
        return ranked, candidates, docs, readings

    def pool(
        self, question: str, qvec: np.ndarray, k: int, allowed: np.ndarray | None = None,
        followup: FollowUp | None = None,
    ) -> tuple[list[Passage], list[list[Sentence]], list[np.ndarray], list[Signals], dict[str, Document]]:
        """The retrieved pool before ranking: passages, their sentences and sentence vectors, retrieval signals, documents.

        The pool is wider than k: the passage holding the best sentence is often not the retriever's first.
        """
        if followup is not None:
            hits = self.retriever.retrieve(question, qvec, max(RANK_POOL, 2 * k), allowed, context=followup.carry,
                                           context_weight=followup_weights.CARRY_LEXICAL)
            hits = self._with_previous_articles(hits, question, qvec, allowed, followup)
        else:
            hits = self.retriever.retrieve(question, qvec, max(RANK_POOL, 2 * k), allowed)
        passages, hits, docs = self._passages(hits)
        sentences, vectors = self._sentences(passages, docs)
        hybrid = isinstance(self.retriever, HybridRetriever)
        signals = []
        for n, h in enumerate(hits):
            dense = h.dense if h.dense == h.dense else 0.0
            # Only the hybrid score is on the scale the model was fitted on; a one-sided retriever gets its equivalent.
            fused = h.score if hybrid else 0.5 * dense + 0.5 * h.lexical_share
            signals.append(Signals(fused, dense, h.lexical_share, n, h.dense_rank, h.lexical_rank))
        return passages, sentences, vectors, signals, docs

    def _with_previous_articles(self, hits: list[Hit], question: str, qvec: np.ndarray, allowed: np.ndarray | None,
                                followup: FollowUp) -> list[Hit]:
        """The pool plus the best passages of the previous answer's articles that it lacks.

        A follow-up's few words may not retrieve the article it is about; its passages join the pool with ranks
        of -1 (the wide search did not find them) and scores on the wide search's scale.
        """
        rows = self.catalog.chunks_of(list(followup.prefer)) if followup.prefer else []
        if not rows:
            return hits
        mine = np.array([r.id for r in rows], dtype=np.int64)
        if allowed is not None:
            mine = np.intersect1d(mine, allowed)
        seen = {h.chunk_id for h in hits}
        extra = [h for h in self.retriever.retrieve(question, qvec, followup_weights.PREVIOUS_PASSAGES, mine,
                                                    context=followup.carry,
                                                    context_weight=followup_weights.CARRY_LEXICAL)
                 if h.chunk_id not in seen]
        if not extra:
            return hits
        top = max((h.lexical for h in hits if h.lexical == h.lexical), default=0.0) or 1.0
        out = list(hits)
        for h in extra:
            dense = h.dense if h.dense == h.dense else 0.0
            lexical = h.lexical if h.lexical == h.lexical else 0.0
            share = min(1.0, lexical / top)
            out.append(Hit(h.chunk_id, 0.5 * dense + 0.5 * share, h.dense, h.lexical, share, -1, -1))
        return out

    def _passages(self, hits: list[Hit]) -> tuple[list[Passage], list[Hit], dict[str, Document]]:
        """Distinct passages with their hits; exact duplicates (syndicated copies) fold into `also_in`."""
        rows = self.catalog.chunks_by_ids([h.chunk_id for h in hits])
        docs: dict[str, Document] = {}
        passages: list[Passage] = []
        kept: list[Hit] = []
        by_text: dict[str, int] = {}
        for h in hits:
            row = rows.get(h.chunk_id)
            if row is None:
                continue
            doc = docs.get(row.doc_id) or self.catalog.document(row.doc_id)
            if doc is None:
                continue
            docs[doc.id] = doc
            text = doc.text[row.start : row.end]
            key = hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=8).hexdigest()
            if key in by_text:
                i = by_text[key]
                p = passages[i]
                if doc.id != p.doc_id and doc.id not in p.also_in:
                    passages[i] = Passage(**{**p.__dict__, "also_in": p.also_in + (doc.id,)})
                continue
            by_text[key] = len(passages)
            passages.append(Passage(doc.id, doc.title, doc.source, row.start, row.end, text, round(h.score, 6), row.id,
                                    date=doc.date, section=doc.section, outlet=doc.outlet))
            kept.append(h)
        return passages, kept, docs

    def _sentences(self, passages: list[Passage], docs: dict[str, Document]) -> tuple[list[list[Sentence]], list[np.ndarray]]:
        all_sents: list[list[Sentence]] = []
        all_vecs: list[np.ndarray] = []
        by_chunk = self.catalog.sentences_of_chunks([p.chunk_id for p in passages])
        for p in passages:
            rows = by_chunk.get(p.chunk_id, [])
            doc = docs[p.doc_id]
            # A sentence cut by the chunk boundary is quoted whole: the citation still points into the document.
            all_sents.append([Sentence(r.doc_id, r.start, r.end, doc.text[r.start : r.end]) for r in rows])
            idx = np.array([r.row for r in rows], dtype=np.int64)
            all_vecs.append(np.asarray(self.sentence_matrix[idx], dtype=np.float32) if len(idx) else np.zeros((0, 1), np.float32))
        return all_sents, all_vecs


def check_question(question: str, max_chars: int) -> str:
    """The question with control characters blanked and outer spaces removed.

    Raises:
        QuestionError: not text, empty, or longer than `max_chars` (the `max_question_chars` setting).
    """
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in question).strip()
    if not cleaned:
        raise QuestionError("the question is empty; type a question about the indexed articles")
    if len(cleaned) > max_chars:
        raise QuestionError(
            f"the question is {len(cleaned):,} characters long; the limit is {max_chars:,} (max_question_chars)"
        )
    return cleaned


def _check_sort(sort: str | None) -> str:
    sort = (sort or "relevance").strip().lower()
    if sort not in SORTS:
        raise FilterError(f"unknown sort {sort!r}; use one of: {', '.join(SORTS)}")
    return sort


def open_index(index_dir: str | Path | None = None, *, settings: Settings | None = None, embedder: Embedder | None = None,
               verify: bool = True) -> Index:
    """Open the live version of an index folder.

    Args:
        index_dir: the folder (default: settings.index_dir).
        settings: query-time settings (k, threshold...); index settings always come from the manifest.
        embedder: a ready embedder of the same model (default: the manifest's model, loaded once).
        verify: check every file's checksum before reading it (default); False checks sizes only, which is
            faster on very large indexes but lets a same-size damaged file reach FAISS, SQLite and NumPy.

    Raises:
        IndexNotFoundError, IndexMismatchError, IndexCorruptError: with the fix in the message.
    """
    settings = settings or Settings.load()
    folder = Path(settings.index_dir if index_dir is None else index_dir)
    for attempt in range(3):
        version = indexdir.require_index(folder)
        try:
            return Index(folder, embedder=embedder, settings=settings, verify=verify, _version=version)
        except (IndexCorruptError, FileNotFoundError) as exc:
            # A build may have published a newer version and removed this one while it was being opened.
            if attempt == 2 or indexdir.current_version(folder) == version:
                if isinstance(exc, FileNotFoundError):
                    raise IndexCorruptError(f"{exc.filename} is missing; run `rag rebuild-index`") from None
                raise
    raise AssertionError("unreachable")


_OPEN: dict[str, Index] = {}
_OPEN_LOCK = threading.Lock()


def query(question: str, index_dir: str | Path | None = None, k: int | None = None, **kwargs: Any) -> Answer:
    """Answer a question from an index folder, keeping the opened index for the next call.

    A newer build of the same folder is picked up automatically. Keyword arguments are those of `Index.query`
    (filters, `history`).

    Example:
        >>> from rag import query
        >>> first = query("what would lift the pause?", index_dir="index/")
        >>> query("Who said so?", index_dir="index/", history=[first]).read_as
    """
    settings = Settings.load()
    key = str(Path(settings.index_dir if index_dir is None else index_dir).resolve())
    with _OPEN_LOCK:
        idx = _OPEN.get(key)
        if idx is None or idx.is_stale():
            idx = _OPEN[key] = open_index(key, settings=settings)
    return idx.query(question, k, **kwargs)
