"""Articles from the web in Chromium: "Add by URL" in the Library tab fetches a page from the tests' own server on
127.0.0.1, the page is answered from in the chat with its URL in the Sources panel, and a URL into this machine's
network is refused with the reason when private addresses are not allowed. Saves library-add-by-url.png."""

from __future__ import annotations

import shutil

import pytest

from conftest import SEEDS
from ui_support import SCREENSHOTS, app_page, chromium, no_proxy, require_chromium, running_app
from web_server import WebServer, build_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site():
    with WebServer(lifetime_s=600) as server:
        build_site(server)
        yield server


def _library(root, allow_private: bool):
    from rag import build_index
    from rag.config import Settings
    from rag.library.library import Library

    from fakes import FakeEmbedder

    src = root / "articles"
    shutil.copytree(SEEDS, src)
    settings = Settings.load(
        {
            "source": str(src),
            "index_dir": str(root / "index"),
            "fetch_delay_s": 0.0,
            "uploads_dir": str(root / "uploads"),
            "allow_private_urls": allow_private,
        }
    )
    emb = FakeEmbedder()
    build_index(src, settings.index_dir, settings, embedder=emb)
    return Library(settings.index_dir, settings, embedder=emb, source=src)


def _add_by_url(page, url: str):
    page.get_by_role("tab", name="Library").click()
    page.locator("#add-url textarea").fill(url)
    page.locator("#add-url-btn").click()


def test_add_by_url_then_answer_from_the_page(site, tmp_path):
    from playwright.sync_api import expect

    require_chromium()
    no_proxy()
    url = site.url("/news/weather/storm.html")
    with (
        running_app(_library(tmp_path, allow_private=True)) as app,
        chromium() as browser,
        app_page(browser, app, timeout_ms=60_000) as page,
    ):
        _add_by_url(page, url)
        expect(page.locator("#add-url-msg")).to_contain_text("added", timeout=60_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "library-add-by-url.png"), full_page=True)
        page.get_by_role("tab", name="Chat").click()
        box = page.locator("#msg textarea")
        box.fill("Why was the coastal road closed?")
        box.press("Enter")
        page.locator('[data-testid="bot"]').first.wait_for(state="visible")
        page.locator('[data-testid="bot"]').first.locator('a[href="#cite-0-1"]').click()
        expect(page.locator("#sources")).to_contain_text(url)


def test_a_url_into_this_machine_is_refused_with_the_reason(site, tmp_path):
    from playwright.sync_api import expect

    require_chromium()
    no_proxy()
    before = len(site.requests)
    with (
        running_app(_library(tmp_path, allow_private=False)) as app,
        chromium() as browser,
        app_page(browser, app, timeout_ms=60_000) as page,
    ):
        _add_by_url(page, site.url("/news/weather/storm.html"))
        expect(page.locator("#add-url-msg")).to_contain_text("loopback address", timeout=60_000)
    assert site.requests[before:] == []  # refused before any connection


def test_a_long_add_by_url_shows_one_progress_bar_and_the_tab_stays_usable(site, tmp_path):
    """While a page is fetched and indexed, the progress shows once, in the message under "Add by URL" (it used to
    cover every component of the tab, ten copies); the table can be searched meanwhile, and the search still
    holds when the job ends and the listing is refreshed."""
    import time

    from playwright.sync_api import expect

    from web_server import article_html

    require_chromium()
    no_proxy()

    def slow(handler) -> None:
        time.sleep(5)
        body = article_html(
            "Slow tide at the pier", "The tide came in slowly on Friday. Fishermen waited at the pier until noon."
        )
        handler._send(200, body.encode("utf-8"), "text/html; charset=utf-8")

    site.handle("/news/slow.html", slow)
    with (
        running_app(_library(tmp_path, allow_private=True)) as app,
        chromium() as browser,
        app_page(browser, app, timeout_ms=60_000) as page,
    ):
        _add_by_url(page, site.url("/news/slow.html"))
        pending = page.locator(".pending")
        expect(pending).to_have_count(1)
        expect(page.locator("#add-url-msg .pending")).to_have_count(1)
        expect(page.locator(".progress-text")).to_have_count(1)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "library-add-by-url-progress.png"), full_page=True)
        # Browsing while the job runs: the table answers the search at once.
        search = page.locator("#lib-search textarea, #lib-search input").first
        search.fill("pier")
        expect(page.locator("#docs")).to_contain_text("No article matches.")
        assert page.locator("#add-url-msg .pending").count() == 1, "the job ended before the search was tried"
        expect(page.locator("#add-url-msg li.up-ok")).to_contain_text("Slow tide", timeout=60_000)
        expect(page.locator(".pending")).to_have_count(0)
        # The refresh after the job lists what the search typed meanwhile asks for, with the new article in it.
        expect(page.locator("#docs .docs-count")).to_contain_text("of 1 article")
        expect(page.locator("#docs")).to_contain_text("Slow tide at the pier")
        assert search.input_value() == "pier"
        expect(page.locator("#index-status")).to_contain_text("Articles indexed2")
