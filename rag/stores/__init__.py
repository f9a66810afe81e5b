"""Vector stores behind one Protocol: `base` (the contract and chunk metadata), `faiss` (the embedded default),
`milvus` (Milvus Lite, a server or a cluster; `milvus_connection`: where its vectors live, logins, one client per
process), `factory` (which one a kind or a manifest names).

Backends are imported only when used: `rag ask` on a FAISS index never imports pymilvus.
"""

from rag.stores.base import ChunkFilter, ChunkMeta, VectorStore, date_key
from rag.stores.factory import create_store, open_store

__all__ = ["VectorStore", "ChunkMeta", "ChunkFilter", "date_key", "create_store", "open_store"]
