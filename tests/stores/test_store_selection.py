"""FaissStore picks its index by size (exact, then IVF-SQ8), records it in the manifest, and maps saved files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from rag import build_index, open_index
from rag.stores import open_store
from rag.stores.faiss import EXACT_MAX, FaissStore, choose_layout

DIM = 32


def clustered(n: int, seed: int = 0, clusters: int = 40, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.15 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(data: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Brute-force cosine: the oracle the approximate index is compared with."""
    s = q @ data.T
    return ids[np.argsort(-s, axis=1)[:, :k]]


def test_layout_is_exact_up_to_the_threshold_then_ivf():
    assert choose_layout(10, exact_max=100) == {"index_type": "flat"}
    assert choose_layout(100, exact_max=100) == {"index_type": "flat"}
    big = choose_layout(1_000_000)
    assert big["index_type"] == "ivf_sq8"
    assert big["nlist"] & (big["nlist"] - 1) == 0, "nlist is a power of two"
    assert 1024 <= big["nlist"] <= 8192 and 16 <= big["nprobe"] < big["nlist"]
    assert choose_layout(EXACT_MAX)["index_type"] == "flat"
    assert choose_layout(EXACT_MAX + 1)["index_type"] == "ivf_sq8"


def test_store_switches_to_ivf_past_the_threshold_and_keeps_every_vector():
    data = clustered(1200)
    ids = np.arange(1200, dtype=np.int64) * 3 + 7
    store = FaissStore(DIM, exact_max=500)
    store.add(ids[:400], data[:400])
    assert store.index_type == "flat" and store.params()["factory"] == "IDMap2,SQ8_uniform"
    store.add(ids[400:], data[400:])
    params = store.params()
    assert store.index_type == "ivf_sq8" and len(store) == 1200
    assert params["factory"] == f"IVF{params['nlist']},SQ8" and params["nprobe"] >= 1
    assert params["exact_max"] == 500

    q = clustered(50, seed=5)
    _, got = store.search(q, 10)
    truth = exact_top(data, ids, q, 10)
    recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)])
    assert recall >= 0.9, recall
    # Every stored vector is still reachable: a vector's own id comes first for itself.
    _, own = store.search(data[:20], 1)
    assert list(own[:, 0]) == list(ids[:20])


@pytest.mark.parametrize("decode_slice", [7, 400, 1 << 14])
def test_switch_to_ivf_decodes_the_stored_vectors_a_slice_at_a_time(monkeypatch, decode_slice):
    """Slices change only the memory used: every stored vector lands in the same list with the same code."""
    import faiss

    import rag.stores.faiss as faiss_store

    monkeypatch.setattr(faiss_store, "_DECODE_SLICE", decode_slice)
    data = clustered(1000)
    ids = np.arange(1000, dtype=np.int64) * 5 + 1
    store = FaissStore(DIM, exact_max=500)
    store.add(ids[:450], data[:450])
    stored = store.index.index.reconstruct_n(0, 450)  # the 8-bit codes' values, what the switch re-adds
    store.add(ids[450:], data[450:])
    ivf = faiss.extract_index_ivf(store.index)
    reference = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(DIM), DIM, ivf.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    reference.cp.spherical, reference.cp.niter = True, 10
    pool = np.concatenate([stored, data[450:]])
    reference.train(pool[np.random.default_rng(0).choice(1000, min(1000, 40 * ivf.nlist), replace=False)])
    reference.add_with_ids(stored, ids[:450])
    reference.add_with_ids(data[450:], ids[450:])
    for lst in range(ivf.nlist):
        n = ivf.invlists.list_size(lst)
        assert n == reference.invlists.list_size(lst)
        got = faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), n).copy()
        want = faiss.rev_swig_ptr(reference.invlists.get_ids(lst), n).copy()
        assert got.tolist() == want.tolist()
        codes = faiss.rev_swig_ptr(ivf.invlists.get_codes(lst), n * ivf.code_size).copy()
        ref_codes = faiss.rev_swig_ptr(reference.invlists.get_codes(lst), n * ivf.code_size).copy()
        assert codes.tolist() == ref_codes.tolist()


