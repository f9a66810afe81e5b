"""The web app's HTTP API under load while rebuilds swap the index: 200 requests from 8 clients, zero errors."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import SEED_QUESTION, SEEDS
from fakes import FakeEmbedder
from ui_support import no_proxy, running_app

pytestmark = pytest.mark.slow
gradio_client = pytest.importorskip("gradio_client")

CLIENTS = 8
REQUESTS = 200
QUESTIONS = (SEED_QUESTION, "when does the ferry leave?", "who suspended military aid?", "library opening hours")
EXTRA = "# Ferry\n\nThe ferry leaves at nine. It returns at noon on weekdays. The pier reopened in May.\n"


def test_api_answers_every_request_during_rebuilds(tmp_path):
    from rag import build_index
    from rag.config import Settings
    from rag.library.library import Library

    no_proxy()
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(SEEDS, a)
    shutil.copytree(SEEDS, b)
    (b / "ferry.md").write_text(EXTRA, encoding="utf-8")
    settings = Settings.load(
        {"source": str(a), "index_dir": str(tmp_path / "index"), "uploads_dir": str(tmp_path / "uploads")}
    )
    emb = FakeEmbedder()
    published = {build_index(a, settings.index_dir, settings, embedder=emb).version}
    library = Library(settings.index_dir, settings, embedder=emb)
    # Sources are relative to the folder built from, and both folders hold the same names.
    texts = {p.name: p.read_text(encoding="utf-8") for folder in (a, b) for p in folder.iterdir()}

    errors: list[str] = []
    versions: list[str] = []
    done = threading.Event()

    with running_app(library) as url:

        def client(n: int) -> None:
            c = gradio_client.Client(url, verbose=False)
            for i in range(REQUESTS // CLIENTS):
                try:
                    got = c.predict(QUESTIONS[(n + i) % len(QUESTIONS)], 3, api_name="/ask")
                    assert got["text"] and got["index_version"], got
                    if not got["abstained"]:
                        assert got["citations"]
                    for cit in got["citations"]:
                        assert texts[cit["source"]][cit["start"] : cit["end"]] == cit["quote"], cit
                    versions.append(got["index_version"])
                except Exception as exc:
                    errors.append(f"client {n} request {i}: {type(exc).__name__}: {exc}")

        def rebuilds() -> None:
            i = 0
            while not done.is_set():
                source = b if i % 2 == 0 else a
                published.add(build_index(source, settings.index_dir, settings, embedder=emb, full=True).version)
                i += 1

        builder = threading.Thread(target=rebuilds)
        builder.start()
        try:
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(client, range(CLIENTS)))
        finally:
            done.set()
            builder.join(timeout=120)

    assert errors == []
    assert len(versions) == REQUESTS
    assert set(versions) <= published
    assert len(set(versions)) >= 2, "no swap happened during the requests: the test did not exercise one"
    print(
        f"\n{REQUESTS} requests from {CLIENTS} clients, {len(published)} versions published, "
        f"{len(set(versions))} seen in answers, 0 errors"
    )
