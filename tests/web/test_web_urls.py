"""rag.web.urls: schemes, hosts and every resolved address are checked before any connection."""

from __future__ import annotations

import pytest

from rag.errors import FetchError
from rag.web.urls import address_problem, check_url, normalize, same_site


def _resolver(table):
    def resolve(host, port):
        if host not in table:
            raise OSError("the host name does not resolve")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.5.5.5",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "100.64.0.1",
        "::1",
        "fc00::1",
        "fd12::3",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::",
        "198.18.0.1",
        "240.0.0.1",
    ],
)
def test_private_and_loopback_addresses_are_refused(address):
    problem = address_problem(address)
    assert problem and "allow_private_urls" in problem or "never fetched" in (problem or "")


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00:ec2::254",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "::ffff:169.254.169.254",
        "100.100.100.200",
    ],
)
def test_metadata_link_local_and_unspecified_are_refused_even_when_private_is_allowed(address):
    assert address_problem(address, allow_private=True) is not None
    assert address_problem(address, allowed=[address]) is not None


def test_public_addresses_pass_and_private_ones_only_when_allowed():
    assert address_problem("93.184.216.34") is None
    assert address_problem("2606:2800:220:1:248:1893:25c8:1946") is None
    assert address_problem("10.1.2.3", allow_private=True) is None
    assert address_problem("127.0.0.1", allowed=["127.0.0.1"]) is None
    assert address_problem("127.0.0.2", allowed=["127.0.0.1"]) is not None


@pytest.mark.parametrize(
    "url, reason",
    [
        ("file:///etc/passwd", "scheme file:"),
        ("ftp://example.com/x", "scheme ftp:"),
        ("gopher://127.0.0.1:70/", "scheme gopher:"),
        ("javascript:alert(1)", "scheme javascript:"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http:///nohost", "names no host"),
        ("http://exa mple.com/", "spaces or control"),
        ("", "no URL given"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url, reason):
    with pytest.raises(FetchError) as err:
        check_url(url, resolver=_resolver({}))
    assert reason in str(err.value)


def test_every_resolved_address_must_be_public():
    table = {
        "news.example": ["93.184.216.34"],
        "mixed.example": ["93.184.216.34", "10.0.0.7"],
        "rebind.example": ["169.254.169.254"],
    }
    target = check_url("https://news.example/a?b=1", resolver=_resolver(table))
    assert (target.address, target.host, target.port, target.path) == ("93.184.216.34", "news.example", 443, "/a?b=1")
    with pytest.raises(FetchError, match="10.0.0.7"):
        check_url("http://mixed.example/", resolver=_resolver(table))
    with pytest.raises(FetchError, match="metadata"):
        check_url("http://rebind.example/latest/meta-data/", resolver=_resolver(table), allow_private=True)
    with pytest.raises(FetchError, match="does not resolve"):
        check_url("http://nowhere.example/", resolver=_resolver(table))


def test_literal_addresses_and_localhost_are_refused_without_the_setting():
    for url in (
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://169.254.169.254/",
        "http://0x7f000001/",
        "http://2130706433/",
    ):
        with pytest.raises(FetchError):
            check_url(url, resolver=_resolver({"0x7f000001": ["127.0.0.1"], "2130706433": ["127.0.0.1"]}))
    with pytest.raises(FetchError, match="loopback"):
        check_url("http://localhost/", resolver=_resolver({"localhost": ["127.0.0.1", "::1"]}))


def test_relative_redirect_targets_resolve_against_the_base():
    target = check_url("/next", base="http://127.0.0.1:9/a/b", allowed=["127.0.0.1"])
    assert target.url == "http://127.0.0.1:9/next"


def test_normalize_and_same_site():
    assert normalize("HTTP://Example.COM:80/a?utm_source=x&b=2&a=1#frag") == "http://example.com/a?a=1&b=2"
    assert same_site("https://www.example.com/a", "http://example.com/b")
    assert not same_site("https://example.com/a", "https://example.org/a")
