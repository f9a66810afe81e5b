"""A two-turn conversation in Chromium: the follow-up is read with the first turn, says so under its answer, and
quotes the first answer's article; "New chat" starts over. Saves chat-followup-1280x800.png."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ui_support import SCREENSHOTS, app_page, chromium, no_proxy, require_chromium, running_app

pytestmark = [pytest.mark.browser, pytest.mark.model]

ARTICLES = Path(__file__).parents[1] / "fixtures" / "conversation" / "articles.jsonl"


@pytest.fixture(scope="module")
def library(model_embedder, tmp_path_factory):
    from rag import build_index
    from rag.config import Settings
    from rag.library.library import Library

    require_chromium()
    no_proxy()
    root = tmp_path_factory.mktemp("ui-conversation")
    src = root / "articles"
    src.mkdir()
    shutil.copy(ARTICLES, src / "articles.jsonl")
    settings = Settings.load({"index_dir": str(root / "index"), "uploads_dir": str(root / "data" / "uploads")})
    build_index(src, settings.index_dir, settings, embedder=model_embedder)
    return Library(settings.index_dir, settings, embedder=model_embedder, source=src)


@pytest.fixture(scope="module")
def page(library):
    with running_app(library) as url, chromium() as browser, app_page(browser, url) as pg:
        yield pg


def _ask(page, question: str):
    bots = page.locator('[data-testid="bot"]')
    n = bots.count()
    box = page.locator("#msg textarea")
    box.fill(question)
    box.press("Enter")
    bots.nth(n).wait_for(state="visible")
    return bots.nth(n)


def test_second_turn_is_read_with_the_first_and_quotes_its_article(page, library):
    from playwright.sync_api import expect

    first = _ask(page, "How many jobs is ABN Amro cutting?")
    expect(first).to_contain_text("2,850")
    expect(first).not_to_contain_text("Read as")
    second = _ask(page, "How many will go in IT?")
    expect(second).to_contain_text("1,500")
    expect(second).to_contain_text("Read as: How many will go in IT? (ABN Amro) (following question 1)")
    # The second answer's citation opens the first answer's article in the Sources panel.
    second.locator('a[href="#cite-1-1"]').click()
    expect(page.locator("#sources")).to_contain_text("ABN Amro to cut 2,850 jobs")
    expect(page.locator("#sources mark")).to_contain_text("1,500 will be in IT")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chat-followup-1280x800.png"), full_page=True)

    # A new chat forgets the conversation: the same question is read alone again.
    page.locator("#new-chat").click()
    expect(page.locator('[data-testid="bot"]')).to_have_count(0)
    alone = _ask(page, "How many will go in IT?")
    expect(alone).not_to_contain_text("Read as")
