"""Shared fixtures: a fake embedder for fast tests, the real model loaded once per session, seed indexes."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"
BBC = SHARED / "data" / "bbc_news" / "articles.jsonl"
SQUAD = SHARED / "data" / "squad2_dev"
SEED_QUESTION = "what would lift the pause?"
WALTZ = "could be lifted once peace talks between Russia and Ukraine are set"
UNANSWERABLE = "What is the boiling point of mercury?"

sys.path.insert(0, str(Path(__file__).parent))
from fakes import FakeEmbedder  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No RAG_* setting from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def model_embedder():
    """The real bundled MiniLM, loaded once for the whole session."""
    from rag.config import Settings
    from rag.index.embedding import make_embedder

    # The default backend, so that indexes built here match those the CLI builds in the same session.
    emb = make_embedder("all-MiniLM-L6-v2", Settings().backend)
    emb.embed_query("warm up")
    return emb


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory, model_embedder) -> Path:
    """An index of seeds/ built with the real model (read-only for tests: copy it before changing it)."""
    from rag import build_index

    folder = tmp_path_factory.mktemp("seed-index") / "index"
    build_index(SEEDS, folder, embedder=model_embedder)
    return folder


@pytest.fixture(scope="session")
def seed_index(seed_index_dir, model_embedder):
    from rag import open_index

    return open_index(seed_index_dir, embedder=model_embedder)


@pytest.fixture
def fake_seed_index(tmp_path, fake_embedder):
    """(index_dir, embedder): seeds/ indexed with the fake embedder, private to the test."""
    from rag import build_index

    folder = tmp_path / "index"
    build_index(SEEDS, folder, embedder=fake_embedder)
    return folder, fake_embedder


@pytest.fixture
def fake_cli_index(tmp_path, monkeypatch, fake_embedder) -> Path:
    """A copy of seeds/ indexed with the fake embedder, which the CLI's own builds use too (so `rag` commands run in
    the test process need no model); the articles folder is a private copy that a test may add to."""
    import rag.answer.engine
    import rag.index.build
    import rag.index.version
    from rag import build_index

    for module in (rag.index.build, rag.index.version):
        monkeypatch.setattr(module, "make_embedder", lambda model, backend="torch", device="cpu": fake_embedder)
    monkeypatch.setenv("RAG_FETCH_DELAY_S", "0")
    src = tmp_path / "articles"
    shutil.copytree(SEEDS, src)
    folder = tmp_path / "index"
    build_index(src, folder, embedder=fake_embedder)
    return folder


@pytest.fixture
def copy_index(tmp_path):
    """Copy an index folder into the test's own tmp dir (so a test may damage it)."""

    def _copy(src: Path) -> Path:
        dst = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(src, dst)
        return dst

    return _copy


def require_shared(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data set sits beside the repo as ../shared)")


# -- a real Milvus server (tests/milvus_server.py), one per test session --------------------------------------------

MILVUS_ADMIN_TOKEN = "root:Milvus"  # the server's built-in superuser, with authorization on


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A Milvus standalone server on a free loopback port, authorization on, shared by the whole session.

    Tests may stop, kill and restart it (tests/stores/test_milvus_server.py does) but must leave it running. Skips, with the
    reason, only when the server cannot be started here; everything it started is stopped at the end.
    """
    from milvus_server import MilvusServer, ServerStartError

    server = MilvusServer(tmp_path_factory.mktemp("milvus-server"), authorization=True)
    try:
        server.start()
    except ServerStartError as exc:
        server.kill()
        pytest.skip(f"no Milvus server could be started: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def milvus_login(milvus_server, monkeypatch):
    """The server's URI, with the admin token in RAG_MILVUS_TOKEN for this test (and the processes it starts)."""
    monkeypatch.setenv("RAG_MILVUS_TOKEN", MILVUS_ADMIN_TOKEN)
    if not milvus_server.healthy():
        milvus_server.restart()  # a test that stopped or killed it failed before starting it again
    return milvus_server.uri


def eventually(action, *, deadline_s: float = 300.0, pause_s: float = 2.0):
    """`action()`'s result once it stops raising: a restarted Milvus server accepts connections some seconds before
    it serves searches again (it first waits for its previous run's sessions to expire). Raises the last error
    after `deadline_s`."""
    import time

    end = time.monotonic() + deadline_s
    while True:
        try:
            return action()
        except Exception:  # noqa: BLE001 - whatever the not-yet-ready server answers
            if time.monotonic() > end:
                raise
            time.sleep(pause_s)


BBC_INDEX = ROOT / ".rag-cache" / "bbc-index"


@pytest.fixture(scope="session")
def bbc_index_dir(model_embedder) -> Path:
    """The full BBC set indexed with the real model into .rag-cache/bbc-index (ignored by git): built on the first
    run, found up to date and reused after. Skips when ../shared is absent."""
    require_shared(BBC)
    from rag import build_index

    build_index(BBC, BBC_INDEX, embedder=model_embedder)
    return BBC_INDEX


# -- the web tests' local news site (tests/web_server.py) ----------------------------------------------------------


@pytest.fixture
def site():
    """A small news site on 127.0.0.1 (tests/web_server.py), private to the test; it stops itself after 5 minutes."""
    from web_server import WebServer, build_site

    with WebServer(lifetime_s=300) as server:
        build_site(server)
        yield server


def local_fetcher(**kw):
    """A Fetcher for the local site: 127.0.0.1 allowed, no politeness delay, short timeouts and back-off."""
    from rag.web.fetch import Fetcher

    return Fetcher(
        **{"allowed": ["127.0.0.1"], "delay_s": 0.0, "timeout_s": 2.0, "backoff_s": 0.01, "max_wait_s": 1.0, **kw}
    )
