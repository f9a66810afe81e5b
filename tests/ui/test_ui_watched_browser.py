"""Watched questions in the web app: a feed from the tests' server on 127.0.0.1 brings two articles, one answering a
saved question; the answer shows once in the "Watched questions" tab (its label counting it as new), opens
highlighted in the Sources panel, and is the one entry of /answers.xml (parsed as Atom, behind the login) and of
/api/answers. Questions are added and removed from the tab and through /api/questions. Saves watched-questions.png.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from conftest import SEEDS
from ui_support import SCREENSHOTS, app_page, chromium, no_proxy, require_chromium, running_app
from web_server import ARTICLES, WebServer, build_site

pytestmark = pytest.mark.slow

QUESTION = "When did the harbour authority reopen the northern pier?"
HARBOUR, LIBRARY = ARTICLES[0], ARTICLES[1]
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def site():
    with WebServer(lifetime_s=600) as server:
        build_site(server, [HARBOUR, LIBRARY])
        yield server


@pytest.fixture(scope="module")
def library(site, tmp_path_factory):
    """A seed index (fake embedder) with QUESTION saved, then the feed followed and updated through the library,
    as the Library tab's buttons do."""
    from rag import build_index
    from rag.config import Settings
    from rag.index import indexdir
    from rag.library.library import Library
    from rag.watch.store import WatchStore

    from fakes import FakeEmbedder

    no_proxy()
    root = tmp_path_factory.mktemp("watched-ui")
    src = root / "articles"
    shutil.copytree(SEEDS, src)
    settings = Settings.load(
        {
            "source": str(src),
            "index_dir": str(root / "index"),
            "fetch_delay_s": 0.0,
            "uploads_dir": str(root / "uploads"),
            "allow_private_urls": True,
        }
    )
    emb = FakeEmbedder()
    build_index(src, settings.index_dir, settings, embedder=emb)
    lib = Library(settings.index_dir, settings, embedder=emb, source=src)
    lib.add_web_source(site.url("/feed.xml"))
    version = indexdir.current_version(lib.index_dir)
    WatchStore(lib.index_dir).add(QUESTION, baseline=(version.name, indexdir.read_manifest(version)["documents"]))
    lib.update_web_sources()
    assert lib.watched is not None and [a.question_id for a in lib.watched.answers] == [1]
    return lib


def _url(site, article) -> str:
    slug, _, _, section, _ = article
    return site.url(f"/news/{section}/{slug}.html")


@pytest.mark.browser
def test_the_answer_shows_in_the_tab_and_opens_in_the_sources_panel(site, library):
    from playwright.sync_api import expect

    require_chromium()
    harbour = _url(site, HARBOUR)
    with running_app(library) as app, chromium() as browser, app_page(browser, app, timeout_ms=60_000) as page:
        tab = page.get_by_role("tab", name="Watched questions (1 new)")
        expect(tab).to_be_visible()
        tab.click()
        board = page.locator("#watched")
        expect(board).to_contain_text(QUESTION)
        expect(board.locator("li.watch-a")).to_have_count(1)
        answer = board.locator("li.watch-a").first
        expect(answer).to_contain_text("Tuesday")
        expect(answer).to_contain_text(harbour)
        expect(answer).to_have_class("watch-a new")
        expect(page.get_by_role("tab", name="Watched questions", exact=True)).to_be_visible()  # now seen
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "watched-questions.png"), full_page=True)

        # Clicking it opens the quote in its article, on the Chat tab, as a citation does.
        answer.locator("a[href^='#answer-']").click()
        sources = page.locator("#sources")
        expect(sources).to_be_visible()
        expect(sources).to_contain_text(harbour)
        expect(sources.locator("mark.src-quote")).to_contain_text("reopened the northern pier")
        expect(sources.locator("strong.src-answer")).to_have_text("Tuesday")

        # Add a question from the tab, then stop watching it.
        page.get_by_role("tab", name="Watched questions", exact=True).click()
        page.locator("#watch-question textarea").fill("Who is the librarian of Port Elsa?")
        page.locator("#watch-add").click()
        expect(page.locator("#watch-msg")).to_contain_text("Watching [2]")
        expect(board).to_contain_text("[2] Who is the librarian of Port Elsa?")
        expect(board.locator("[data-question='2']")).not_to_contain_text("min confidence")  # empty: the index's
        page.locator("#watch-question textarea").fill("Who?")
        page.locator("#watch-min textarea, #watch-min input").first.fill("1.5")
        page.locator("#watch-add").click()
        expect(page.locator("#watch-msg")).to_contain_text("outside [0, 1]")
        page.locator("#watch-min textarea, #watch-min input").first.fill("")
        page.locator("#watch-question textarea").fill(QUESTION)
        page.locator("#watch-add").click()
        expect(page.locator("#watch-msg")).to_contain_text("already saved as [1]")
        board.locator("[data-question='2'] a.watch-remove").click()
        expect(page.locator("#watch-msg")).to_contain_text("No longer watching [2]")
        expect(board).not_to_contain_text("librarian")

    # The feed's link for an article without a web address: the app opened at #answer-<id> shows that answer.
    with running_app(library) as app, chromium() as browser, app_page(browser, app + "#answer-1") as page:
        expect(page.locator("#sources mark.src-quote")).to_contain_text("reopened the northern pier", timeout=30_000)


