"""Which store a kind names: a new empty one for a build, or the one a version's manifest describes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.errors import IndexMismatchError
from rag.stores.base import VectorStore

__all__ = ["create_store", "open_store"]


def create_store(
    kind: str, dimension: int, settings: Any = None, folder: Path | None = None, live: dict[str, Any] | None = None
) -> VectorStore:
    """A new empty store of the given kind (`live`: the store entry of the index folder's live manifest, if any)."""
    if kind == "faiss":
        from rag.stores.faiss import FaissStore

        return FaissStore(dimension)
    if kind == "milvus":
        from rag.stores.milvus import MilvusStore

        return MilvusStore.create(dimension, settings=settings, folder=folder, live=live)
    raise IndexMismatchError(f"unknown vector store {kind!r}")


def open_store(folder: Path, params: dict[str, Any], settings: Any = None) -> VectorStore:
    """Reopen the store a manifest describes (`settings` give an external store its time limits)."""
    kind = params.get("kind", "faiss")
    if kind == "faiss":
        from rag.stores.faiss import FaissStore

        return FaissStore.load(folder, params)
    if kind == "milvus":
        from rag.stores.milvus import MilvusStore

        return MilvusStore.load(folder, params, settings)
    raise IndexMismatchError(f"the index uses vector store {kind!r}, unknown to this version; run `rag rebuild-index`")
