"""Vector store Protocol and the FAISS store (FAISS's own file format; no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import IndexCorruptError, IndexMismatchError

__all__ = ["VectorStore", "FaissStore", "open_store", "create_store"]


@runtime_checkable
class VectorStore(Protocol):
    """Inner-product search over unit vectors keyed by int64 ids.

    Every implementation passes tests/test_store_contract.py.
    """

    dimension: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace rows. ids: int64 (n,); vectors: float32 (n, dimension)."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Delete rows by id; returns how many existed."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product.

        Args:
            queries: float32 (nq, dimension).
            k: results per query.
            allowed_ids: restrict results to these ids (None: all).

        Returns:
            (scores, ids), each (nq, k), best first; missing results are score -inf and id -1.
        """
        ...

    def __len__(self) -> int: ...

    def save(self, folder: Path) -> list[str]:
        """Write the store's files into `folder`; returns their names."""
        ...

    def params(self) -> dict[str, Any]:
        """Parameters recorded in the manifest, enough for `open_store` to reopen it."""
        ...

    def close(self) -> None: ...


class FaissStore:
    """FAISS inner-product index wrapped in an id map (exact `IndexFlatIP`)."""

    kind = "faiss"
    FILE = "vectors.faiss"

    def __init__(self, dimension: int, index: Any | None = None):
        import faiss

        self.dimension = int(dimension)
        self._faiss = faiss
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise IndexMismatchError(
                f"vectors of dimension {vectors.shape[-1]} cannot go into a {self.dimension}-dimension store"
            )
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(ids) == 0:
            return
        self.remove(ids)
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0 or self.index.ntotal == 0:
            return 0
        return int(self.index.remove_ids(self._faiss.IDSelectorBatch(ids)))

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dimension:
            raise IndexMismatchError(
                f"query of dimension {queries.shape[1]} against a {self.dimension}-dimension store; "
                "the index was built with another model: run `rag rebuild-index`"
            )
        nq = len(queries)
        if self.index.ntotal == 0 or k <= 0:
            return np.full((nq, max(k, 0)), -np.inf, dtype=np.float32), np.full((nq, max(k, 0)), -1, dtype=np.int64)
        params = None
        if allowed_ids is not None:
            allowed = np.ascontiguousarray(allowed_ids, dtype=np.int64)
            if len(allowed) == 0:
                return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
            params = self._faiss.SearchParameters(sel=self._faiss.IDSelectorBatch(allowed))
        scores, ids = self.index.search(queries, k, params=params)
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return scores, ids.astype(np.int64)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def save(self, folder: Path) -> list[str]:
        self._faiss.write_index(self.index, str(Path(folder) / self.FILE))
        return [self.FILE]

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "dimension": self.dimension, "factory": "IDMap2,Flat", "metric": "inner_product"}

    def close(self) -> None:
        pass

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any]) -> "FaissStore":
        import faiss

        path = Path(folder) / cls.FILE
        if not path.is_file():
            raise IndexCorruptError(f"{path} is missing; run `rag rebuild-index`")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexCorruptError(f"{path} cannot be read ({str(exc).splitlines()[0][:120]}); run `rag rebuild-index`") from None
        if index.d != int(params.get("dimension", index.d)):
            raise IndexMismatchError(f"{path} has dimension {index.d}, manifest says {params['dimension']}; run `rag rebuild-index`")
        return cls(index.d, index)


def create_store(kind: str, dimension: int, settings: Any = None, folder: Path | None = None) -> VectorStore:
    """A new empty store of the given kind."""
    if kind == "faiss":
        return FaissStore(dimension)
    if kind == "milvus":
        from .stores.milvus import MilvusStore

        return MilvusStore.create(dimension, settings=settings, folder=folder)
    raise IndexMismatchError(f"unknown vector store {kind!r}")


def open_store(folder: Path, params: dict[str, Any]) -> VectorStore:
    """Reopen the store a manifest describes."""
    kind = params.get("kind", "faiss")
    if kind == "faiss":
        return FaissStore.load(folder, params)
    if kind == "milvus":
        from .stores.milvus import MilvusStore

        return MilvusStore.load(folder, params)
    raise IndexMismatchError(f"the index uses vector store {kind!r}, unknown to this version; run `rag rebuild-index`")