def test_the_feed_and_the_api_hold_the_answer_once_behind_the_login(site, library):
    import httpx

    from ui.access import Credentials

    harbour = _url(site, HARBOUR)
    with (
        running_app(library, auth=Credentials("editor", "s3cret", "test")) as app,
        httpx.Client(base_url=app, timeout=60) as client,
    ):
        assert client.get("answers.xml").status_code == 401
        assert client.get("answers.xml").headers["www-authenticate"].startswith("Basic")
        assert client.get("api/answers").status_code == 401
        login = ("editor", "s3cret")
        r = client.get("answers.xml", auth=login)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
        feed = ET.fromstring(r.content)
        assert feed.tag == f"{ATOM}feed"
        for required in ("id", "title", "updated", "author"):
            assert feed.find(f"{ATOM}{required}") is not None, required
        [entry] = feed.findall(f"{ATOM}entry")
        assert entry.find(f"{ATOM}id").text.startswith("urn:uuid:")
        assert QUESTION in entry.find(f"{ATOM}title").text and "Tuesday" in entry.find(f"{ATOM}title").text
        assert entry.find(f"{ATOM}link").get("href") == harbour
        assert entry.find(f"{ATOM}updated").text.endswith("Z")
        content = entry.find(f"{ATOM}content")
        assert content.get("type") == "html" and "reopened the northern pier" in content.text
        # A reader polling with the ETag gets 304 until something new is recorded.
        again = client.get("answers.xml", auth=login, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304

        [a] = client.get("api/answers", auth=login).json()
        assert (a["question_id"], a["doc_id"], a["url"]) == (1, harbour, harbour)
        assert a["answer"]["citations"][0]["quote"] in re.sub(r"<[^>]+>", "", content.text)  # the quote, answer in bold
        assert client.get("api/answers", params={"since": str(a["id"])}, auth=login).json() == []
        assert len(client.get("api/answers", params={"since": a["recorded_at"][:10]}, auth=login).json()) == 1
        bad = client.get("api/answers", params={"since": "last week"}, auth=login)
        assert bad.status_code == 400 and "neither an answer id nor a date" in bad.json()["error"]

        made = client.post(
            "api/questions", json={"question": "Who is the librarian?", "section": ["culture"]}, auth=login
        )
        assert made.status_code == 201 and made.json()["sections"] == ["culture"]
        qid = made.json()["id"]
        listed = client.get("api/questions", auth=login).json()
        assert [(q["id"], q["answers"]) for q in listed] == [(1, 1), (qid, 0)]
        for body, message in (
            ({"question": ""}, "empty"),
            ({"question": QUESTION}, "already saved as [1]"),
            ({"question": "Why?", "min_confidence": 2.0}, "outside [0, 1]"),
        ):
            r = client.post("api/questions", json=body, auth=login)
            assert r.status_code == 400 and message in r.json()["error"], r.text
        assert client.delete(f"api/questions/{qid}", auth=login).json()["id"] == qid
        r = client.delete(f"api/questions/{qid}", auth=login)
        assert r.status_code == 404 and "no saved question" in r.json()["error"]
