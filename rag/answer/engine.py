"""The query path: open_index(), Index.query()/search(), query(). A question in, a quoted, cited Answer out."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer import followup as followup_weights
from rag.answer.compose import compose_answer, load_reranker
from rag.answer.filters import SORTS, Filters, allowed_chunks, make_filters
from rag.answer.followup import FollowUp, Turn, parse_history, prefer_articles, read_followup
from rag.answer.ranking import Candidate, Signals, confidence_features, load_model, rank_pool, score_candidates
from rag.answer.reader import Reading, load_reader
from rag.answer.reading import load_blend, read_candidates, rescore
from rag.answer.recency import newest_first, order_citations, prefer_cued, time_cue
from rag.answer.retrieval import Hit, HybridRetriever, Retriever, make_retriever
from rag.config import Settings
from rag.errors import FilterError, IndexCorruptError, QuestionError
from rag.index import indexdir
from rag.index.embedding import Embedder
from rag.index.version import IndexVersion
from rag.types import Answer, Document, Passage, Sentence

__all__ = ["open_index", "query", "check_question", "Index"]

# Passages retrieved before ranking by best sentence (30 and 40 measured alike on the SQuAD 2.0 dev fit half).
RANK_POOL = 30


class Index(IndexVersion):
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
    ):
        super().__init__(index_dir, embedder=embedder, settings=settings, verify=verify, _version=_version)
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
            history: the conversation's earlier turns, oldest first: `Answer`s, `rag.answer.followup.Turn`s, question
                strings, or objects with "question" (and "answer": an `Answer.to_dict()`). A question that leans on
                the last of them is read with it (`Answer.read_as` says how); None or [] answers it alone. The
                last `rag.answer.followup.MAX_TURNS` turns are kept; history is never stored.
            read: False answers with the linear sentence model alone, as `reader="none"` would (a fraction of the
                time); a number answers so unless the linear model's confidence reaches it, and reads otherwise
                (the calibrated number of windows, never the extra ones read when unsure): for many questions of
                which few are answered (rag.watch.asking).
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
        return self.query_ranked(
            question,
            k,
            doc_ids=doc_ids,
            sources=sources,
            abstain_threshold=abstain_threshold,
            since=since,
            until=until,
            section=section,
            outlet=outlet,
            sort=sort,
            filters=filters,
            history=history,
            read=read,
            vector=vector,
        )[0]

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
        filters = filters or make_filters(
            since=since, until=until, section=section, outlet=outlet, doc_ids=doc_ids, sources=sources
        )
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
        filters = filters or make_filters(
            since=since, until=until, section=section, outlet=outlet, doc_ids=doc_ids, sources=sources
        )
        followup = self._followup(question, history)
        qvec = self._query_vector(question, followup)
        top = self._rank(question, qvec, k, filters, followup)[0][:k]
        return newest_first(top) if sort == "newest" else top

    def allowed_chunks(self, filters: Filters) -> np.ndarray | None:
        """The chunk ids a filtered search may return (None: no filter); see `rag.answer.filters.allowed_chunks`."""
        return allowed_chunks(self.catalog, filters, self.manifest.get("settings", {}).get("source"))

    def _dated(self, answer: Answer, docs: dict[str, Document], sort: str) -> Answer:
        """Citations with their article's date and section, later quotes newest first; passages sorted if asked."""
        cites = tuple(
            replace(
                c, date=docs[c.doc_id].date, section=docs[c.doc_id].section, outlet=c.outlet or docs[c.doc_id].outlet
            )
            if c.doc_id in docs
            else c
            for c in answer.citations
        )
        answer = order_citations(replace(answer, citations=cites))
        if sort == "newest":
            answer = replace(answer, passages=tuple(newest_first(answer.passages)))
        return answer

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
        self,
        question: str,
        qvec: np.ndarray,
        k: int,
        filters: Filters,
        followup: FollowUp | None = None,
        read: bool | float = True,
    ) -> tuple[list[Passage], list[Candidate], dict[str, Document], dict[tuple[str, int], Reading] | None]:
        """Retrieve a pool, score every sentence (`rag.answer.ranking`), let the reader re-read the best (`rag.answer.reading`),
        and rank the passages by their best sentence; the passages come back best first, with the readings.

        The filter becomes the ids the store and BM25 may return; a time named in the question nudges the ranking.
        A follow-up retrieves with the previous turn's subject, is read by the reader as `read_as`, and prefers the
        previous answer's articles (`rag.answer.followup`).
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
        screening = not isinstance(read, bool)
        if screening and candidates:
            # A floor: the reader reads only when the linear model alone is that confident (the answer it would give).
            linear = (
                candidates
                if followup is None
                else prefer_articles(candidates, followup.prefer, followup_weights.PREFER_BONUS)
            )
            cued = rank_pool(passages, prefer_cued(linear, docs, time_cue(question)))[1]
            read = any(c.passage < k for c in cued) and load_model().confidence(
                confidence_features(question, cued, self._idf)
            ) >= float(read)
        if read and self.reader is not None and self.blend is not None and candidates:
            top = self.settings.reader_candidates or self.blend.candidates
            # A count set in the settings is read as set; the calibration's "read more when unsure" is its own. A
            # screening read (`read` a number: many questions, few answered) reads the calibrated count only, since
            # most of its questions are ones the reader is unsure of and the extra windows would double its cost.
            more = 0 if self.settings.reader_candidates or screening else self.blend.more
            texts = {d: doc.text for d, doc in docs.items()}
            asked = followup.read_as if followup is not None else question
            readings = read_candidates(
                asked, candidates, sentences, self.reader, texts, top, more=more, more_below=self.blend.more_below
            )
            candidates = rescore(candidates, readings, self.blend)
        if followup is not None:
            candidates = prefer_articles(candidates, followup.prefer, followup_weights.PREFER_BONUS)
        candidates = prefer_cued(candidates, docs, time_cue(question))
        ranked, candidates = rank_pool(passages, candidates)
        return ranked, candidates, docs, readings

    def pool(
        self,
        question: str,
        qvec: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        followup: FollowUp | None = None,
    ) -> tuple[list[Passage], list[list[Sentence]], list[np.ndarray], list[Signals], dict[str, Document]]:
        """The retrieved pool before ranking: passages, their sentences and sentence vectors, retrieval signals, documents.

        The pool is wider than k: the passage holding the best sentence is often not the retriever's first.
        """
        if followup is not None:
            hits = self.retriever.retrieve(
                question,
                qvec,
                max(RANK_POOL, 2 * k),
                allowed,
                context=followup.carry,
                context_weight=followup_weights.CARRY_LEXICAL,
            )
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

    def _with_previous_articles(
        self, hits: list[Hit], question: str, qvec: np.ndarray, allowed: np.ndarray | None, followup: FollowUp
    ) -> list[Hit]:
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
        extra = [
            h
            for h in self.retriever.retrieve(
                question,
                qvec,
                followup_weights.PREVIOUS_PASSAGES,
                mine,
                context=followup.carry,
                context_weight=followup_weights.CARRY_LEXICAL,
            )
            if h.chunk_id not in seen
        ]
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
            passages.append(
                Passage(
                    doc.id,
                    doc.title,
                    doc.source,
                    row.start,
                    row.end,
                    text,
                    round(h.score, 6),
                    row.id,
                    date=doc.date,
                    section=doc.section,
                    outlet=doc.outlet,
                )
            )
            kept.append(h)
        return passages, kept, docs

    def _sentences(
        self, passages: list[Passage], docs: dict[str, Document]
    ) -> tuple[list[list[Sentence]], list[np.ndarray]]:
        all_sents: list[list[Sentence]] = []
        all_vecs: list[np.ndarray] = []
        by_chunk = self.catalog.sentences_of_chunks([p.chunk_id for p in passages])
        for p in passages:
            rows = by_chunk.get(p.chunk_id, [])
            doc = docs[p.doc_id]
            # A sentence cut by the chunk boundary is quoted whole: the citation still points into the document.
            all_sents.append([Sentence(r.doc_id, r.start, r.end, doc.text[r.start : r.end]) for r in rows])
            idx = np.array([r.row for r in rows], dtype=np.int64)
            all_vecs.append(
                np.asarray(self.sentence_matrix[idx], dtype=np.float32) if len(idx) else np.zeros((0, 1), np.float32)
            )
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


def open_index(
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    verify: bool = True,
) -> Index:
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
