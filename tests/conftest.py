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
    from rag.embedding import make_embedder

    from rag.config import Settings

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
