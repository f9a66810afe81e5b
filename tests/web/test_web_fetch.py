"""rag.web.fetch and rag.web.robots against a local server that misbehaves on purpose (127.0.0.1 only)."""

from __future__ import annotations

import time

import pytest

from rag.errors import FetchError
from rag.web.fetch import USER_AGENT, Fetcher

from conftest import local_fetcher
from web_server import WebServer, article_html


def fetcher(**kw) -> Fetcher:
    return local_fetcher(**{"timeout_s": 1.0, **kw})


def test_fetches_a_page_with_the_project_user_agent_and_validators(site):
    result = fetcher().fetch(site.url("/news/business/harbour.html"))
    assert result.status == 200 and result.kind == "html" and result.etag
    assert b"northern pier" in result.body
    path, headers = site.requests[-1]
    assert headers["User-Agent"] == USER_AGENT and "rag-articles/" in USER_AGENT
    again = fetcher().fetch(site.url("/news/business/harbour.html"), etag=result.etag)
    assert again.not_modified and again.body == b""


def test_loopback_is_refused_without_allow_private_urls(site):
    with pytest.raises(FetchError, match="loopback.*allow_private_urls"):
        Fetcher(delay_s=0).fetch(site.url("/feed.xml"))
    assert not site.requests  # refused before connecting
    assert Fetcher(allow_private=True, delay_s=0).fetch(site.url("/feed.xml")).kind == "feed"


@pytest.mark.parametrize(
    "location, reason",
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://10.0.0.5/admin", "10.0.0.5, a private address"),
        ("http://[::ffff:192.168.0.1]/", "private"),
        ("http://127.0.0.2/", "loopback"),
        ("file:///etc/passwd", "scheme file:"),
    ],
)
def test_a_redirect_to_a_refused_address_is_refused_after_the_redirect(site, location, reason):
    site.set("/go", b"", None, status=302, headers={"Location": location}, etag=False)
    with pytest.raises(FetchError, match=reason):
        fetcher().fetch(site.url("/go"))
    assert site.hits("/go") == 1  # the first hop was fetched; the target never was (no traffic leaves 127.0.0.1)


def test_a_redirect_to_a_host_that_resolves_privately_is_refused():
    """DNS rebinding: the name is resolved at each hop and every address must pass."""
    with WebServer(lifetime_s=60) as server:
        server.set("/go", b"", None, status=301, headers={"Location": "http://internal.example/secret"}, etag=False)
        table = {"internal.example": ["10.20.30.40"]}
        f = fetcher(resolver=lambda host, port: table[host])
        with pytest.raises(FetchError, match="10.20.30.40"):
            f.fetch(server.url("/go"))


def test_redirects_are_followed_and_bounded(site):
    site.set("/a", b"", None, status=301, headers={"Location": "/news/business/harbour.html"}, etag=False)
    assert fetcher().fetch(site.url("/a")).final_url.endswith("/news/business/harbour.html")
    site.set("/loop1", b"", None, status=302, headers={"Location": "/loop2"}, etag=False)
    site.set("/loop2", b"", None, status=302, headers={"Location": "/loop1"}, etag=False)
    with pytest.raises(FetchError, match="redirect loop"):
        fetcher().fetch(site.url("/loop1"))
    for i in range(10):
        site.set(f"/hop{i}", b"", None, status=302, headers={"Location": f"/hop{i + 1}"}, etag=False)
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetcher().fetch(site.url("/hop0"))


def test_a_server_that_never_answers_times_out(site):
    def hang(handler):
        site.stopping.wait(10)

    site.handle("/hang", hang)
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="no answer within 0.5 s"):
        fetcher(timeout_s=0.5).fetch(site.url("/hang"))
    assert time.monotonic() - t0 < 3


