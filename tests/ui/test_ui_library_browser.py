"""The Library tab and the search filters in Chromium, on the full BBC set (2,225 articles).

The BBC index is built once into .rag-cache/bbc-index (ignored by git); later runs find it up to date and reuse it.
Skipped when ../shared or Chromium is absent. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest

from conftest import BBC, ROOT, require_shared
from ui_support import SCREENSHOTS, app_page, chromium, no_proxy, require_chromium, running_app

pytestmark = [pytest.mark.browser, pytest.mark.model]

BBC_INDEX = ROOT / ".rag-cache" / "bbc-index"
BALLS = "What did Ed Balls say about the Budget?"


@pytest.fixture(scope="module")
def library(model_embedder, tmp_path_factory):
    require_shared(BBC)
    require_chromium()
    no_proxy()
    from rag import build_index
    from rag.config import Settings
    from rag.library.library import Library

    settings = Settings.load({"index_dir": str(BBC_INDEX), "uploads_dir": str(tmp_path_factory.mktemp("bbc-uploads"))})
    build_index(BBC, BBC_INDEX, settings, embedder=model_embedder)
    return Library(BBC_INDEX, settings, embedder=model_embedder, source=BBC)


@pytest.fixture(scope="module")
def app_url(library):
    with running_app(library) as url:
        yield url


@pytest.fixture(scope="module")
def browser(app_url):
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, app_url):
    with app_page(browser, app_url, timeout_ms=60_000, viewport={"width": 1280, "height": 900}) as pg:
        yield pg


def choose(page, elem_id: str, text: str) -> None:
    """Pick the option of a Gradio dropdown whose label starts with `text`."""
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(text)
    page.get_by_role("option", name=re.compile(rf"^{re.escape(text)}\b")).first.click()


def test_library_table_search_filter_and_open_an_article(page, library):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Library").click()
    count = page.locator("#docs .docs-count")
    expect(count).to_contain_text("of 2225 articles")
    # Natural order of ids: business/002 comes right after business/001 (text order would put business/010 there).
    ids = page.locator("#docs .doc-id")
    expect(ids.nth(0)).to_have_text("business/001")
    expect(ids.nth(1)).to_have_text("business/002")
    expect(page.locator("#docs-counts")).to_contain_text("business 510")

    page.locator("#lib-search textarea, #lib-search input").first.fill("Time Warner")
    expect(page.locator("#docs .doc-id").first).to_have_text("business/001")
    expect(page.locator("#docs")).to_contain_text("Ad sales boost Time Warner profit")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "library-search-time-warner.png"), full_page=True)

    page.locator("#lib-search textarea, #lib-search input").first.fill("")
    expect(count).to_contain_text("of 2225 articles")
    choose(page, "lib-section", "business")
    expect(count).to_contain_text("1–50 of 510 articles")
    expect(page.locator("#docs-counts")).to_contain_text("business 510")
    sections = set(page.locator("#docs tbody tr td:nth-child(4)").all_text_contents())
    assert sections == {"business"}
    page.screenshot(path=str(SCREENSHOTS / "library-business-510.png"), full_page=True)
    page.locator("#lib-next").click()
    expect(count).to_contain_text("51–100 of 510 articles")

    # A row opens its article, whole, in the Sources panel of the Chat tab.
    page.locator("#lib-search textarea, #lib-search input").first.fill("Time Warner")
    expect(page.locator("#docs .doc-id").first).to_have_text("business/001")
    page.locator("#docs a.doc-link").first.click()
    expect(page.locator("#sources .src-title")).to_have_text("Ad sales boost Time Warner profit")
    expect(page.locator("#sources .src-meta")).to_contain_text("business/001")
    expect(page.locator("#sources .src-text")).to_contain_text("Quarterly profits at US media giant TimeWarner")
    assert str(BBC.parent) not in page.content()


def test_section_filter_answers_from_politics_only(page, library):
    from playwright.sync_api import expect

    expected = library.ask(BALLS, section="politics")
    assert expected.citations and all(c.section == "politics" for c in expected.citations)
    page.locator("#settings").get_by_text("Settings").first.click()
    choose(page, "section-filter", "politics")
    box = page.locator("#msg textarea")
    box.fill(BALLS)
    box.press("Enter")
    bot = page.locator('[data-testid="bot"]').last
    expect(bot).to_contain_text(expected.citations[0].quote[:60])
    radio = page.locator("#cite-radio")
    expect(radio).to_contain_text("politics")
    expect(page.locator("#sources .src-meta")).to_contain_text("politics")
    labels = radio.locator("label").all_text_contents()
    assert labels and all("politics" in label for label in labels)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chat-section-politics.png"), full_page=True)


def test_article_picker_is_type_ahead(page, library):
    from playwright.sync_api import expect

    page.locator("#settings").get_by_text("Settings").first.click()
    page.locator("#doc-search textarea, #doc-search input").first.fill("Time Warner")
    picker = page.locator("#doc-filter input").first
    picker.click()
    option = page.get_by_role("option").filter(has_text="business/001")
    expect(option.first).to_be_visible()
    # Only matches are offered, not one list of every title.
    assert page.get_by_role("option").count() <= 20
