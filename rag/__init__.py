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
]
__version__ = "0.1.0"

_LAZY = {
    "build_index": "pipeline",
    "open_index": "pipeline",
    "query": "pipeline",
    "Index": "pipeline",
    "Settings": "config",
    "Answer": "types",
    "Citation": "types",
    "Passage": "types",
    "Document": "types",
    "Chunk": "types",
    "BuildStats": "types",
    "RagError": "errors",
    "Filters": "filters",
    "make_filters": "filters",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import Settings
    from .errors import RagError
    from .filters import Filters, make_filters
    from .pipeline import Index, build_index, open_index, query
    from .types import Answer, BuildStats, Chunk, Citation, Document, Passage


def __getattr__(name: str) -> Any:
    # Imports stay lazy so `rag --help` and other commands that need no model start fast.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
