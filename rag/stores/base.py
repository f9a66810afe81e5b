"""The vector-store contract: the `VectorStore` Protocol every backend implements, and the chunk metadata that
metadata-aware backends (Milvus) keep beside each vector so that filters run inside the engine.

tests/stores/test_store_contract.py runs the same suite against every implementation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeGuard, runtime_checkable

import numpy as np

__all__ = ["VectorStore", "MetadataStore", "keeps_metadata", "ChunkMeta", "ChunkFilter", "date_key"]


@runtime_checkable
class VectorStore(Protocol):
    """Inner-product search over unit vectors keyed by int64 ids.

    Every implementation passes tests/stores/test_store_contract.py.
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


class MetadataStore(VectorStore, Protocol):
    """A VectorStore that keeps each chunk's metadata beside its vector, so that filters run inside its engine
    (Milvus). Such a store says so with a true `supports_metadata` (see `keeps_metadata`)."""

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[ChunkMeta] | None = None) -> None:
        """Insert or replace rows, with one ChunkMeta per row (None: the rows match no metadata filter)."""
        ...


def keeps_metadata(store: VectorStore) -> TypeGuard[MetadataStore]:
    """Whether `store` keeps chunk metadata (its `supports_metadata` is true)."""
    return bool(getattr(store, "supports_metadata", False))


@dataclass(frozen=True)
class ChunkMeta:
    """What a metadata-aware store keeps beside a chunk's vector (the catalog stays the source of truth).

    Attributes:
        doc_id: the document the chunk belongs to.
        source: the document's source path.
        date: the document's date as written in the article ("2024-03-05", "2024-03-05T10:00:00Z"...), or None.
    """

    doc_id: str
    source: str
    date: str | None = None


@dataclass(frozen=True)
class ChunkFilter:
    """Restrict a search to chunks whose metadata match every given condition (None: no condition).

    Attributes:
        doc_ids: chunks of these documents only.
        sources: chunks of documents from these source paths only.
        date_from, date_to: inclusive bounds as "YYYY-MM-DD"; chunks of undated documents never match a date bound.
    """

    doc_ids: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    date_from: str | None = None
    date_to: str | None = None

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and date_key(value) == 0:
                raise ValueError(f"{name} must be a date written YYYY-MM-DD, got {value!r}")
        for name in ("doc_ids", "sources"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))


_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")


def date_key(date: str | None) -> int:
    """A sortable integer YYYYMMDD for a date string starting with YYYY-MM-DD; 0 when absent or unreadable.

    Example:
        >>> date_key("2024-03-05T10:00:00Z")
        20240305
    """
    m = _DATE.match(date or "")
    if not m:
        return 0
    year, month, day = (int(g) for g in m.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return 0
    return year * 10000 + month * 100 + day
