"""Which URLs may be fetched: http(s) only, and only hosts whose every address is public.

Whoever can reach the web app may submit a URL, so a fetch must not become a way into the server's own network
(server-side request forgery). A URL is checked after DNS resolution, every address the name resolves to must
be public, and the connection then goes to the vetted address itself, so a second lookup (DNS rebinding) cannot
switch it. Redirects are checked again, one by one, by the fetcher.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from rag.errors import FetchError

__all__ = [
    "Target",
    "Resolver",
    "check_url",
    "address_problem",
    "normalize",
    "same_site",
    "system_resolver",
    "MAX_URL_CHARS",
]

MAX_URL_CHARS = 2048

Resolver = Callable[[str, int], list[str]]
"""resolver(host, port) -> the IP addresses (text) the host name resolves to."""

# Never fetched, not even with allow_private_urls: link-local addresses hold the cloud metadata services
# (169.254.169.254, fd00:ec2::254, 100.100.100.200) that hand out credentials.
_ALWAYS_REFUSED = [
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
        "0.0.0.0/8",
        "::/128",
        "224.0.0.0/4",
        "ff00::/8",
        "255.255.255.255/32",
    )
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")


@dataclass(frozen=True)
class Target:
    """A URL cleared for fetching: connect to `address` (already vetted) and send `host` as the Host header."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    path: str  # path and query, as sent in the request line


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for `host` (IPv4 and IPv6)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"the host name does not resolve ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))


def _embedded(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64 or 6to4), else the address itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if ip in _6TO4 and ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def address_problem(address: str, *, allow_private: bool = False, allowed: Iterable[str] = ()) -> str | None:
    """Why a connection to `address` is refused, or None when it may be used.

    Args:
        address: an IPv4 or IPv6 address as text.
        allow_private: also allow loopback, private (RFC 1918), shared and unique-local addresses.
        allowed: exact addresses allowed whatever their kind (a test server on 127.0.0.1), never a metadata one.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    inner = _embedded(ip)
    for candidate in {ip, inner}:
        if any(candidate in net for net in _ALWAYS_REFUSED if net.version == candidate.version):
            return f"it resolves to {address}, a link-local, metadata or broadcast address, which is never fetched"
    if str(ip) in set(allowed) or str(inner) in set(allowed):
        return None
    if all(c.is_global for c in {ip, inner}) and not (inner.is_multicast or inner.is_reserved):
        return None
    if allow_private and (
        inner.is_private
        or inner.is_loopback
        or ip.is_private
        or ip.is_loopback
        or inner in ipaddress.ip_network("100.64.0.0/10")
    ):
        return None
    kind = (
        "loopback"
        if inner.is_loopback
        else "private"
        if inner.is_private
        else "reserved"
        if inner.is_reserved
        else "multicast"
        if inner.is_multicast
        else "non-public"
    )
    return (
        f"it resolves to {address}, a {kind} address; only public addresses are fetched "
        "(set allow_private_urls / RAG_ALLOW_PRIVATE_URLS=1 to fetch from this machine's own network)"
    )


def check_url(
    url: str,
    *,
    allow_private: bool = False,
    allowed: Iterable[str] = (),
    resolver: Resolver | None = None,
    base: str | None = None,
) -> Target:
    """Clear one URL for fetching: scheme, host, port, then every address it resolves to.

    Args:
        url: the URL (relative ones are resolved against `base`, as in a redirect's Location).
        allow_private, allowed: see address_problem.
        resolver: host name -> addresses (default: the system resolver); tests inject one.

    Returns:
        Target: the address to connect to is one of the vetted ones.

    Raises:
        FetchError: naming the URL and why it is refused.
    """
    raw = (url or "").strip()
    if base:
        raw = urljoin(base, raw)
    if not raw:
        raise FetchError("(empty)", "no URL given; pass an http:// or https:// address")
    shown = raw[:200]
    if len(raw) > MAX_URL_CHARS:
        raise FetchError(shown, f"URL longer than {MAX_URL_CHARS} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in raw):
        raise FetchError(shown, "URL contains spaces or control characters; percent-encode them")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise FetchError(shown, f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(
            shown, f"scheme {scheme + ':' if scheme else '(none)'} is not fetched; only http:// and https:// URLs are"
        )
    if parts.username is not None or parts.password is not None:
        raise FetchError(shown, "URLs with a user name or password are not fetched")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchError(shown, "the URL names no host")
    try:
        host_ascii = host.encode("idna").decode("ascii") if not _is_ip(host) else host
    except UnicodeError:
        raise FetchError(shown, "the host name is not a valid international domain name") from None
    port = port or (443 if scheme == "https" else 80)
    if _is_ip(host):
        addresses = [host]
    else:
        try:
            addresses = (resolver or system_resolver)(host_ascii, port)
        except OSError as exc:
            raise FetchError(shown, f"{exc}; check the address") from None
        if not addresses:
            raise FetchError(shown, "the host name does not resolve; check the address")
    for address in addresses:
        problem = address_problem(address, allow_private=allow_private, allowed=allowed)
        if problem:
            raise FetchError(shown, f"refused: {problem}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    netloc = host_ascii if ":" not in host_ascii else f"[{host_ascii}]"
    if parts.port:
        netloc += f":{parts.port}"
    clean = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return Target(clean, scheme, host_ascii, port, addresses[0], path)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def normalize(url: str) -> str:
    """The form a URL is known by (lower-case scheme and host, default port and fragment dropped, tracking
    parameters such as utm_* removed, query sorted), so that two spellings of one page are one article."""
    from courlan import normalize_url

    try:
        return normalize_url(url.strip(), strict=False).split("#", 1)[0]
    except (ValueError, AttributeError):
        return url.strip().split("#", 1)[0]


def same_site(a: str, b: str) -> bool:
    """Whether two URLs have the same host (ignoring a leading www.)."""

    def host(u: str) -> str:
        h = (urlsplit(u).hostname or "").lower()
        return h[4:] if h.startswith("www.") else h

    try:
        return bool(host(a)) and host(a) == host(b)
    except ValueError:
        return False
