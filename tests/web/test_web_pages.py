"""rag.web.pages: a fetched page -> an article with its metadata; charsets right or wrong."""

from __future__ import annotations

from rag.web.feeds import FeedItem
from rag.web.fetch import FetchResult
from rag.web.pages import decode_page, read_page, section_from_url

from web_server import ARTICLES, article_html


def _result(body: bytes, url="http://news.example/news/business/harbour.html", charset="utf-8", kind="html"):
    return FetchResult(url, url, 200, kind, "text/html", charset, body, '"e"', None, "2024-03-08T00:00:00Z")


def test_article_with_title_date_section_outlet_and_canonical_url():
    slug, title, date, section, body = ARTICLES[0]
    html = article_html(
        title, body, date, section, canonical="http://news.example/news/business/harbour.html?utm_source=rss"
    )
    art = read_page(_result(html.encode()))
    assert art.id == art.url == "http://news.example/news/business/harbour.html"
    assert art.title == title and art.section == "business" and art.outlet == "Port Elsa Gazette"
    assert art.date == "2024-03-05T09:00:00+00:00" and art.author == "Maria Lopez"
    assert "northern pier" in art.text and len(art.text_hash) == 64
    rec = art.to_record()
    assert rec["id"] == art.id and rec["text"] == art.text and rec["section"] == "business"


def test_a_canonical_url_on_another_site_is_ignored():
    html = article_html("T", "Some words here. More words there", canonical="https://evil.example/other")
    assert read_page(_result(html.encode())).id == "http://news.example/news/business/harbour.html"


def test_the_feed_and_the_url_fill_what_the_page_does_not_state():
    html = article_html("Quiet page", "A page without dates. It says little about itself", outlet=None)
    item = FeedItem("http://news.example/sport/2024/match.html", date="2024-01-02", section=None)
    art = read_page(_result(html.encode(), url="http://news.example/sport/2024/match.html"), item)
    assert art.date == "2024-01-02" and art.section == "sport" and art.outlet == "news.example"


def test_wrong_and_missing_charsets():
    text = "Café crème à la française, naïve façade"
    utf8 = article_html("Crème", text).encode("utf-8")
    assert "Café crème" in decode_page(utf8, "iso-8859-1")  # header says Latin-1, bytes are UTF-8
    cp = article_html("Crème", text).encode("cp1252")
    assert "Café crème" in decode_page(cp, None)  # no charset anywhere
    latin = article_html("Crème", text, charset_meta="iso-8859-1").encode("latin-1")
    assert "Café crème" in decode_page(latin, None)
    assert "Café crème" in decode_page(latin, "no-such-charset")
    assert "\r" not in decode_page(b"a\r\nb\rc", None)


def test_section_from_url():
    assert section_from_url("https://x.example/politics/2024/03/budget.html") == "politics"
    assert section_from_url("https://x.example/news/world/story.html") == "world"
    assert section_from_url("https://x.example/story.html") is None
    assert section_from_url("https://x.example/2024/03/story.html") is None
