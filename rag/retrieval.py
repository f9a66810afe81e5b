"""Retrievers: question -> ranked chunk ids with scores (dense vectors; lexical and hybrid plug in here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .store import VectorStore

__all__ = ["Hit", "Retriever", "DenseRetriever"]


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk: `score` is comparable within one result list only; `dense` is its cosine."""

    chunk_id: int
    score: float
    dense: float = float("nan")


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
