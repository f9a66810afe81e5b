"""Whole builds and questions with the Milvus store, on Milvus Lite and on a real server: same passages and
citations as FAISS."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest

from rag import build_index, open_index
from rag.config import Settings
from rag.errors import SourceError
from rag.index.indexdir import current_version, read_manifest
from rag.stores.milvus import PUBLISHED_READS, TOKEN_ENV, MilvusStore

from conftest import SEED_QUESTION, SEEDS, WALTZ
from fakes import FakeEmbedder

QUESTIONS = [SEED_QUESTION, "intelligence sharing with Ukraine", "military aid suspension", "peace talks"]
MILVUS = Settings(store="milvus")


@pytest.fixture(params=["lite", pytest.param("server", marks=pytest.mark.milvus_server)])
def milvus(request) -> Settings:
    """Milvus settings: Lite inside the index folder, or the session's server (with its login in the environment)."""
    if request.param == "lite":
        return MILVUS
    return MILVUS.with_(milvus_uri=request.getfixturevalue("milvus_login"))


def _articles(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SEEDS, src)
    (src / "cats.txt").write_text("Cats sleep most of the day. Cats purr when they are content and fed.")
    (src / "rain.md").write_text("# Rain\n\nHeavy rain flooded the valley road on Monday. Crews cleared it by night.")
    return src


def _store_params(index_dir):
    return read_manifest(current_version(index_dir))["store"]


def _collections(index_dir):
    from rag.stores.milvus_connection import CONNECTIONS, target_from_params

    target = target_from_params(_store_params(index_dir), index_dir)
    client = CONNECTIONS.acquire(target)
    try:
        return set(client.list_collections())
    finally:
        CONNECTIONS.release(target)


def test_milvus_index_answers_like_faiss(tmp_path, monkeypatch, milvus):
    src = _articles(tmp_path)
    emb = FakeEmbedder()
    if not milvus.milvus_uri:  # Lite ignores credentials; the server needs the real ones, checked in test_milvus_server
        monkeypatch.setenv(TOKEN_ENV, "never-written-anywhere")
    build_index(src, tmp_path / "faiss", embedder=emb)
    build_index(src, tmp_path / "milvus", milvus, embedder=emb)

    params = _store_params(tmp_path / "milvus")
    if milvus.milvus_uri:
        assert params["kind"] == "milvus" and params["uri"] == milvus.milvus_uri and "uri_base" not in params
    else:
        assert params["kind"] == "milvus" and params["uri"] == "milvus.db" and params["uri_base"] == "index_dir"
    manifest_text = (current_version(tmp_path / "milvus") / "manifest.json").read_text()
    assert "never-written-anywhere" not in manifest_text and "Milvus" not in manifest_text

    # Opened with no store settings at all: the manifest says where the vectors are.
    faiss_idx, milvus_idx = open_index(tmp_path / "faiss", embedder=emb), open_index(tmp_path / "milvus", embedder=emb)
    try:
        assert milvus_idx.info()["store"]["kind"] == "milvus"
        for q in QUESTIONS:
            a, b = faiss_idx.search(q, k=5), milvus_idx.search(q, k=5)
            assert [(p.doc_id, p.start, p.end) for p in a] == [(p.doc_id, p.start, p.end) for p in b]
            # FAISS keeps 8-bit codes, Milvus float32: cosines differ by a few thousandths, log-odds by hundredths.
            np.testing.assert_allclose([p.score for p in a], [p.score for p in b], atol=0.05)
            fa, mi = faiss_idx.query(q).to_dict()["citations"], milvus_idx.query(q).to_dict()["citations"]
            assert [{**c, "score": None} for c in fa] == [{**c, "score": None} for c in mi]
            assert [c["score"] for c in fa] == pytest.approx([c["score"] for c in mi], abs=0.02)
        only = milvus_idx.search("cats purr", k=3, sources=[str(src / "cats.txt")])
        assert only and {p.doc_id for p in only} == {only[0].doc_id}
    finally:
        faiss_idx.close()
        milvus_idx.close()


