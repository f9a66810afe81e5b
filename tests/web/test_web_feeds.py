"""rag.web.feeds: RSS, Atom, sitemaps, feed discovery, and hostile XML."""

from __future__ import annotations

import time

import pytest

from rag.errors import FetchError
from rag.web.feeds import discover_feeds, looks_like_feed, parse_feed

from web_server import ARTICLES, atom, rss, sitemap

BASE = "http://news.example"
ITEMS = [(f"/news/{sec}/{slug}.html", title, date, sec) for slug, title, date, sec, _ in ARTICLES]


def test_rss_items_with_dates_and_sections_newest_first():
    feed = parse_feed(rss(BASE, ITEMS).encode(), BASE + "/feed.xml")
    assert feed.kind == "rss" and feed.title == "Port Elsa Gazette"
    assert [i.url for i in feed.items] == [BASE + p for p, *_ in reversed(ITEMS)]
    storm = feed.items[0]
    assert storm.date == "2024-03-07T07:15:00+00:00" and storm.section == "weather" and storm.title


def test_atom_and_sitemap():
    feed = parse_feed(atom(BASE, ITEMS).encode(), BASE + "/atom.xml")
    assert feed.kind == "atom" and len(feed.items) == 3 and feed.items[-1].section == "business"
    sm = parse_feed(sitemap(BASE, [(p, d[:10]) for p, _, d, _ in ITEMS]).encode(), BASE + "/sitemap.xml")
    assert sm.kind == "sitemap" and sm.items[0].updated == "2024-03-07"
    index = parse_feed(
        b'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>/s1.xml</loc></sitemap></sitemapindex>",
        BASE + "/index.xml",
    )
    assert index.kind == "sitemap-index" and index.items[0].url == BASE + "/s1.xml"


def test_relative_and_non_http_links():
    body = (
        b'<rss version="2.0"><channel><item><link>/a.html</link></item><item><link>javascript:x</link></item>'
        b"<item><guid>https://news.example/b.html</guid></item><item><title>no link</title></item></channel></rss>"
    )
    assert [i.url for i in parse_feed(body, BASE + "/f/feed.xml").items] == [
        BASE + "/a.html",
        "https://news.example/b.html",
    ]


def test_a_feed_of_ten_thousand_items_parses_quickly():
    items = [(f"/n/{i}.html", f"Item {i}", "2024-01-01T00:00:00Z", "misc") for i in range(10_000)]
    body = rss(BASE, items).encode()
    t0 = time.perf_counter()
    feed = parse_feed(body, BASE)
    assert len(feed.items) == 10_000 and time.perf_counter() - t0 < 5


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<rss><channel><item><title>&lol2;</title><link>http://x.example/</link></item></channel></rss>",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><rss><channel><item>'
        b"<title>&xxe;</title><link>http://x.example/</link></item></channel></rss>",
    ],
)
def test_entity_declarations_are_refused(body):
    with pytest.raises(FetchError, match="declares entities"):
        parse_feed(body, BASE)


@pytest.mark.parametrize(
    "body, reason", [(b"not xml at all", "not a readable feed"), (b"<html><body>hi</body></html>", "not an RSS")]
)
def test_not_a_feed(body, reason):
    with pytest.raises(FetchError, match=reason):
        parse_feed(body, BASE)


def test_discovery_and_sniffing():
    page = (
        '<html><head><base href="/sub/"><link rel="alternate" type="application/rss+xml" href="feed.xml">'
        '<link rel="alternate" type="application/atom+xml" href="https://news.example/atom.xml">'
        '<link rel="stylesheet" href="x.css"></head></html>'
    )
    assert discover_feeds(page, BASE + "/") == [BASE + "/sub/feed.xml", "https://news.example/atom.xml"]
    assert looks_like_feed(b'<?xml version="1.0"?>\n<!-- hi --><rss version="2.0">')
    assert not looks_like_feed(b"<!DOCTYPE html><html>")
