"""The web side of the app's Library (add by URL, follow, update) and the Library tab's new components."""

from __future__ import annotations

import shutil

import pytest

from rag import build_index
from rag.config import Settings
from rag.errors import ConfigError, FetchError
from rag.library.library import Library

from conftest import SEEDS


def _library(tmp_path, fake_embedder, **settings) -> Library:
    src = tmp_path / "articles"
    shutil.copytree(SEEDS, src)
    s = Settings.load({"source": str(src), "index_dir": str(tmp_path / "index"), "fetch_delay_s": 0.0, **settings})
    build_index(src, s.index_dir, s, embedder=fake_embedder)
    return Library(s.index_dir, s, embedder=fake_embedder)


def test_add_by_url_follow_and_update_from_the_library(site, tmp_path, fake_embedder):
    lib = _library(tmp_path, fake_embedder, allow_private_urls=True)
    report = lib.add_urls(f"{site.url('/news/weather/storm.html')}\n{site.url('/news/weather/storm.html')}")
    assert report.count("added") == 1
    answer = lib.ask("Why was the coastal road closed?")
    assert answer.citations and answer.citations[0].doc_id == site.url("/news/weather/storm.html")
    src = lib.add_web_source(site.url("/atom.xml"))
    assert src.kind == "atom" and [s.url for s in lib.web_sources()] == [site.url("/atom.xml")]
    report = lib.update_web_sources()
    assert report.count("added") == 2 and report.count("unchanged") == 1
    [row] = lib.web_sources()
    assert row.new_items == 2 and row.last_check
    assert len([d for d in lib.documents() if d.id.startswith("http")]) == 3
    lib.remove_web_source(site.url("/atom.xml"))
    assert lib.web_sources() == []


def test_the_app_cannot_reach_private_addresses_unless_the_server_allows_it(site, tmp_path, fake_embedder):
    lib = _library(tmp_path, fake_embedder)
    with pytest.raises(FetchError, match="loopback"):
        lib.add_urls(site.url("/news/weather/storm.html"))
    with pytest.raises(FetchError, match="loopback"):
        lib.add_web_source(site.url("/feed.xml"))
    with pytest.raises(ConfigError, match="at most 20"):
        lib.add_urls(" ".join(f"http://example.com/{i}" for i in range(21)))
    with pytest.raises(ConfigError, match="no URL"):
        lib.add_urls("   ")
    assert site.requests == []


def test_the_library_tab_has_add_by_url_and_the_sources_table(tmp_path, fake_embedder):
    pytest.importorskip("gradio")
    from ui import render
    from ui.app import create_app

    lib = _library(tmp_path, fake_embedder)
    demo = create_app(lib)
    ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    assert {
        "add-url",
        "add-url-btn",
        "web-sources",
        "source-url",
        "source-add",
        "source-remove",
        "source-update",
    } <= ids
    from rag.web.state import WebSource

    table = render.web_sources_html(
        [
            WebSource(
                "http://x.example/feed.xml",
                kind="rss",
                last_check="2024-01-01T00:00:00Z",
                status="error",
                new_items=2,
                last_error="HTTP 500 <b>",
            )
        ]
    )
    assert "HTTP 500 &lt;b&gt;" in table and "2024-01-01T00:00:00Z" in table