def test_incremental_build_copies_and_keeps_the_live_collection(tmp_path, milvus):
    src = _articles(tmp_path)
    emb = FakeEmbedder()
    index_dir = tmp_path / "index"
    build_index(src, index_dir, milvus, embedder=emb)
    first = _store_params(index_dir)
    live = open_index(index_dir, embedder=emb)
    before = [(p.doc_id, p.start) for p in live.search("cats purr", k=3)]

    (src / "cats.txt").unlink()
    (src / "owls.txt").write_text("Owls hunt at night and sleep through the day in hollow trees.")
    stats = build_index(src, index_dir, milvus, embedder=emb)
    assert stats.added == 1 and stats.removed == 1 and stats.embedded_chunks == 1
    second = _store_params(index_dir)
    assert second["collection"] != first["collection"] and second["family"] == first["family"]
    assert second["count"] == first["count"]

    # The reader opened on the previous version still searches its own, unchanged collection.
    assert [(p.doc_id, p.start) for p in live.search("cats purr", k=3)] == before
    assert live.is_stale()
    live.close()
    new = open_index(index_dir, embedder=emb)
    assert new.search("owls hunt at night", k=1)[0].text.startswith("Owls hunt")
    assert all("Cats" not in p.text for p in new.search("cats purr", k=5))
    new.close()

    # A full rebuild stays in the same family; the oldest collection goes, the one it replaced stays.
    build_index(src, index_dir, milvus, embedder=emb, full=True)
    third = _store_params(index_dir)
    assert third["family"] == first["family"]
    names = _collections(index_dir)
    assert first["collection"] not in names and {second["collection"], third["collection"]} <= names


def test_failed_build_leaves_the_live_milvus_index(tmp_path, monkeypatch, milvus):
    src = _articles(tmp_path)
    emb = FakeEmbedder()
    index_dir = tmp_path / "index"
    build_index(src, index_dir, milvus, embedder=emb)
    version, params = current_version(index_dir), _store_params(index_dir)
    idx = open_index(index_dir, embedder=emb)
    want = [(p.doc_id, p.start, p.score) for p in idx.search(SEED_QUESTION, k=5)]
    idx.close()

    (src / "owls.txt").write_text("Owls hunt at night.")
    (src / "cats.txt").unlink()
    import rag.index.build as pipeline

    def boom(*args, **kwargs):
        raise SourceError("disk full while writing the catalog")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline.CatalogWriter, "add_chunks", boom)
        with pytest.raises(SourceError):
            build_index(src, index_dir, milvus, embedder=emb)

    assert current_version(index_dir) == version and _store_params(index_dir) == params
    idx = open_index(index_dir, embedder=emb, verify=True)
    assert [(p.doc_id, p.start, p.score) for p in idx.search(SEED_QUESTION, k=5)] == want
    assert len(idx.store) == params["count"]
    idx.close()


def test_switching_the_milvus_location_rebuilds_everything(tmp_path):
    src = _articles(tmp_path)
    emb = FakeEmbedder()
    index_dir = tmp_path / "index"
    build_index(src, index_dir, MILVUS, embedder=emb)
    elsewhere = tmp_path / "vectors.db"
    stats = build_index(src, index_dir, MILVUS.with_(milvus_uri=str(elsewhere)), embedder=emb)
    assert stats.embedded_chunks == stats.chunks > 0
    assert _store_params(index_dir)["uri"] == str(elsewhere.resolve())
    idx = open_index(index_dir, embedder=emb)
    assert idx.search("owls", k=1) and idx.store.params()["uri"] == str(elsewhere.resolve())
    idx.close()


