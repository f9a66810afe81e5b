"""Retrievers: question -> ranked chunk ids with scores (dense vectors, BM25, or both fused).

Their results are a pool: `rag.answer.ranking` re-orders it by each passage's best sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from rag.index.lexical import LexicalIndex
from rag.stores import VectorStore

__all__ = [
    "Hit",
    "Retriever",
    "DenseRetriever",
    "LexicalRetriever",
    "HybridRetriever",
    "make_retriever",
    "fuse",
]

# Candidates fetched from each side before fusing: enough that a passage ranked well by one side is seen by the other.
_POOL = 50


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk: `score` is comparable within one result list only; `dense` is its cosine, `lexical` its BM25.

    `lexical_share` is its BM25 over the question's best BM25; `dense_rank` and `lexical_rank` its position among
    each side's candidates (-1: that side did not find it).
    """

    chunk_id: int
    score: float
    dense: float = float("nan")
    lexical: float = float("nan")
    lexical_share: float = 0.0
    dense_rank: int = -1
    lexical_rank: int = -1


@runtime_checkable
class Retriever(Protocol):
    def retrieve(
        self,
        question: str,
        query_vector: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        *,
        context: str = "",
        context_weight: float = 0.0,
    ) -> list[Hit]:
        """Return up to k hits, best first.

        `context` is a conversation's earlier subject: its words count `context_weight` times a question word on
        the lexical side (the caller blends it into `query_vector` for the dense side).
        """
        ...


class DenseRetriever:
    """Nearest chunks by cosine similarity of unit vectors."""

    def __init__(self, store: VectorStore):
        self.store = store

    def retrieve(
        self,
        question: str,
        query_vector: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        *,
        context: str = "",
        context_weight: float = 0.0,
    ) -> list[Hit]:
        scores, ids = self.store.search(query_vector[None, :], k, allowed_ids)
        return [
            Hit(int(i), float(s), float(s), dense_rank=r) for r, (s, i) in enumerate(zip(scores[0], ids[0])) if i >= 0
        ]


class LexicalRetriever:
    """Chunks ranked by BM25 over stemmed content words."""

    def __init__(self, lexical: LexicalIndex):
        self.lexical = lexical

    def retrieve(
        self,
        question: str,
        query_vector: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        *,
        context: str = "",
        context_weight: float = 0.0,
    ) -> list[Hit]:
        scores, ids = self.lexical.search(question, k, allowed_ids, context=context, context_weight=context_weight)
        top = float(scores[0]) if len(scores) else 1.0
        return [
            Hit(int(i), float(s), lexical=float(s), lexical_share=float(s) / top, lexical_rank=r)
            for r, (s, i) in enumerate(zip(scores, ids))
        ]


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
    return {i: weight * dense.get(i, d_floor) + (1.0 - weight) * lex.get(i, l_floor) for i in set(dense) | set(lex)}


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

    def retrieve(
        self,
        question: str,
        query_vector: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        *,
        context: str = "",
        context_weight: float = 0.0,
    ) -> list[Hit]:
        pool = max(_POOL, 2 * k)
        d_scores, d_ids = self.store.search(query_vector[None, :], pool, allowed_ids)
        dense = {int(i): float(s) for s, i in zip(d_scores[0], d_ids[0]) if i >= 0}
        l_scores, l_ids = self.lexical.search(
            question, pool, allowed_ids, context=context, context_weight=context_weight
        )
        lexical = {int(i): float(s) for s, i in zip(l_scores, l_ids)}
        fused = fuse(dense, lexical, self.weight)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        d_floor = min(dense.values(), default=0.0)
        top = max(lexical.values(), default=0.0) or 1.0
        d_rank = {i: r for r, i in enumerate(dense)}
        l_rank = {i: r for r, i in enumerate(lexical)}
        return [
            Hit(
                i,
                s,
                dense.get(i, d_floor),
                lexical.get(i, 0.0),
                lexical.get(i, 0.0) / top,
                d_rank.get(i, -1),
                l_rank.get(i, -1),
            )
            for i, s in best
        ]


def make_retriever(kind: str, store: VectorStore, lexical: LexicalIndex | None, weight: float = 0.5) -> Retriever:
    """The retriever a setting names; without a lexical index (an index built before it existed) dense is used."""
    if kind == "dense" or lexical is None:
        return DenseRetriever(store)
    if kind == "lexical":
        return LexicalRetriever(lexical)
    return HybridRetriever(store, lexical, weight)
