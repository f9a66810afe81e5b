"""Milvus vector store: one collection per index version, on a Milvus server or cluster, or in a Milvus Lite folder.

The same pymilvus code talks to both (rag/stores/milvus_connection.py: where the vectors live, logins, the one
client per process).

How this maps onto versioned index folders (rag/index/indexdir.py):
- Every index version owns one collection, named `<family>_<12 hex>`; the manifest records its name, so the
  catalog and the vectors always switch together when CURRENT moves.
- A store reopened from a published version never writes to that version's collection: the first add or remove
  copies it into a fresh collection (copy on write), so an incremental build that crashes leaves the live index
  exactly as it was.
- Reads follow from that. A build reads its own writes (it counts what it wrote before publishing), so collections
  are created with Strong consistency, and a store's reads wait for every write while it owns its collection. A
  published version's collection is never written again and was counted, Strong, before CURRENT moved: its reads
  ask for Bounded consistency and do not wait for the server's next time tick (200 ms by default) on every search.
- After a version is published, `published()` points the alias `<family>` at its collection (for other readers of
  the same cluster) and drops the family's collections other than the new one and the one it replaced, which stays
  for readers that still have the previous version open. Collections of builds that crashed go at the same time.
- A family belongs to one index folder (its `owner`, a hash of the folder's path, is in the manifest). A copy of the
  folder elsewhere that builds against the same server continues in a family of its own, so two folders never
  write to, publish over or drop each other's collections.
- Every call has a time limit (`milvus_timeout_s`): with the server down, a question or a build fails with a
  one-line error instead of pymilvus retrying for minutes, and the next call after the server is back succeeds.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ConfigError, IndexCorruptError, IndexMismatchError, StoreUnavailableError
from rag.stores.base import ChunkFilter, ChunkMeta, date_key
from rag.stores.milvus_connection import (
    CONNECTIONS,
    DEFAULT_LITE_NAME,
    DEFAULT_TIMEOUT_S,
    PASSWORD_ENV,
    TOKEN_ENV,
    USER_ENV,
    Target,
    reason,
    resolve_target,
    target_from_params,
)

__all__ = [
    "MilvusStore",
    "same_location",
    "filter_expression",
    "TOKEN_ENV",
    "USER_ENV",
    "PASSWORD_ENV",
    "DEFAULT_LITE_NAME",
    "DEFAULT_TIMEOUT_S",
    "INDEX_TYPES",
    "PUBLISHED_READS",
]

# index type -> (build parameters, search parameters); see docs/scaling.md for which to choose by corpus size.
INDEX_TYPES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "FLAT": ({}, {}),
    "HNSW": ({"M": 16, "efConstruction": 200}, {"ef": 128}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 32}),
    "IVF_SQ8": ({"nlist": 1024}, {"nprobe": 32}),
}

# The consistency level of every read of a published version's collection (see the module's docstring and
# docs/scaling.md). Bounded, not Eventually: on a cluster whose replicas lag, Bounded still sees every row written
# more than `common.gracefulTime` (5 s by default) before the search, and it costs no more here (2.5 against 2.3 ms).
PUBLISHED_READS = "Bounded"
_LOAD_TIMEOUT_S = 600.0  # loading a large collection into query nodes legitimately takes minutes
_BATCH = 2000  # rows per insert/upsert call: far below the 256 MB gRPC message limit at 384 dimensions
_ID_BATCH = 4000  # ids per `id in [...]` expression
_MAX_VARCHAR = 65535
_FIELDS = ("id", "vector", "doc_id", "source", "date")


def _in_list(field: str, values: Iterable[Any]) -> str:
    # Milvus Lite does not accept templated filters, so the expression is built here; json.dumps quotes strings.
    return f"{field} in {json.dumps(list(values), ensure_ascii=False)}"


def filter_expression(where: ChunkFilter | None, allowed_ids: np.ndarray | None = None) -> str:
    """The Milvus boolean expression for a metadata filter and an optional id list ("" for no condition).

    Example:
        >>> filter_expression(ChunkFilter(sources=("a.txt",), date_from="2024-01-01"))
        'source in ["a.txt"] and date >= 20240101'
    """
    parts = []
    if allowed_ids is not None:
        parts.append(_in_list("id", (int(i) for i in allowed_ids)))
    if where is not None:
        if where.doc_ids is not None:
            parts.append(_in_list("doc_id", where.doc_ids))
        if where.sources is not None:
            parts.append(_in_list("source", where.sources))
        # Chained comparisons (a <= date <= b) are not understood by Milvus Lite: two conditions instead.
        if where.date_from is not None:
            parts.append(f"date >= {date_key(where.date_from)}")
        if where.date_to is not None:
            parts.append(f"date <= {date_key(where.date_to)}")
    return " and ".join(parts)


class _Expressions:
    """Filter expressions by filter, most recent last: a reader asks question after question under one filter, and
    writing the expression for thousands of allowed ids costs about a quarter of a microsecond per id each time."""

    SIZE = 16
    LONGEST = 1 << 20  # characters; longer ones (tens of thousands of ids) are rebuilt rather than kept

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple, str] = OrderedDict()

    def get(self, where: ChunkFilter | None, allowed_ids: np.ndarray | None) -> str:
        if where is None and allowed_ids is None:
            return ""
        ids = None if allowed_ids is None else np.ascontiguousarray(allowed_ids, dtype=np.int64)
        # A digest of the ids, not the ids: the key stays small however long the list.
        key = (where, None if ids is None else hashlib.blake2b(ids.tobytes(), digest_size=16).digest())
        with self._lock:
            expression = self._kept.get(key)
            if expression is not None:
                self._kept.move_to_end(key)
                return expression
        expression = filter_expression(where, ids)
        if len(expression) <= self.LONGEST:
            with self._lock:
                self._kept[key] = expression
                while len(self._kept) > self.SIZE:
                    self._kept.popitem(last=False)
        return expression


class MilvusStore:
    """Inner-product search in a Milvus collection keyed by int64 chunk ids, with per-chunk metadata for filters.

    Example:
        >>> store = MilvusStore.create(384, settings=Settings(store="milvus"), folder=Path("index/.tmp-1"))
        >>> store.add(ids, vectors, metadata=[ChunkMeta("doc-1", "a.txt", "2024-03-05"), ...])
        >>> scores, ids = store.search(query[None, :], 5, where=ChunkFilter(date_from="2024-01-01"))
    """

    kind = "milvus"
    supports_metadata = True

    def __init__(
        self,
        target: Target,
        dimension: int,
        collection: str,
        family: str,
        index_type: str = "FLAT",
        *,
        owned: bool,
        expected_count: int | None = None,
        owner: str = "",
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ):
        if index_type not in INDEX_TYPES:
            raise ConfigError(f"milvus_index must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")
        self.dimension = int(dimension)
        self.collection = collection
        self.family = family
        self.index_type = index_type
        self.owner = owner
        self.timeout_s = float(timeout_s)
        self._target = target
        self._login = CONNECTIONS.key(target)  # released under the same key even if the environment changes
        self._client = CONNECTIONS.acquire(target, self.timeout_s, self._login)
        self._owned = owned  # False: the collection belongs to a published version and is never written
        self._write_lock = threading.Lock()
        self._closed = False
        self._expressions = _Expressions()
        self._search_params: dict[str, Any] = {"metric_type": "IP", "params": dict(INDEX_TYPES[index_type][1])}
        if owned:
            self._create_collection(collection)
        else:
            self._open_collection(expected_count)

    # -- construction -----------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls, dimension: int, settings: Any = None, folder: Path | None = None, live: dict[str, Any] | None = None
    ) -> MilvusStore:
        """A new empty collection for the index version being written in `folder` (an index folder's work folder).

        Args:
            dimension: vector size.
            settings: rag Settings (milvus_uri, milvus_index); None: a Lite folder inside the index folder, FLAT.
            folder: the version's work folder; its parent is the index folder.
            live: the store entry of the index folder's live manifest, if any (its collection family is kept).
        """
        index_dir = Path(folder).parent if folder is not None else Path.cwd()
        target = resolve_target(getattr(settings, "milvus_uri", "") or "", index_dir)
        owner = _owner_of(index_dir)
        family = _family_of_live_version(live, index_dir, target, owner) or _new_family()
        index_type = getattr(settings, "milvus_index", "FLAT") or "FLAT"
        return cls(
            target,
            dimension,
            _new_name(family),
            family,
            index_type,
            owned=True,
            owner=owner,
            timeout_s=_timeout_of(settings),
        )

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any], settings: Any = None) -> MilvusStore:
        """Reopen the collection a version's manifest names, checking that it exists with the recorded shape.

        Args:
            folder: the version folder; its parent is the index folder.
            params: the manifest's store entry.
            settings: rag Settings for the time limit of each call (None: DEFAULT_TIMEOUT_S).
        """
        folder = Path(folder)
        target = target_from_params(params, folder.parent)
        for key in ("collection", "family", "dimension"):
            if key not in params:
                raise IndexCorruptError(f"{folder}: the manifest's store entry lacks {key!r}; run `rag rebuild-index`")
        store = cls(
            target,
            int(params["dimension"]),
            str(params["collection"]),
            str(params["family"]),
            str(params.get("index_type", "FLAT")),
            owned=False,
            expected_count=params.get("count"),
            owner=str(params.get("owner", "")),
            timeout_s=_timeout_of(settings),
        )
        here = _owner_of(folder.parent)
        if store.owner and store.owner != here and not target.record.get("uri_base"):
            # This index folder is a copy of another one on the same server: its next build must not publish over
            # or drop the original's collections, so it continues in a family of its own.
            store.family, store.owner = _new_family(), here
        store.owner = store.owner or here
        return store

    def _create_collection(self, name: str) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=_MAX_VARCHAR)
        schema.add_field("source", DataType.VARCHAR, max_length=_MAX_VARCHAR)
        schema.add_field("date", DataType.INT64)
        index = self._client.prepare_index_params()
        # Build parameters nested under "params": Milvus Lite reads only that key and drops flattened ones.
        index.add_index(
            field_name="vector",
            index_type=self.index_type,
            metric_type="IP",
            params={"params": INDEX_TYPES[self.index_type][0]},
        )
        # Strong consistency: a build counts and searches right after writing.
        self._call(
            "create",
            self._client.create_collection,
            name,
            schema=schema,
            index_params=index,
            consistency_level="Strong",
            timeout=max(self.timeout_s, _LOAD_TIMEOUT_S),
        )

    def _open_collection(self, expected_count: int | None) -> None:
        where = f"collection {self.collection} at {self._target.shown}"
        if not self._call("open", self._client.has_collection, self.collection):
            self.close()
            raise IndexCorruptError(f"{where} is missing (dropped outside rag?); run `rag rebuild-index --full`")
        fields = self._call("open", self._client.describe_collection, self.collection).get("fields", [])
        dims = [int(f.get("params", {}).get("dim", 0)) for f in fields if f.get("name") == "vector"]
        if not dims or dims[0] != self.dimension:
            self.close()
            raise IndexMismatchError(
                f"{where} holds vectors of dimension {dims[0] if dims else '?'}, the manifest says {self.dimension}; "
                "run `rag rebuild-index --full`"
            )
        from pymilvus.client.types import LoadState

        # Loaded here, once, and only if it is not: a collection starts released after a server restart, and asking
        # for the state is cheaper than asking a loaded collection to load (0.8 against 3.6 ms on the test server).
        # One released later (by hand, or by a restart while this store is open) is loaded again by the first search
        # or count that finds it so (`_call`).
        if self._call("open", self._client.get_load_state, self.collection).get("state") != LoadState.Loaded:
            self._call(
                "open", self._client.load_collection, self.collection, timeout=max(self.timeout_s, _LOAD_TIMEOUT_S)
            )
        if expected_count is None:
            return
        count = len(self)
        if count != int(expected_count):
            # Read again waiting for every write, before calling the collection altered: a replica that the build's
            # own count did not reach could still be catching up.
            count = self._count("Strong")
        if count != int(expected_count):
            self.close()
            raise IndexCorruptError(
                f"{where} holds {count} vectors, the manifest says {expected_count} (altered outside rag?); "
                "run `rag rebuild-index --full`"
            )

    # -- the VectorStore Protocol -----------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[ChunkMeta] | None = None) -> None:
        """Insert or replace rows. ids: int64 (n,); vectors: float32 (n, dimension); metadata: n ChunkMeta or None.

        Rows added without metadata match no metadata filter (they still match `allowed_ids`).
        """
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise IndexMismatchError(
                f"vectors of dimension {vectors.shape[-1]} cannot go into a {self.dimension}-dimension store"
            )
        if len(ids) != len(vectors) or (metadata is not None and len(metadata) != len(ids)):
            raise ValueError("ids, vectors and metadata differ in length")
        if len(ids) == 0:
            return
        with self._write_lock:
            self._own()
            for lo in range(0, len(ids), _BATCH):
                rows = []
                for j in range(lo, min(lo + _BATCH, len(ids))):
                    meta = metadata[j] if metadata is not None else None
                    rows.append(
                        {
                            "id": int(ids[j]),
                            "vector": vectors[j],
                            "doc_id": meta.doc_id if meta else "",
                            "source": meta.source if meta else "",
                            "date": date_key(meta.date) if meta else 0,
                        }
                    )
                self._call("write", self._client.upsert, self.collection, rows)

    def remove(self, ids: np.ndarray) -> int:
        """Delete rows by id; returns how many existed."""
        ids = np.unique(np.ascontiguousarray(ids, dtype=np.int64).reshape(-1))
        if len(ids) == 0:
            return 0
        removed = 0
        with self._write_lock:
            self._own()
            for lo in range(0, len(ids), _ID_BATCH):
                batch = ids[lo : lo + _ID_BATCH]
                # Milvus's delete answers with the ids it was given, existing or not: count them first.
                found = self._call(
                    "write",
                    self._client.query,
                    self.collection,
                    filter=_in_list("id", (int(i) for i in batch)),
                    output_fields=["id"],
                    consistency_level=self._reads(),
                )
                existing = [int(r["id"]) for r in found]
                if existing:
                    self._call("write", self._client.delete, self.collection, ids=existing)
                removed += len(existing)
        return removed

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        where: ChunkFilter | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product, optionally restricted to `allowed_ids` and to chunks matching `where`.

        Returns:
            (scores, ids), each (nq, k), best first; missing results are score -inf and id -1.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dimension:
            raise IndexMismatchError(
                f"query of dimension {queries.shape[1]} against a {self.dimension}-dimension store; "
                "the index was built with another model: run `rag rebuild-index`"
            )
        nq, k = len(queries), max(int(k), 0)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        out = np.full((nq, k), -1, dtype=np.int64)
        if k == 0 or nq == 0 or (allowed_ids is not None and len(allowed_ids) == 0):
            return scores, out
        search_params = self._search_params
        if "ef" in search_params["params"] and search_params["params"]["ef"] < k:
            search_params = {**search_params, "params": {**search_params["params"], "ef": k}}  # HNSW needs ef >= k
        # Only the id comes back: without output_fields Milvus returns every field, vectors included.
        results = self._call(
            "search",
            self._client.search,
            self.collection,
            data=list(queries),
            limit=k,
            filter=self._expressions.get(where, allowed_ids),
            search_params=search_params,
            output_fields=["id"],
            consistency_level=self._reads(),
        )
        for qi, hits in enumerate(results):
            for j, hit in enumerate(list(hits)[:k]):
                out[qi, j] = int(hit["id"])
                scores[qi, j] = float(hit["distance"])
        return scores, out

    def __len__(self) -> int:
        return self._count(self._reads())

    def save(self, folder: Path) -> list[str]:
        """Make the collection durable; the vectors live in Milvus, so no file is written into `folder`."""
        self._call("flush", self._client.flush, self.collection, timeout=max(self.timeout_s, _LOAD_TIMEOUT_S))
        return []

    def params(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dimension": self.dimension,
            "metric": "inner_product",
            "collection": self.collection,
            "family": self.family,
            "alias": self.family,
            "index_type": self.index_type,
            "index_params": INDEX_TYPES[self.index_type][0],
            "count": len(self),
            "owner": self.owner,
            **self._target.record,
        }

    def published(self) -> None:
        """Called once the version holding this collection is live: move the alias, drop the family's leftovers.

        Keeps the collection the alias pointed at before (open readers of the previous version still search it).
        """
        previous = None
        try:
            previous = self._client.describe_alias(self.family, timeout=self.timeout_s).get("collection_name")
        except Exception:  # noqa: BLE001 - no alias yet
            previous = None
        if previous is None:
            self._call("publish", self._client.create_alias, self.collection, self.family)
        elif previous != self.collection:
            self._call("publish", self._client.alter_alias, self.collection, self.family)
        keep = {self.collection, previous}
        for name in self._call("publish", self._client.list_collections):
            if name.startswith(self.family + "_") and name not in keep:
                self._call("publish", self._client.drop_collection, name)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            CONNECTIONS.release(self._target, self._login)

    # -- internals --------------------------------------------------------------------------------------------

    def _own(self) -> None:
        """Before the first write to a published version's collection, continue in a private copy of it."""
        if self._owned:
            return
        source, name = self.collection, _new_name(self.family)
        self._create_collection(name)
        try:
            iterator = self._call(
                "copy", self._client.query_iterator, source, batch_size=_BATCH, filter="", output_fields=list(_FIELDS)
            )
            while True:
                rows = iterator.next()
                if not rows:
                    break
                self._call("copy", self._client.upsert, name, [{f: r[f] for f in _FIELDS} for r in rows])
            iterator.close()
        except BaseException:
            self._client.drop_collection(name)
            raise
        self.collection, self._owned = name, True

    def _reads(self) -> str:
        """The consistency level of this store's reads: Strong while it owns (writes) its collection, so that a
        build counts and finds what it wrote; PUBLISHED_READS for a published version's collection, never written
        again, whose last write the build's own Strong count saw before the version went live."""
        return "Strong" if self._owned else PUBLISHED_READS

    def _count(self, level: str) -> int:
        rows = self._call(
            "count", self._client.query, self.collection, filter="", output_fields=["count(*)"], consistency_level=level
        )
        return int(rows[0]["count(*)"])

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one pymilvus call within the time limit; failures become one-line StoreUnavailableErrors."""
        if self._closed:
            raise StoreUnavailableError(f"the Milvus store for {self.collection} is closed; open the index again")
        kwargs.setdefault("timeout", self.timeout_s)
        try:
            return fn(*args, **kwargs)
        except (ConfigError, IndexCorruptError, IndexMismatchError, StoreUnavailableError):
            raise
        except Exception as exc:  # noqa: BLE001 - pymilvus raises MilvusException and grpc errors alike
            why = reason(exc)
            if what in ("search", "count") and "not loaded" in why:
                # A restarted server reloads its collections on its own only after a while (half a minute here);
                # asking for it now lets the first question after the restart answer.
                return self._reload_and_retry(what, fn, args, kwargs)
            raise StoreUnavailableError(
                f"Milvus {what} on collection {self.collection} at {self._target.shown} failed ({why}); check "
                "that the Milvus server is running and reachable, then try again"
            ) from None

    def _reload_and_retry(self, what: str, fn: Any, args: tuple, kwargs: dict) -> Any:
        self._call(
            "reload", self._client.load_collection, self.collection, timeout=max(self.timeout_s, _LOAD_TIMEOUT_S)
        )
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            why = reason(exc)
            raise StoreUnavailableError(
                f"Milvus {what} on collection {self.collection} at {self._target.shown} failed ({why}); check "
                "that the Milvus server is running and reachable, then try again"
            ) from None


def _new_name(family: str) -> str:
    return f"{family}_{uuid.uuid4().hex[:12]}"


def _new_family() -> str:
    return f"rag_{uuid.uuid4().hex[:8]}"


def _owner_of(index_dir: Path) -> str:
    """A short fixed name for an index folder (a hash of its absolute path): whose collections a family holds."""
    return hashlib.sha256(str(Path(index_dir).resolve()).encode("utf-8")).hexdigest()[:12]


def _timeout_of(settings: Any) -> float:
    value = getattr(settings, "milvus_timeout_s", None)
    return float(value) if value else DEFAULT_TIMEOUT_S


def _family_of_live_version(store: dict[str, Any] | None, index_dir: Path, target: Target, owner: str) -> str | None:
    """The collection family of the index folder's live version (`store`: its manifest's store entry) when it used
    the same Milvus and belongs to this folder, so a full rebuild keeps the alias and can drop the old collections."""
    from rag.errors import RagError

    if not store:
        return None
    if store.get("kind") != "milvus" or not store.get("family"):
        return None
    if store.get("owner") and store["owner"] != owner and not store.get("uri_base"):
        return None  # a copy of another index folder: the family is the original's
    try:
        same = target_from_params(store, index_dir).connect == target.connect
    except RagError:
        return None
    return str(store["family"]) if same else None


def same_location(params: dict[str, Any], settings: Any, index_dir: Path) -> bool:
    """Whether a manifest's Milvus store lives where `settings` (milvus_uri) would put a new one."""
    try:
        recorded = target_from_params(params, Path(index_dir))
        wanted = resolve_target(getattr(settings, "milvus_uri", "") or "", Path(index_dir))
    except (ConfigError, IndexCorruptError):
        return False
    return recorded.connect == wanted.connect and params.get("index_type", "FLAT") == getattr(
        settings, "milvus_index", "FLAT"
    )
