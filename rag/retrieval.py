"""Retrievers: question -> ranked chunk ids with scores (dense vectors, BM25, or both fused)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from .lexical import LexicalIndex
from .store import VectorStore

__all__ = [
    "Hit",
    "Retriever",
    "DenseRetriever",
    "LexicalRetriever",
    "HybridRetriever",
    "SentenceBoostRetriever",
    "make_retriever",
    "fuse",
]

# Candidates fetched from each side before fusing: enough that a passage ranked well by one side is seen by the other.
_POOL = 50


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk: `score` is comparable within one result list only; `dense` is its cosine, `lexical` its BM25."""

    chunk_id: int
    score: float
    dense: float = float("nan")
    lexical: float = float("nan")


@runtime_checkable
class Retriever(Protocol):
    def retrieve(self, question: str, query_vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[Hit]:
        """Return up to k hits, best first."""
        ...


class DenseRetriever:
    """Nearest chunks by cosine similarity of unit vectors."""

    def __init__(self, store: VectorStore):
        self.store = store

    def retrieve(self, question: str, query_vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[Hit]:
        scores, ids = self.store.search(query_vector[None, :], k, allowed_ids)
        return [Hit(int(i), float(s), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0]


class LexicalRetriever:
    """Chunks ranked by BM25 over stemmed content words."""

    def __init__(self, lexical: LexicalIndex):
        self.lexical = lexical

    def retrieve(self, question: str, query_vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[Hit]:
        scores, ids = self.lexical.search(question, k, allowed_ids)
        return [Hit(int(i), float(s), lexical=float(s)) for s, i in zip(scores, ids)]


def fuse(dense: dict[int, float], lexical: dict[int, float], weight: float) -> dict[int, float]:
    """Normalized-score fusion: weight * cosine + (1 - weight) * BM25 / best BM25.

    A chunk missing from one side takes that side's lowest retrieved value (it ranked below all of them).

    Args:
        dense: chunk id -> cosine, for the dense candidates.
        lexical: chunk id -> BM25 score, for the lexical candidates.
        weight: share of the dense side, in [0, 1].

    Returns:
        chunk id -> fused score (higher is better).
    """
    top = max(lexical.values(), default=0.0)
    lex = {i: s / top for i, s in lexical.items()} if top > 0 else {}
    d_floor = min(dense.values(), default=0.0)
    l_floor = min(lex.values(), default=0.0)
    return {
        i: weight * dense.get(i, d_floor) + (1.0 - weight) * lex.get(i, l_floor) for i in set(dense) | set(lex)
    }


class HybridRetriever:
    """Dense and BM25 candidates fused by normalized score (see `fuse`); every hit carries both raw scores.

    Args:
        store, lexical: the two indexes of one version.
        weight: share of the dense side; 0.5 was measured best on half of the SQuAD 2.0 dev articles (docs/quality.md).
    """

    def __init__(self, store: VectorStore, lexical: LexicalIndex, weight: float = 0.5):
        self.store = store
        self.lexical = lexical
        self.weight = weight

    def retrieve(self, question: str, query_vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[Hit]:
        pool = max(_POOL, 2 * k)
        d_scores, d_ids = self.store.search(query_vector[None, :], pool, allowed_ids)
        dense = {int(i): float(s) for s, i in zip(d_scores[0], d_ids[0]) if i >= 0}
        l_scores, l_ids = self.lexical.search(question, pool, allowed_ids)
        lexical = {int(i): float(s) for s, i in zip(l_scores, l_ids)}
        fused = fuse(dense, lexical, self.weight)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        d_floor = min(dense.values(), default=0.0)
        return [Hit(i, s, dense.get(i, d_floor), lexical.get(i, 0.0)) for i, s in best]


def make_retriever(kind: str, store: VectorStore, lexical: LexicalIndex | None, weight: float = 0.5) -> Retriever:
    """The retriever a setting names; without a lexical index (an index built before it existed) dense is used."""
    if kind == "dense" or lexical is None:
        return DenseRetriever(store)
    if kind == "lexical":
        return LexicalRetriever(lexical)
    return HybridRetriever(store, lexical, weight)


class SentenceBoostRetriever:
    """Re-rank another retriever's candidates by adding `weight` times the cosine of each passage's best sentence.

    Questions usually target one sentence; a passage holding that sentence among unrelated ones otherwise loses
    to a passage that is loosely on topic throughout. Sentence vectors are computed at build time, so this costs
    one small matrix product per question.

    Args:
        base: the retriever whose candidates are re-ranked.
        sentence_rows: chunk ids -> {chunk id: rows of its sentences in `matrix`}.
        matrix: (n_sentences, dim) unit sentence vectors (float16 or float32, may be memory-mapped).
        weight: 1.0 was measured best on the fit half of the SQuAD 2.0 dev articles (docs/quality.md).
        pool: candidates taken from `base` before re-ranking.
    """

    def __init__(
        self,
        base: Retriever,
        sentence_rows: Callable[[Sequence[int]], dict[int, np.ndarray]],
        matrix: np.ndarray,
        weight: float = 1.0,
        pool: int = 30,
    ):
        self.base = base
        self.sentence_rows = sentence_rows
        self.matrix = matrix
        self.weight = weight
        self.pool = pool

    def retrieve(self, question: str, query_vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[Hit]:
        hits = self.base.retrieve(question, query_vector, max(self.pool, k), allowed_ids)
        rows = self.sentence_rows([h.chunk_id for h in hits])
        boosted = []
        for h in hits:
            r = rows.get(h.chunk_id)
            best = float((np.asarray(self.matrix[r], dtype=np.float32) @ query_vector).max()) if r is not None and len(r) else 0.0
            boosted.append(Hit(h.chunk_id, h.score + self.weight * best, h.dense, h.lexical))
        boosted.sort(key=lambda h: (-h.score, h.chunk_id))
        return boosted[:k]
