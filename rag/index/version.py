"""An opened index version, read-only: its manifest (checked), catalog, vector store, sentence vectors and BM25
index. The build reads the live version through it to reuse vectors; `rag.answer.engine.Index` adds the query path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import IndexMismatchError, RagError
from rag.index import indexdir
from rag.index.catalog import Catalog, DocumentInfo
from rag.index.embedding import Embedder, make_embedder
from rag.index.lexical import FOLDER as LEXICAL_FOLDER
from rag.index.lexical import LexicalIndex
from rag.index.sentvecs import FILE as SENTENCE_VECTORS
from rag.index.sentvecs import SentenceVectors
from rag.stores import VectorStore, open_store
from rag.types import Document

__all__ = ["IndexVersion"]


class IndexVersion:
    """One published version of an index folder, opened for reading (any thread).

    Args:
        index_dir: the index folder.
        embedder: a ready embedder of the manifest's model (default: loaded once per process).
        settings: query-time settings; the index's own settings always come from the manifest.
        verify: check every file's checksum (False: sizes only).
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
            from rag.errors import IndexCorruptError

            raise IndexCorruptError(f"{problems[0]}; run `rag rebuild-index`")
        # Which reader reads is a query-time choice (this process's settings), never the build's.
        # So is the device: an index built on a GPU is read on a laptop.
        saved = Settings.from_dict(
            {k: v for k, v in self.manifest.get("settings", {}).items() if not k.startswith("reader") and k != "device"}
        )
        self.settings = settings.with_(**saved.index_signature()) if settings else saved
        self.embedder = embedder or make_embedder(saved.model, self.settings.backend, self.settings.device)
        if embedder is not None and getattr(embedder, "name", saved.model) != saved.model:
            raise IndexMismatchError(
                f"{self.index_dir} was built with model {saved.model!r}, not {embedder.name!r}; "
                "run `rag rebuild-index` to rebuild it with the new model"
            )
        self.catalog = Catalog(self.version_dir)
        self.store: VectorStore = open_store(
            self.version_dir, self.manifest.get("store", {"kind": "faiss"}), self.settings
        )
        if self.store.dimension != int(self.manifest.get("dimension", self.store.dimension)):
            raise IndexMismatchError(
                f"{self.version_dir}: store dimension differs from the manifest; run `rag rebuild-index`"
            )
        self.sentence_matrix = SentenceVectors(
            self.version_dir / SENTENCE_VECTORS, int(self.manifest.get("dimension", self.store.dimension))
        )
        # Indexes built before the lexical index existed have no lexical/ folder: they fall back to dense search.
        has_lexical = (self.version_dir / LEXICAL_FOLDER).is_dir()
        # A build reusing this version's vectors (`_reuse`) rebuilds the lexical index anyway: it is not read.
        self.lexical = LexicalIndex.load(self.version_dir) if has_lexical and not _reuse else None

    def sections(self) -> dict[str, int]:
        """Section -> number of articles, for filter choices."""
        return self.catalog.values("section")

    def outlets(self) -> dict[str, int]:
        """Outlet -> number of articles, for filter choices."""
        return self.catalog.values("outlet")

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