def test_ivf_store_removes_replaces_and_filters():
    data = clustered(900)
    ids = np.arange(900, dtype=np.int64)
    store = FaissStore(DIM, exact_max=300)
    store.add(ids, data)
    assert store.index_type == "ivf_sq8"
    assert store.remove(ids[:100]) == 100 and len(store) == 800
    _, got = store.search(data[:5], 3)
    assert not set(got.ravel()) & set(range(100))
    store.add(ids[100:101], data[500:501])  # replacing keeps one row per id
    assert len(store) == 800
    allowed = np.array([600, 601, 602], dtype=np.int64)
    scores, got = store.search(data[:4], 5, allowed_ids=allowed)
    assert set(got[got >= 0].ravel()) <= set(allowed.tolist())
    assert (got >= 0).sum(axis=1).tolist() == [3, 3, 3, 3], "a filter probes every list"
    assert np.isneginf(scores[got < 0]).all()


@pytest.mark.parametrize("n, exact_max, kind", [(200, 1000, "flat"), (900, 300, "ivf_sq8")])
def test_saved_store_is_memory_mapped_and_changes_never_touch_the_file(tmp_path, n, exact_max, kind):
    data = clustered(n)
    ids = np.arange(n, dtype=np.int64)
    store = FaissStore(DIM, exact_max=exact_max)
    store.add(ids, data)
    q = clustered(10, seed=3)
    before = store.search(q, 5)
    store.save(tmp_path)
    params = json.loads(json.dumps(store.params()))
    digest = hashlib.sha256((tmp_path / FaissStore.FILE).read_bytes()).hexdigest()

    loaded = open_store(tmp_path, params)
    assert isinstance(loaded, FaissStore) and loaded.mapped and loaded.index_type == kind
    if kind == "ivf_sq8":
        import faiss

        invlists = faiss.extract_index_ivf(loaded.index).invlists
        assert isinstance(faiss.downcast_InvertedLists(invlists), faiss.OnDiskInvertedLists)
        assert loaded.params()["nprobe"] == params["nprobe"]
    after = loaded.search(q, 5)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0], rtol=1e-5)

    # Changing a mapped store first copies it into memory: the published file stays byte for byte.
    assert loaded.remove(ids[:10]) == 10
    loaded.add(np.array([10_000], dtype=np.int64), data[:1])
    assert not loaded.mapped and len(loaded) == n - 9
    assert hashlib.sha256((tmp_path / FaissStore.FILE).read_bytes()).hexdigest() == digest

    unmapped = FaissStore.load(tmp_path, params, mmap=False)
    assert not unmapped.mapped and len(unmapped) == n


def _corpus(folder, n: int) -> None:
    folder.mkdir()
    topics = [
        "rivers flood the valley after heavy rain",
        "the central bank raised interest rates again",
        "the team won the cup final in extra time",
        "a new phone has a faster chip and better camera",
        "the film festival opened with a comedy",
    ]
    for i in range(n):
        body = f"Report {i}. " + " ".join(f"{topics[(i + j) % 5]} in week {j} of year {2000 + i}." for j in range(6))
        (folder / f"doc{i:03d}.txt").write_text(body, encoding="utf-8")


def test_pipeline_records_the_chosen_index_in_the_manifest_and_answers_from_it(tmp_path, fake_embedder, monkeypatch):
    import rag.stores.faiss

    src = tmp_path / "src"
    _corpus(src, 40)
    monkeypatch.setattr(rag.stores.faiss, "EXACT_MAX", 30)
    build_index(src, tmp_path / "index", embedder=fake_embedder)
    idx = open_index(tmp_path / "index", embedder=fake_embedder)
    store = idx.manifest["store"]
    assert store["index_type"] == "ivf_sq8" and store["exact_max"] == 30
    assert {"factory", "nlist", "nprobe", "mmap"} <= store.keys()
    assert idx.store.mapped
    answer = idx.query("which bank raised interest rates?")
    assert answer.passages
    for p in answer.passages:
        assert idx.document(p.doc_id).text[p.start : p.end] == p.text
    idx.close()


def test_pipeline_keeps_small_indexes_exact(tmp_path, fake_embedder):
    src = tmp_path / "src"
    _corpus(src, 5)
    build_index(src, tmp_path / "index", embedder=fake_embedder)
    idx = open_index(tmp_path / "index", embedder=fake_embedder)
    assert idx.manifest["store"]["index_type"] == "flat" and idx.manifest["store"]["factory"] == "IDMap2,SQ8_uniform"
    assert idx.store.mapped
    idx.close()
