"""The chat app in Chromium against an index of seeds/: answers, citation highlights, abstention, upload and rebuild.

One app serves the whole module; each test opens its own page (its own chat session). Screenshots go to
artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
import statistics
import time

import pytest

from conftest import SEED_QUESTION, SEEDS, UNANSWERABLE, WALTZ
from ui_support import SCREENSHOTS, app_page, chromium, no_proxy, require_chromium, running_app

pytestmark = [pytest.mark.browser, pytest.mark.model]

ARTICLE = (
    "# Kestrel Valley solar farm\n\n"
    "The Kestrel Valley solar farm opened in 2021 on former grazing land. "
    "The Kestrel Valley solar farm has a capacity of 340 megawatts, enough for about 90,000 homes. "
    "Sheep still graze between the panel rows to keep the grass short.\n"
)

TIMING_QUESTIONS = [
    SEED_QUESTION,
    "Why was intelligence sharing with Ukraine paused?",
    "Who is Mike Waltz?",
    "What did the CIA director say?",
    "What is HIMARS used for?",
    UNANSWERABLE,
    "What did Zelensky say about the Oval Office argument?",
    "What would the economic deal give the US?",
    "Which outlet published the article?",
    "What motivated Zelensky's statement?",
]


@pytest.fixture(scope="module")
def library(seed_index_dir, model_embedder, tmp_path_factory):
    from rag.config import Settings
    from rag.library.library import Library

    require_chromium()
    no_proxy()
    root = tmp_path_factory.mktemp("ui-browser")
    index = root / "index"
    shutil.copytree(seed_index_dir, index)
    settings = Settings.load({"index_dir": str(index), "uploads_dir": str(root / "data" / "uploads")})
    return Library(index, settings, embedder=model_embedder, source=SEEDS)


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
    with app_page(browser, app_url) as pg:
        yield pg


def ask(page, question: str) -> float:
    """Type the question, press Enter, wait for the new answer; returns seconds from Enter to the answer."""
    bots = page.locator('[data-testid="bot"]')
    n = bots.count()
    box = page.locator("#msg textarea")
    box.fill(question)
    t0 = time.perf_counter()
    box.press("Enter")
    bots.nth(n).wait_for(state="visible")
    return time.perf_counter() - t0


def test_seed_question_quotes_waltz_and_citation_highlights_the_exact_quote(page, library):
    from playwright.sync_api import expect

    expected = library.ask(SEED_QUESTION)
    ask(page, SEED_QUESTION)
    bot = page.locator('[data-testid="bot"]').last
    expect(bot).to_contain_text(WALTZ)
    expect(bot).to_contain_text("confidence")
    for c in expected.citations:
        link = bot.locator(f'a[href="#cite-0-{c.number}"]')
        expect(link).to_have_text(f"[{c.number}]")
    bot.locator('a[href="#cite-0-1"]').click()
    first = expected.citations[0]
    mark = page.locator("#sources mark")
    expect(page.locator("#sources .src-label")).to_have_text("[1]")
    assert mark.text_content() == first.quote
    expect(page.locator("#sources .src-meta")).to_contain_text(f"characters {first.start}–{first.end}")
    doc = library.document(first.doc_id)
    assert doc.text[first.start : first.end] == first.quote
    # The reader's short answer: bold inside the chat's quote, marked inside the highlighted span of the panel.
    assert first.answer
    expect(bot.locator("strong").first).to_have_text(first.answer.strip())
    expect(page.locator("#sources mark strong.src-answer")).to_have_text(first.answer)

    # Switching citations, then the whole article with the span still marked by its offsets.
    last = expected.citations[-1]
    bot.locator(f'a[href="#cite-0-{last.number}"]').click()
    expect(page.locator("#sources .src-label")).to_have_text(f"[{last.number}]")
    assert page.locator("#sources mark").text_content() == last.quote
    page.locator("#whole input").check()
    expect(page.locator("#sources .src-whole")).to_be_visible()
    whole = page.locator("#sources .src-text").text_content()
    assert whole == doc.text
    assert page.locator("#sources mark").text_content() == last.quote
    expect(page.locator("#sources mark")).to_be_in_viewport()
    page.locator("#whole input").uncheck()
    bot.locator('a[href="#cite-0-1"]').click()
    expect(page.locator("#sources .src-label")).to_have_text("[1]")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "chat-1280x800.png"))


def test_unanswerable_question_abstains_and_lists_nearest_passages(page, library):
    from playwright.sync_api import expect

    from rag.answer.compose import ABSTAIN_TEXT

    expected = library.ask(UNANSWERABLE)
    assert expected.abstained
    ask(page, UNANSWERABLE)
    bot = page.locator('[data-testid="bot"]').last
    expect(bot).to_contain_text(ABSTAIN_TEXT)
    expect(bot).to_contain_text("Not answered")
    links = bot.locator('a[href^="#passage-0-"]')
    expect(links).to_have_count(len(expected.passages))
    links.first.click()
    assert page.locator("#sources mark").text_content() == expected.passages[0].text


def test_follow_up_and_new_chat(page):
    from playwright.sync_api import expect

    ask(page, SEED_QUESTION)
    ask(page, "What did the CIA director say?")
    expect(page.locator('[data-testid="bot"]')).to_have_count(2)
    # A citation of the first answer still opens after the second one.
    page.locator('[data-testid="bot"]').first.locator('a[href="#cite-0-1"]').click()
    expect(page.locator("#sources mark")).to_be_visible()
    page.locator("#new-chat").click()
    expect(page.locator('[data-testid="bot"]')).to_have_count(0)
    expect(page.locator("#sources .src-empty")).to_be_visible()


def test_examples_come_from_the_index_and_k_changes_the_passages(page):
    from playwright.sync_api import expect

    example = page.locator("#examples").get_by_text(SEED_QUESTION, exact=True)
    expect(example).to_be_visible()
    example.click()
    expect(page.locator("#msg textarea")).to_have_value(SEED_QUESTION)
    page.locator("#settings").get_by_text("Settings").click()
    k_box = page.locator("#k input[type=number]")
    expect(k_box).to_be_visible()
    slider = page.locator("#k input[type=range]")
    # The slider takes the typed value on blur; wait until it has, or the question may go with the old k. A box
    # typed into while the accordion is still opening can lose the value, so typing is retried.
    for _ in range(5):
        k_box.fill("2")
        k_box.press("Tab")
        try:
            expect(slider).to_have_value("2", timeout=2000)
            break
        except AssertionError:
            continue
    expect(slider).to_have_value("2")
    page.wait_for_timeout(300)
    ask(page, UNANSWERABLE)
    expect(page.locator('[data-testid="bot"]').last.locator('a[href^="#passage-"]')).to_have_count(2)


def test_enter_to_answer_time_median_of_20(page):
    times = [ask(page, TIMING_QUESTIONS[i % len(TIMING_QUESTIONS)]) for i in range(20)]
    median = statistics.median(times)
    line = (
        f"Enter -> answer visible, 20 questions: median {median * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )
    print(line)
    (SCREENSHOTS.parent / "ui-timing.txt").parent.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS.parent / "ui-timing.txt").write_text(line + "\n")
    assert len(times) == 20


def test_phone_layout_brings_the_source_into_view(browser, app_url, library):
    from playwright.sync_api import expect

    with app_page(browser, app_url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True) as pg:
        ask(pg, SEED_QUESTION)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SCREENSHOTS / "chat-390x844.png"))
        pg.locator('[data-testid="bot"] a[href="#cite-0-1"]').tap()
        expect(pg.locator("#sources mark")).to_be_in_viewport()
        assert pg.locator("#sources mark").text_content() == library.ask(SEED_QUESTION).citations[0].quote
        width = pg.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
        pg.screenshot(path=str(SCREENSHOTS / "source-390x844.png"))


def test_upload_rebuild_then_answer_from_the_new_article(page, library, tmp_path):
    """Last in the module: it changes the index."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Library").click()
    expect(page.locator("#docs")).to_contain_text("Trump administration")
    bad = tmp_path / "scan.txt"
    bad.write_bytes(bytes(range(256)) * 20)
    good = tmp_path / "Kestrel Valley.md"
    good.write_text(ARTICLE)
    upload = page.locator("#upload input[type=file]")
    upload.set_input_files(str(bad))
    expect(page.locator("#upload-msg")).to_contain_text("Refused: scan.txt")
    upload.set_input_files(str(good))
    expect(page.locator("#upload-msg")).to_contain_text("Kestrel Valley.md: added (1 article)")
    expect(page.locator("#index-status")).to_contain_text("Uploads waiting for a rebuild")
    before = library.index.version
    page.locator("#rebuild").click()
    expect(page.locator("#rebuild-msg")).to_contain_text("Rebuilt: 2 articles (1 added", timeout=120_000)
    assert library.index.version != before
    expect(page.locator("#docs")).to_contain_text("Kestrel Valley solar farm")
    expect(page.locator("#status-line")).to_contain_text("2 articles")
    page.screenshot(path=str(SCREENSHOTS / "library-1280x800.png"))

    page.get_by_role("tab", name="Chat").click()
    ask(page, "What is the capacity of the Kestrel Valley solar farm?")
    bot = page.locator('[data-testid="bot"]').last
    expect(bot).to_contain_text("340 megawatts")
    bot.locator('a[href="#cite-0-1"]').click()
    expect(page.locator("#sources .src-meta")).to_contain_text("kestrel-valley-")
    expect(page.locator("#sources mark")).to_contain_text("340 megawatts")