@pytest.mark.model
def test_seed_question_cites_waltz_with_store_milvus(tmp_path, model_embedder, capsys, milvus):
    """`rag rebuild-index --store milvus [--milvus-uri http://...]`, then `rag ask --index DIR` with no store flag."""
    from rag.cli.commands import main

    index_dir = tmp_path / "index"
    where = ["--milvus-uri", milvus.milvus_uri] if milvus.milvus_uri else []
    assert (
        main(
            ["rebuild-index", "--source", str(SEEDS), "--index", str(index_dir), "--store", "milvus", *where, "--quiet"]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["ask", SEED_QUESTION, "--index", str(index_dir), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    faiss_dir = tmp_path / "faiss"
    build_index(SEEDS, faiss_dir, embedder=model_embedder)
    with_faiss = open_index(faiss_dir, embedder=model_embedder).query(SEED_QUESTION).to_dict()
    # The same quotes and passages; FAISS scores come from 8-bit codes, Milvus's from float32 vectors.
    unscored = lambda rows: [{**r, "score": None} for r in rows]  # noqa: E731
    assert unscored(answer["citations"]) == unscored(with_faiss["citations"])
    assert unscored(answer["passages"]) == unscored(with_faiss["passages"])
    assert [c["score"] for c in answer["citations"]] == pytest.approx(
        [c["score"] for c in with_faiss["citations"]], abs=0.02
    )
    assert not answer["abstained"]
    first = answer["citations"][0]
    assert WALTZ in first["quote"]

    idx = open_index(index_dir, embedder=model_embedder)
    try:
        assert idx.info()["store"]["kind"] == "milvus"
        assert idx.document(first["doc_id"]).text[first["start"] : first["end"]] == first["quote"]
        again = idx.query(SEED_QUESTION, k=5)
        assert again.citations[0].quote == first["quote"]
        assert (again.citations[0].start, again.citations[0].end) == (first["start"], first["end"])
    finally:
        idx.close()


# -- reads of a published version: no wait for the server, nothing missed ---------------------------------------


def _finds_every_passage(index_dir, emb) -> None:
    """A reader that opens the live version finds and counts every chunk of its catalog, and nothing else."""
    idx = open_index(index_dir, embedder=emb)
    try:
        want = {r.id for r in idx.catalog.all_chunks()}
        probe = np.full(idx.store.dimension, 1.0 / np.sqrt(idx.store.dimension), np.float32)
        ids = idx.store.search(probe, len(want) + 5)[1][0]
        assert set(ids[ids >= 0].tolist()) == want and (ids == -1).sum() == 5
        assert len(idx.store) == len(want) == _store_params(index_dir)["count"]
    finally:
        idx.close()


def test_a_search_right_after_publish_sees_every_passage(tmp_path, milvus):
    """Readers of a published version do not wait for the server's latest writes (PUBLISHED_READS): what makes them
    see all of it is the build's own Strong count, done before the version went live."""
    src, emb, index_dir = _articles(tmp_path), FakeEmbedder(), tmp_path / "index"
    build_index(src, index_dir, milvus, embedder=emb)
    _finds_every_passage(index_dir, emb)
    # An incremental build publishes a collection copied and changed moments before.
    (src / "cats.txt").unlink()
    (src / "owls.txt").write_text("Owls hunt at night and sleep through the day in hollow trees.")
    build_index(src, index_dir, milvus, embedder=emb)
    _finds_every_passage(index_dir, emb)
    idx = open_index(index_dir, embedder=emb)
    try:
        assert idx.search("owls hunt at night", k=1)[0].text.startswith("Owls hunt")
    finally:
        idx.close()


def _spy_reads(monkeypatch, client) -> list[tuple[str, str, str | None]]:
    """Record (call, collection, consistency level) of every search and query through the process's client."""
    calls: list[tuple[str, str, str | None]] = []
    for name in ("search", "query"):
        real = getattr(client, name)

        def spy(collection, *args, _real=real, _name=name, **kwargs):
            calls.append((_name, collection, kwargs.get("consistency_level")))
            return _real(collection, *args, **kwargs)

        monkeypatch.setattr(client, name, spy)
    return calls


def test_published_versions_are_read_without_waiting_and_builds_wait_for_their_writes(tmp_path, milvus, monkeypatch):
    src, emb, index_dir = _articles(tmp_path), FakeEmbedder(), tmp_path / "index"
    build_index(src, index_dir, milvus, embedder=emb)
    live = open_index(index_dir, embedder=emb)
    try:
        calls = _spy_reads(monkeypatch, live.store._client)
        live.query(SEED_QUESTION)
        live.search("cats purr", k=3, sources=[str(src / "cats.txt")])
        assert len(live.store) == _store_params(index_dir)["count"]
        mine = [c for c in calls if c[1] == live.store.collection]
        assert {c[0] for c in mine} == {"search", "query"}
        assert {c[2] for c in mine} == {PUBLISHED_READS} and PUBLISHED_READS != "Strong"

        # The next build copies the live collection and writes the copy: its reads there wait for its writes.
        calls.clear()
        (src / "owls.txt").write_text("Owls hunt at night and sleep through the day in hollow trees.")
        (src / "cats.txt").unlink()
        build_index(src, index_dir, milvus, embedder=emb)
        new = _store_params(index_dir)["collection"]
        built = [c for c in calls if c[1] == new]
        assert built and {c[2] for c in built} == {"Strong"}
        # The collection itself is Strong too, for any other client that reads it without saying.
        if milvus.milvus_uri:  # Milvus Lite keeps no consistency level (every read sees every write)
            assert live.store._client.describe_collection(new)["consistency_level"] == 0  # Strong
    finally:
        live.close()


def test_questions_reuse_the_process_client(tmp_path, milvus, monkeypatch):
    """One pymilvus client per server and login per process: questions, and a second reader, open no connection."""
    import pymilvus

    src, emb, index_dir = _articles(tmp_path), FakeEmbedder(), tmp_path / "index"
    build_index(src, index_dir, milvus, embedder=emb)
    first = open_index(index_dir, embedder=emb)

    def no_new_client(*args, **kwargs):
        raise AssertionError("a new Milvus client was opened while one was open")

    monkeypatch.setattr(pymilvus, "MilvusClient", no_new_client)
    second = open_index(index_dir, embedder=emb)
    try:
        for q in QUESTIONS:
            assert [p.doc_id for p in first.search(q, k=3)] == [p.doc_id for p in second.search(q, k=3)]
        assert second.store._client is first.store._client
    finally:
        second.close()
        first.close()


def test_the_live_version_answers_while_the_next_build_runs(tmp_path, milvus, monkeypatch):
    src, emb, index_dir = _articles(tmp_path), FakeEmbedder(), tmp_path / "index"
    build_index(src, index_dir, milvus, embedder=emb)
    live = open_index(index_dir, embedder=emb)

    def answers():
        return [[(p.doc_id, p.start, p.end, round(p.score, 5)) for p in live.search(q, k=5)] for q in QUESTIONS]

    want, count = answers(), len(live.store)
    written, asked = threading.Event(), threading.Event()
    real_add = MilvusStore.add

    def add_then_hold(self, *args, **kwargs):
        # The build has copied the live collection and written its changes, and has not published yet.
        real_add(self, *args, **kwargs)
        written.set()
        asked.wait(timeout=300)

    monkeypatch.setattr(MilvusStore, "add", add_then_hold)
    (src / "owls.txt").write_text("Owls hunt at night and sleep through the day in hollow trees.")
    (src / "cats.txt").unlink()
    errors: list[BaseException] = []

    def build() -> None:
        try:
            build_index(src, index_dir, milvus, embedder=emb)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    try:
        assert written.wait(timeout=300), errors
        assert answers() == want and len(live.store) == count and not live.is_stale()
    finally:
        asked.set()
        thread.join(timeout=600)
    assert not errors and not thread.is_alive()
    # Published: the reader still answers from the version it has open until it reopens.
    try:
        assert live.is_stale() and answers() == want and len(live.store) == count
    finally:
        live.close()
    new = open_index(index_dir, embedder=emb)
    try:
        assert new.search("owls hunt at night", k=1)[0].text.startswith("Owls hunt")
    finally:
        new.close()
