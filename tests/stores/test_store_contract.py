"""The vector-store contract: every implementation (FAISS, Milvus on Milvus Lite, Milvus on a real server) passes
the same suite.

Oracle: brute-force inner products over a small fixture of unit vectors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import ConfigError, IndexCorruptError, IndexMismatchError, StoreUnavailableError
from rag.stores import VectorStore, create_store, open_store
from rag.stores.faiss import FaissStore

DIM = 16
N = 120


def unit(rows: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = q @ x.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


# How far a store's scores may sit from exact inner products: FAISS keeps 8-bit codes (rag.stores.faiss.flat_sq8),
# Milvus float32 vectors.
TOLERANCE = {"faiss": 0.01, "milvus": 1e-5}


def assert_top_k(store, scores: np.ndarray, ids: np.ndarray, x: np.ndarray, all_ids: np.ndarray, q: np.ndarray, k: int):
    """The store's top k against brute force: exact for an exact store; for a quantized one, every score within
    the tolerance of the true one and each rank's true score within twice the tolerance of the true rank's."""
    tol = TOLERANCE[store.kind]
    want_scores, want_ids = brute_force(x, all_ids, q, k)
    if tol <= 1e-5:
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
        return
    row = {int(i): j for j, i in enumerate(all_ids)}
    assert ids.shape == want_ids.shape and (ids >= 0).all()
    true = np.array([[q[r] @ x[row[int(i)]] for i in ids[r]] for r in range(len(q))])
    np.testing.assert_allclose(scores, true, atol=tol)
    assert (true >= want_scores - 2 * tol).all()
    assert all(len(set(r.tolist())) == len(r) for r in ids)


# Ids spread over the whole positive int64 range, like the pipeline's hashed chunk ids.
IDS = np.random.default_rng(7).integers(1, 2**63 - 1, size=N, dtype=np.int64)
X = unit(N, 1)
Q = unit(4, 2)


class Backend:
    """Creates, saves and reopens one kind of store inside an index folder laid out like a real one."""

    def __init__(self, kind: str, index_dir: Path, milvus_uri: str = ""):
        self.kind = kind
        self.index_dir = index_dir
        self.settings = Settings(store=kind, milvus_uri=milvus_uri)
        self.opened: list[VectorStore] = []

    def create(self, dimension: int = DIM) -> VectorStore:
        work = self.index_dir / f".tmp-{len(self.opened):012d}"
        work.mkdir(parents=True, exist_ok=True)
        store = create_store(self.kind, dimension, self.settings, work)
        self.opened.append(store)
        return store

    def save(self, store: VectorStore) -> tuple[Path, dict]:
        """Save as a published version would be, then close: the 'process' that built it is gone."""
        folder = self.index_dir / f"v-test-{len(self.opened):03d}"
        folder.mkdir()
        store.save(folder)
        params = json.loads(json.dumps(store.params()))  # as the manifest stores it
        store.close()
        return folder, params

    def load(self, folder: Path, params: dict) -> VectorStore:
        store = open_store(folder, params)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for s in self.opened:
            s.close()


@pytest.fixture(params=["faiss", "milvus", pytest.param("milvus-server", marks=pytest.mark.milvus_server)])
def backend(request, tmp_path):
    uri = request.getfixturevalue("milvus_login") if request.param == "milvus-server" else ""
    b = Backend(request.param.split("-")[0], tmp_path / "index", uri)
    b.index_dir.mkdir()
    yield b
    b.close_all()


@pytest.fixture
def filled(backend):
    store = backend.create()
    store.add(IDS, X)
    return store


def test_is_a_vector_store(backend):
    store = backend.create()
    assert isinstance(store, VectorStore)
    assert store.dimension == DIM and len(store) == 0


def test_empty_store_returns_padding(backend):
    scores, ids = backend.create().search(Q, 3)
    assert ids.shape == (4, 3) and (ids == -1).all() and np.isneginf(scores).all()


def test_rankings_match_brute_force(filled):
    assert len(filled) == N
    scores, ids = filled.search(Q, 10)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert_top_k(filled, scores, ids, X, IDS, Q, 10)


def test_single_query_vector_and_k_beyond_count(backend):
    store = backend.create()
    store.add(IDS[:3], X[:3])
    scores, ids = store.search(Q[0], 5)
    assert ids.shape == (1, 5)
    assert sorted(ids[0, :3].tolist()) == sorted(IDS[:3].tolist())
    assert (ids[0, 3:] == -1).all() and np.isneginf(scores[0, 3:]).all()
    assert (np.diff(scores[0, :3]) <= 0).all()


def test_add_replaces_an_existing_id(filled):
    target = int(IDS[5])
    filled.add(np.array([target]), Q[:1])
    assert len(filled) == N
    scores, ids = filled.search(Q[:1], 1)
    assert ids[0, 0] == target and scores[0, 0] == pytest.approx(1.0, abs=TOLERANCE[filled.kind])


def test_remove_counts_only_existing_ids(filled):
    gone = IDS[:10]
    assert filled.remove(np.concatenate([gone, np.array([12345], dtype=np.int64)])) == 10
    assert filled.remove(gone) == 0
    assert filled.remove(np.array([], dtype=np.int64)) == 0
    assert len(filled) == N - 10
    scores, ids = filled.search(Q, 10)
    assert_top_k(filled, scores, ids, X[10:], IDS[10:], Q, 10)
    assert not set(gone.tolist()) & set(ids.ravel().tolist())


def test_allowed_ids_restrict_results(filled):
    allowed = IDS[::7]
    scores, ids = filled.search(Q, 5, allowed_ids=allowed)
    assert_top_k(filled, scores, ids, X[::7], IDS[::7], Q, 5)


def test_allowed_ids_fewer_than_k_and_empty(filled):
    scores, ids = filled.search(Q[:1], 5, allowed_ids=IDS[:2])
    assert sorted(ids[0, :2].tolist()) == sorted(IDS[:2].tolist()) and (ids[0, 2:] == -1).all()
    scores, ids = filled.search(Q[:1], 5, allowed_ids=np.array([], dtype=np.int64))
    assert (ids == -1).all() and np.isneginf(scores).all()


def test_reopen_after_restart(backend, filled):
    """A fresh process opens the saved store from its folder and manifest entry and ranks as before."""
    before = filled.search(Q, 10)[1].tolist()
    assert_top_k(filled, *filled.search(Q, 10), X, IDS, Q, 10)
    folder, params = backend.save(filled)
    script = (
        "import json, sys, numpy as np\n"
        "from rag.stores import open_store\n"
        "folder, params, q = sys.argv[1], json.loads(sys.argv[2]), np.array(json.loads(sys.argv[3]), np.float32)\n"
        "s = open_store(folder, params)\n"
        "scores, ids = s.search(q, 10)\n"
        "print(json.dumps({'n': len(s), 'ids': ids.tolist()}))\n"
        "s.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(folder), json.dumps(params), json.dumps(Q.tolist())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["n"] == N
    assert got["ids"] == before
    # And back in this process, after the other one let go of it.
    again = backend.load(folder, params)
    assert again.search(Q, 10)[1].tolist() == before


def test_writing_to_a_reopened_store_leaves_the_saved_version(backend, filled):
    """An incremental build writes into a store opened from the live version: the live version must not change."""
    before = filled.search(Q, 10)[1].tolist()
    folder, params = backend.save(filled)
    draft = backend.load(folder, params)
    draft.remove(IDS[:50])
    draft.add(np.array([1, 2], dtype=np.int64), Q[:2])
    assert len(draft) == N - 50 + 2
    new_folder, new_params = backend.save(draft)

    live = backend.load(folder, params)
    assert len(live) == N
    assert live.search(Q, 10)[1].tolist() == before
    newer = backend.load(new_folder, new_params)
    assert newer.search(Q[:1], 1)[1][0, 0] == 1


def test_dimension_mismatch_is_refused(backend, filled):
    with pytest.raises(IndexMismatchError):
        filled.add(np.array([1], dtype=np.int64), np.ones((1, DIM + 1), np.float32))
    with pytest.raises(IndexMismatchError):
        filled.search(np.ones((1, DIM - 1), np.float32), 3)
    folder, params = backend.save(filled)
    with pytest.raises(IndexMismatchError):
        backend.load(folder, {**params, "dimension": DIM * 2})


def test_mismatched_lengths_are_refused(backend):
    with pytest.raises(ValueError):
        backend.create().add(IDS[:3], X[:2])


def test_params_name_the_store(backend, filled):
    params = filled.params()
    assert params["kind"] == backend.kind and params["dimension"] == DIM
    json.dumps(params)  # goes into manifest.json as it is


# -- Milvus only: metadata filters, versions, credentials, Milvus Lite locking --------------------------------------

from rag.stores import ChunkFilter, ChunkMeta, date_key  # noqa: E402
from rag.stores.milvus import TOKEN_ENV, MilvusStore, _new_name, filter_expression  # noqa: E402

DOCS = [f"doc-{i % 12}" for i in range(N)]
SOURCES = [f"src/{i % 3}.jsonl" for i in range(N)]
DATES = [None if i % 12 == 11 else f"2024-01-{1 + i % 12:02d}" for i in range(N)]
META = [ChunkMeta(d, s, t) for d, s, t in zip(DOCS, SOURCES, DATES)]


@pytest.fixture
def lite(tmp_path):
    b = Backend("milvus", tmp_path / "index")
    b.index_dir.mkdir()
    yield b
    b.close_all()


@pytest.fixture
def with_meta(lite):
    store = lite.create()
    store.add(IDS, X, metadata=META)
    return store


@pytest.mark.parametrize(
    "where, keep",
    [
        (ChunkFilter(doc_ids=("doc-1", "doc-5")), lambda i: DOCS[i] in ("doc-1", "doc-5")),
        (ChunkFilter(sources=("src/2.jsonl",)), lambda i: SOURCES[i] == "src/2.jsonl"),
        (
            ChunkFilter(date_from="2024-01-03", date_to="2024-01-06"),
            lambda i: DATES[i] is not None and "2024-01-03" <= DATES[i] <= "2024-01-06",
        ),
        (ChunkFilter(date_from="2024-01-10"), lambda i: DATES[i] is not None and DATES[i] >= "2024-01-10"),
        (
            ChunkFilter(sources=("src/0.jsonl", "src/1.jsonl"), date_to="2024-01-04"),
            lambda i: SOURCES[i] != "src/2.jsonl" and DATES[i] is not None and DATES[i] <= "2024-01-04",
        ),
    ],
)
def test_metadata_filters_match_brute_force(with_meta, where, keep):
    mask = np.array([keep(i) for i in range(N)])
    assert 0 < mask.sum() < N
    scores, ids = with_meta.search(Q, 8, where=where)
    want_scores, want_ids = brute_force(X[mask], IDS[mask], Q, 8)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_metadata_filter_combines_with_allowed_ids(with_meta):
    where = ChunkFilter(doc_ids=("doc-2",))
    allowed = IDS[:60]
    mask = np.array([DOCS[i] == "doc-2" and i < 60 for i in range(N)])
    ids = with_meta.search(Q[:1], 10, allowed_ids=allowed, where=where)[1][0]
    assert ids[: mask.sum()].tolist() == brute_force(X[mask], IDS[mask], Q[:1], int(mask.sum()))[1][0].tolist()
    assert (ids[mask.sum() :] == -1).all()


def test_filters_in_turn_each_get_their_own_results(with_meta):
    """The store keeps the expressions of recent filters: asked in turn, each filter still gets its own results."""
    wheres = [
        None,
        ChunkFilter(doc_ids=("doc-1", "doc-4")),
        ChunkFilter(sources=("src/2.jsonl",)),
        ChunkFilter(doc_ids=("doc-1", "doc-4")),
    ]
    alloweds = [None, IDS[::2], IDS[1::2], IDS[::2].copy()]
    for _ in range(2):
        for where in wheres:
            for allowed in alloweds:
                mask = np.ones(N, bool)
                if where is not None and where.doc_ids:
                    mask &= np.isin(DOCS, where.doc_ids)
                if where is not None and where.sources:
                    mask &= np.isin(SOURCES, where.sources)
                if allowed is not None:
                    mask &= np.isin(IDS, allowed)
                k = min(5, int(mask.sum()))
                ids = with_meta.search(Q[:2], 5, allowed_ids=allowed, where=where)[1]
                np.testing.assert_array_equal(ids[:, :k], brute_force(X[mask], IDS[mask], Q[:2], k)[1])
                assert (ids[:, k:] == -1).all()


def test_metadata_survives_copy_on_write(lite, with_meta):
    folder, params = lite.save(with_meta)
    draft = lite.load(folder, params)
    draft.remove(IDS[:1])
    where = ChunkFilter(sources=("src/1.jsonl",))
    mask = np.array([SOURCES[i] == "src/1.jsonl" and i >= 1 for i in range(N)])
    np.testing.assert_array_equal(draft.search(Q, 5, where=where)[1], brute_force(X[mask], IDS[mask], Q, 5)[1])


def test_filter_values_are_quoted():
    expr = filter_expression(ChunkFilter(doc_ids=('a" or id > 0 or "',)))
    assert expr == 'doc_id in ["a\\" or id > 0 or \\""]'
    with pytest.raises(ValueError):
        ChunkFilter(date_from="last tuesday")
    assert date_key("2024-02-30") == 20240230 and date_key(None) == 0 and date_key("March 2024") == 0


def test_published_moves_the_alias_and_drops_leftovers(lite):
    first = lite.create()
    first.add(IDS[:5], X[:5])
    first.published()

    def sibling() -> MilvusStore:  # what a later build of the same index folder creates
        s = MilvusStore(first._target, DIM, _new_name(first.family), first.family, owned=True)
        lite.opened.append(s)
        return s

    crashed, second = sibling(), sibling()  # the first never reaches published(): its build died
    second.published()
    client = second._client
    assert client.describe_alias(first.family)["collection_name"] == second.collection
    names = set(client.list_collections())
    # The replaced collection stays for readers of the previous version; the crashed build's goes.
    assert {first.collection, second.collection} <= names and crashed.collection not in names
    third = sibling()
    third.published()
    assert first.collection not in set(client.list_collections())
    assert second.collection in set(client.list_collections())


def test_credentials_stay_out_of_uris_and_params(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=TOKEN_ENV):
        MilvusStore.create(
            DIM,
            settings=Settings(store="milvus", milvus_uri="http://root:s3cret@host:19530"),
            folder=tmp_path / ".tmp-1",
        )
    with pytest.raises(ConfigError, match=r"\.db"):
        MilvusStore.create(
            DIM, settings=Settings(store="milvus", milvus_uri="vectors.sqlite"), folder=tmp_path / ".tmp-1"
        )
    monkeypatch.setenv(TOKEN_ENV, "root:s3cret-token")
    # Nothing listens on this port: the error names the URI and the fix, never the token.
    with pytest.raises(StoreUnavailableError) as err:
        MilvusStore.create(
            DIM, settings=Settings(store="milvus", milvus_uri="http://127.0.0.1:9"), folder=tmp_path / ".tmp-1"
        )
    assert "s3cret" not in str(err.value) and "127.0.0.1:9" in str(err.value)


def test_lite_folder_inside_the_index_is_recorded_relative(lite):
    store = lite.create()
    params = store.params()
    assert params["uri"] == "milvus.db" and params["uri_base"] == "index_dir"
    assert (lite.index_dir / "milvus.db" / "LOCK").is_file()


def test_missing_or_altered_collection_is_reported(lite, with_meta):
    folder, params = lite.save(with_meta)
    with pytest.raises(IndexCorruptError, match="missing"):
        lite.load(folder, {**params, "collection": params["collection"] + "x"})
    with pytest.raises(IndexCorruptError, match="holds 120 vectors"):
        lite.load(folder, {**params, "count": N + 1})


def test_lite_folder_held_by_another_process(lite, with_meta):
    """Milvus Lite locks its folder per process: a second process gets a clear error, then succeeds once released."""
    folder, params = lite.save(with_meta)
    holder = lite.load(folder, params)
    script = (
        "import json, sys\n"
        "from rag.stores import open_store\n"
        "from rag.errors import RagError\n"
        "try:\n"
        "    s = open_store(sys.argv[1], json.loads(sys.argv[2])); print('OPENED', len(s)); s.close()\n"
        "except RagError as e:\n"
        "    print('REFUSED', type(e).__name__, e)\n"
    )

    def run() -> str:
        return subprocess.run(
            [sys.executable, "-c", script, str(folder), json.dumps(params)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        ).stdout

    out = run()
    assert "REFUSED StoreUnavailableError" in out and "another process" in out, out
    holder.close()
    assert f"OPENED {N}" in run()


def test_index_folder_accepts_only_a_real_lite_folder(lite, tmp_path):
    from rag.index import indexdir

    lite.create()
    indexdir.prepare_index_dir(lite.index_dir)  # holds milvus.db: still an index folder
    other = tmp_path / "other"
    (other / "notes.db").mkdir(parents=True)
    with pytest.raises(ConfigError, match="notes.db"):
        indexdir.prepare_index_dir(other)


def test_faiss_store_is_untouched_by_metadata_api():
    assert not getattr(FaissStore(DIM), "supports_metadata", False)
