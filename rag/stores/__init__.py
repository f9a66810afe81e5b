"""Vector stores behind one Protocol: `base` (the contract and chunk metadata), `faiss` (the embedded default),
`milvus` (Milvus Lite, a server or a cluster; `milvus_connection`: where its vectors live, logins, one client per
process), `factory` (which one a kind or a manifest names).

Backends are imported only when used: `rag ask` on a FAISS index never imports pymilvus.
"""

from rag.stores.base import ChunkFilter, ChunkMeta, MetadataStore, VectorStore, date_key, keeps_metadata
from rag.stores.factory import create_store, open_store

__all__ = [
    "VectorStore",
    "MetadataStore",
    "keeps_metadata",
    "ChunkMeta",
    "ChunkFilter",
    "date_key",
    "create_store",
    "open_store",
]
