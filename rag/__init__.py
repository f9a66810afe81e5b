"""Local semantic search and extractive question answering over article collections.

Example:
    >>> from rag import build_index, open_index, query
    >>> build_index("seeds/", "index/")
    >>> query("what would lift the pause?", index_dir="index/").text
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "build_index",
    "open_index",
    "query",
    "Index",
    "Settings",
    "Answer",
    "Citation",
    "Passage",
    "Document",
    "Chunk",
    "BuildStats",
    "RagError",
    "Filters",
    "make_filters",
    "__version__",
]
from rag.config import VERSION as __version__

_LAZY = {
    "build_index": "index.build",
    "open_index": "answer.engine",
    "query": "answer.engine",
    "Index": "answer.engine",
    "Settings": "config",
    "Answer": "types",
    "Citation": "types",
    "Passage": "types",
    "Document": "types",
    "Chunk": "types",
    "BuildStats": "types",
    "RagError": "errors",
    "Filters": "answer.filters",
    "make_filters": "answer.filters",
}

if TYPE_CHECKING:  # pragma: no cover
    from rag.answer.engine import Index, open_index, query
    from rag.answer.filters import Filters, make_filters
    from rag.config import Settings
    from rag.errors import RagError
    from rag.index.build import build_index
    from rag.types import Answer, BuildStats, Chunk, Citation, Document, Passage


def __getattr__(name: str) -> Any:
    # Imports stay lazy so `rag --help` and other commands that need no model start fast.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