def test_a_trickling_response_is_cut_by_the_total_time_limit(site):
    def trickle(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.end_headers()
        for _ in range(100):
            if site.stopping.wait(0.2):
                return
            handler.wfile.write(b"<p>x</p>")
            handler.wfile.flush()

    site.handle("/trickle", trickle)
    with pytest.raises(FetchError, match="took longer than 2 s"):
        fetcher(timeout_s=0.5).fetch(site.url("/trickle"))


def test_responses_over_the_cap_are_refused(site):
    big = b"<html><body>" + b"<p>words words words</p>" * 100_000 + b"</body></html>"
    site.set("/big.html", big)
    with pytest.raises(FetchError, match="over the 1 MB limit"):
        fetcher(max_bytes=1024 * 1024).fetch(site.url("/big.html"))

    def stream(handler):  # no Content-Length: the cap applies while streaming
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Connection", "close")
        handler.end_headers()
        for _ in range(40):
            handler.wfile.write(b"x" * 65536)

    site.handle("/stream.html", stream)
    with pytest.raises(FetchError, match="over the 1 MB limit.*stopped reading"):
        fetcher(max_bytes=1024 * 1024).fetch(site.url("/stream.html"))


@pytest.mark.parametrize("status, reason", [(404, "HTTP 404"), (410, "HTTP 410"), (500, "HTTP 500"), (403, "HTTP 403")])
def test_http_errors_name_the_status(site, status, reason):
    site.set("/err", b"no", "text/plain", status=status, etag=False)
    with pytest.raises(FetchError, match=reason):
        fetcher().fetch(site.url("/err"))


def test_429_and_503_are_retried_with_backoff_honouring_retry_after(site):
    calls = []

    def busy(handler):
        calls.append(time.monotonic())
        if len(calls) < 3:
            handler._send(429 if len(calls) == 1 else 503, b"busy", "text/plain", {"Retry-After": "0"})
        else:
            handler._send(200, article_html("Fine", "All good now. It works"), "text/html")

    site.handle("/busy", busy)
    assert fetcher().fetch(site.url("/busy")).status == 200
    assert len(calls) == 3
    site.set("/always429", b"busy", "text/plain", status=429, etag=False)
    with pytest.raises(FetchError, match="HTTP 429.*after 3 tries"):
        fetcher(retries=2).fetch(site.url("/always429"))
    site.set("/later", b"busy", "text/plain", status=503, headers={"Retry-After": "3600"}, etag=False)
    with pytest.raises(FetchError, match="asks to wait 3600 s"):
        fetcher().fetch(site.url("/later"))
    assert site.hits("/later") == 1


def test_content_types_are_checked(site):
    site.set("/image.png", b"\x89PNG....", "image/png")
    with pytest.raises(FetchError, match="content type image/png is not read"):
        fetcher().fetch(site.url("/image.png"))
    site.set("/page-as-feed", article_html("T", "Body text here"), "text/html")
    with pytest.raises(FetchError, match="where feed was expected"):
        fetcher().fetch(site.url("/page-as-feed"), accept=("feed",))
    site.set("/untyped", b"<!DOCTYPE html><html><body><p>Hello</p></body></html>", None)
    assert fetcher().fetch(site.url("/untyped")).kind == "html"
    site.set("/untyped-bin", b"\x00\x01\x02binary", None)
    with pytest.raises(FetchError, match="no Content-Type"):
        fetcher().fetch(site.url("/untyped-bin"))


def test_robots_txt_is_obeyed_and_read_once(site):
    site.set("/private/secret.html", article_html("Secret", "Nobody should index this page"))
    f = fetcher()
    with pytest.raises(FetchError, match="robots.txt"):
        f.fetch(site.url("/private/secret.html"))
    f.fetch(site.url("/news/business/harbour.html"))
    assert site.hits("/robots.txt") == 1 and site.hits("/private/secret.html") == 0
    site.set("/robots.txt", b"oops", "text/plain", status=500, etag=False)
    with pytest.raises(FetchError, match="robots.txt could not be read"):
        fetcher().fetch(site.url("/news/business/harbour.html"))
    del site.routes["/robots.txt"]  # missing robots.txt: everything allowed
    assert fetcher().fetch(site.url("/news/business/harbour.html")).status == 200


def test_requests_to_one_host_are_spaced_by_the_delay(site):
    f = fetcher(delay_s=0.3, respect_robots=False)
    t0 = time.monotonic()
    for _ in range(3):
        f.fetch(site.url("/news/business/harbour.html"))
    assert time.monotonic() - t0 >= 0.6


def test_crawl_delay_raises_the_delay(site):
    site.set("/robots.txt", "User-agent: *\nCrawl-delay: 1\n", "text/plain")
    f = fetcher()
    t0 = time.monotonic()
    f.fetch(site.url("/news/business/harbour.html"))
    f.fetch(site.url("/news/culture/library.html"))
    assert time.monotonic() - t0 >= 1.0
