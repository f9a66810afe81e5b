"""Article text is shown as text in the browser: script tags, event-handler attributes, javascript: links and
remote images in an indexed article neither run nor load, in the chat, the sources panel and the library view."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from ui_support import chromium, no_proxy, require_chromium, running_app

pytestmark = [pytest.mark.browser, pytest.mark.model]

HOSTILE = """# Lake Ardent report <img src=x onerror="window.__pwned='title'">

The pelican migration at Lake Ardent began in early March <script>window.__pwned='script'</script> according to the rangers.
Rangers counted four thousand pelicans <img src=x onerror="window.__pwned='img'"> on the north shore of Lake Ardent.
Read the [full ranger notes](javascript:window.__pwned='link') and see ![route map](http://203.0.113.9/map.png) for the route.
<a href="javascript:window.__pwned='anchor'">Ranger station</a> <iframe src="javascript:window.__pwned='iframe'"></iframe> opens at dawn.
"""

ATTACKS = [
    "<script>window.__pwned='script'</script>",
    "<img src=x onerror=\"window.__pwned='img'\">",
    "[full ranger notes](javascript:window.__pwned='link')",
    "![route map](http://203.0.113.9/map.png)",
]

# Elements that article text must never turn into, wherever it is shown.
LIVE = (
    "script:not([src]):not([type]), img[onerror], [onerror], a[href^='javascript:'], iframe, "
    "img[src*='203.0.113.9'], img[src='x']"
)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, model_embedder):
    from rag import build_index
    from rag.config import Settings
    from rag.library.library import Library

    require_chromium()
    no_proxy()
    root = tmp_path_factory.mktemp("ui-inert")
    src = root / "articles"
    src.mkdir()
    (src / "lake-ardent.md").write_text(HOSTILE)
    settings = Settings.load(
        {"source": str(src), "index_dir": str(root / "index"), "uploads_dir": str(root / "uploads")}
    )
    build_index(src, settings.index_dir, settings, embedder=model_embedder)
    with running_app(Library(settings.index_dir, settings, embedder=model_embedder)) as url:
        yield url


def test_hostile_article_renders_inert(app_url):
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        dialogs: list[str] = []
        outside: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if urlparse(r.url).hostname not in ("127.0.0.1", "localhost") and not r.url.startswith("data:")
                else None
            ),
        )
        page.goto(app_url)
        page.wait_for_selector("#msg textarea")

        for question in (
            "When did the pelican migration at Lake Ardent begin?",
            "How many pelicans did rangers count on the north shore?",
            "Where can I read the full ranger notes and see the route map?",
        ):
            n = page.locator('[data-testid="bot"]').count()
            page.locator("#msg textarea").fill(question)
            page.locator("#msg textarea").press("Enter")
            page.locator('[data-testid="bot"]').nth(n).wait_for()
        chat_text = page.locator("#chat").inner_text()
        assert "<script>window.__pwned='script'</script>" in chat_text or "onerror" in chat_text

        # Every citation and passage of every answer, in the panel, as an excerpt and as the whole article.
        links = page.locator('#chat a[href^="#cite-"], #chat a[href^="#passage-"]')
        assert links.count() >= 3
        seen = ""
        for i in range(links.count()):
            links.nth(i).click()
            page.wait_for_timeout(150)
            seen += page.locator("#sources").inner_text()
        page.locator("#whole input").check()
        expect(page.locator("#sources .src-whole")).to_be_visible()
        whole = page.locator("#sources .src-text").text_content()
        for attack in ATTACKS:
            assert attack in whole, f"{attack!r} is not shown as text"
        assert "Lake Ardent report <img src=x onerror=" in page.locator("#sources .src-title").text_content()

        page.get_by_role("tab", name="Library").click()
        expect(page.locator("#docs")).to_contain_text("Lake Ardent report <img src=x onerror=")
        page.wait_for_timeout(500)

        for scope in ("#chat", "#sources", "#docs", "#cite-radio", "#status-line"):
            live = page.locator(f"{scope} :is({LIVE})")
            assert live.count() == 0, (
                f"live markup from the article in {scope}: {live.first.evaluate('e => e.outerHTML')}"
            )
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert dialogs == []
        assert outside == [], f"requests left the machine: {outside}"
