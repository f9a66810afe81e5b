"""rag.web.sources: follow feeds into an index (fake embedder), incrementally, with the state in the catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag import build_index, open_index
from rag.config import Settings
from rag.errors import FetchError
from rag.index.catalog import Catalog
from rag.index.indexdir import current_version
from rag.web.sources import WebIndex
from rag.web.store import web_folder

from conftest import SEEDS, local_fetcher
from web_server import ARTICLES, article_html, rss

make_fetcher = local_fetcher


@pytest.fixture
def web(tmp_path, fake_embedder):
    """A seed index (fake embedder) and its WebIndex, fetching from 127.0.0.1 only."""
    src = tmp_path / "articles"
    shutil.copytree(SEEDS, src)
    index = tmp_path / "index"
    build_index(src, index, embedder=fake_embedder)
    settings = Settings(index_dir=str(index), max_items_per_update=50)
    return WebIndex(index, settings, embedder=fake_embedder, fetcher=make_fetcher())


def _docs(index: Path, embedder) -> dict:
    idx = open_index(index, embedder=embedder)
    try:
        return {d.id: d for d in idx.documents()}
    finally:
        idx.close()


def test_follow_a_feed_then_update_indexes_its_items_with_dates_and_sections(site, web, fake_embedder):
    source = web.add_source(site.url("/feed.xml"))
    assert source.kind == "rss" and source.items == 3 and source.status == "new"
    report = web.update()
    assert report.count("added") == 3 and not report.errors
    assert report.build.added == 3
    docs = _docs(web.index_dir, fake_embedder)
    harbour = docs[site.url("/news/business/harbour.html")]
    assert harbour.section == "business" and harbour.date == "2024-03-05T09:00:00+00:00"
    assert harbour.outlet == "Port Elsa Gazette" and harbour.url == site.url("/news/business/harbour.html")
    [row] = web.sources()
    assert row.status == "ok" and row.new_items == 3 and row.last_check and row.etag and row.last_error is None
    state = web.state()
    assert len(state.pages) == 3 and all(p.content_hash and p.etag for p in state.pages.values())
    # The record and the original are kept beside the index.
    folder = web_folder(web.settings, web.index_dir)
    assert len(list((folder / "articles").glob("*.json"))) == 3
    assert len(list((folder / "originals").glob("*.html"))) == 3

    answer = open_index(web.index_dir, embedder=fake_embedder).query("When did the harbour authority reopen the pier?")
    assert any(c.doc_id == site.url("/news/business/harbour.html") for c in answer.citations)


def test_a_second_update_adds_only_what_changed(site, web, fake_embedder):
    web.add_source(site.url("/feed.xml"))
    web.update()
    # Nothing changed: the feed answers 304, no page is fetched, nothing is embedded.
    before = len(site.requests)
    report = web.update()
    assert report.sources[0].status == "not modified" and report.new_items == 0
    assert [p for p, _ in site.requests[before:]] == ["/feed.xml"]
    assert report.build.added == report.build.updated == 0
    # One page changes (the feed says so with a new date) and one is new.
    slug, title, date, section, body = ARTICLES[1]
    site.set(
        f"/news/{section}/{slug}.html",
        article_html(title, body + " The library will also open on Sundays.", date, section),
    )
    items = [(f"/news/{s}/{sl}.html", t, "2024-03-09T10:00:00Z" if sl == slug else d, s) for sl, t, d, s, _ in ARTICLES]
    site.set(
        "/news/politics/budget.html",
        article_html(
            "Council passes the budget",
            "The Port Elsa council passed its budget on Friday. It spends more on roads and schools",
            "2024-03-08T12:00:00Z",
            "politics",
        ),
    )
    items.append(("/news/politics/budget.html", "Council passes the budget", "2024-03-08T12:00:00Z", "politics"))
    site.set("/feed.xml", rss(site.url(""), items), "application/rss+xml")
    before = len(site.requests)
    report = web.update()
    assert (report.count("added"), report.count("changed")) == (1, 1)
    assert (report.build.added, report.build.updated, report.build.removed) == (1, 1, 0)
    fetched = [p for p, _ in site.requests[before:]]
    assert "/news/business/harbour.html" not in fetched  # unchanged and not re-listed as changed
    doc = open_index(web.index_dir, embedder=fake_embedder).document(site.url(f"/news/{section}/{slug}.html"))
    assert "open on Sundays" in doc.text


def test_the_same_story_under_two_urls_is_kept_once(site, web, fake_embedder):
    slug, title, date, section, body = ARTICLES[2]
    site.set("/syndicated/storm-copy.html", article_html(title, body, date, section))
    report = web.add_urls([site.url(f"/news/{section}/{slug}.html"), site.url("/syndicated/storm-copy.html")])
    assert [p.status for p in report.sources[0].pages] == ["added", "duplicate"]
    docs = _docs(web.index_dir, fake_embedder)
    assert sum(1 for d in docs if d.startswith("http")) == 1
    # The same URL spelled differently is the same article.
    again = web.add_urls([site.url(f"/news/{section}/{slug}.html?utm_source=newsletter#top")])
    assert again.sources[0].pages[0].status == "unchanged"


def test_a_failing_source_never_stops_the_others_and_its_error_is_recorded(site, web, fake_embedder):
    site.set("/broken.xml", rss(site.url(""), []), "application/rss+xml")
    web.add_source(site.url("/broken.xml"))
    web.add_source(site.url("/atom.xml"))
    site.set("/broken.xml", b"oops", "text/plain", status=500, etag=False)
    report = web.update()
    by_url = {s.url: s for s in report.sources}
    assert by_url[site.url("/broken.xml")].status == "error" and "HTTP 500" in by_url[site.url("/broken.xml")].error
    assert by_url[site.url("/atom.xml")].count("added") == 3
    rows = {s.url: s for s in web.sources()}
    assert "HTTP 500" in rows[site.url("/broken.xml")].last_error and rows[site.url("/atom.xml")].last_error is None
    assert len([d for d in _docs(web.index_dir, fake_embedder) if d.startswith("http")]) == 3


def test_a_page_that_fails_is_reported_and_tried_again_next_time(site, web):
    items = [
        ("/news/business/harbour.html", "Harbour", "2024-03-05T09:00:00Z", "business"),
        ("/gone.html", "Gone", "2024-03-04T09:00:00Z", "misc"),
    ]
    site.set("/mixed.xml", rss(site.url(""), items), "application/rss+xml")
    web.add_source(site.url("/mixed.xml"))
    report = web.update()
    src = report.sources[0]
    assert src.status == "partial" and "HTTP 404" in src.error and src.count("added") == 1
    assert web.sources()[0].etag is None  # read again next time
    site.set("/gone.html", article_html("Back", "The page is back. It has words now"))
    assert web.update().count("added") == 1


def test_a_huge_feed_is_bounded_per_update(site, tmp_path, fake_embedder, web):
    items = [
        (f"/n/{i}.html", f"Item {i}", f"2024-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z", "misc")
        for i in range(10_000)
    ]
    site.set("/huge.xml", rss(site.url(""), items), "application/rss+xml")
    for path, title, date, _ in sorted(items, key=lambda x: x[2], reverse=True)[:8]:
        site.set(path, article_html(title, f"{title} is one of many items. It has its own words {title}", date))
    web.settings = web.settings.with_(max_items_per_update=4)
    web.add_source(site.url("/huge.xml"))
    first = web.update()
    assert first.sources[0].listed == 10_000 and first.count("added") == 4 and first.sources[0].waiting == 9_996
    second = web.update()
    assert second.count("added") == 4  # the next four newest


def test_private_addresses_are_refused_unless_allowed(site, tmp_path, fake_embedder, web):
    strict = WebIndex(web.index_dir, web.settings, embedder=fake_embedder)
    with pytest.raises(FetchError, match="loopback.*allow_private_urls"):
        strict.add_source(site.url("/feed.xml"))
    with pytest.raises(FetchError, match="loopback"):
        strict.add_urls([site.url("/news/business/harbour.html")])
    assert site.requests == []
    allowed = WebIndex(
        web.index_dir, web.settings.with_(allow_private_urls=True, fetch_delay_s=0.0), embedder=fake_embedder
    )
    assert allowed.add_source(site.url("/feed.xml")).kind == "rss"


def test_a_site_page_leads_to_its_feed(site, web):
    source = web.add_source(site.url("/"))
    assert source.feed_url == site.url("/feed.xml") and source.url == site.url("/")
    site.set("/nofeed.html", article_html("Plain", "A page with no feed link. Nothing to follow"))
    with pytest.raises(FetchError, match="links to none"):
        web.add_source(site.url("/nofeed.html"))


def test_state_survives_rebuilds_and_articles_rebuild_without_network(site, web, fake_embedder, tmp_path):
    web.add_source(site.url("/sitemap.xml"))
    web.update()
    site.stop()  # no network from here on
    folder = web_folder(web.settings, web.index_dir)
    build_index([tmp_path / "articles", folder / "articles"], web.index_dir, embedder=fake_embedder, full=True)
    docs = _docs(web.index_dir, fake_embedder)
    assert len([d for d in docs if d.startswith("http")]) == 3
    catalog = Catalog(current_version(web.index_dir))
    sources, pages = catalog.web_state()
    catalog.close()
    assert len(sources) == 1 and len(pages) == 3
    web.remove_source(site.url("/sitemap.xml"))
    assert web.sources() == []


def test_a_stopped_update_publishes_nothing(site, web):
    web.add_source(site.url("/feed.xml"))
    version = current_version(web.index_dir).name
    web.stop.set()
    report = web.update()
    assert report.build is None and current_version(web.index_dir).name == version
