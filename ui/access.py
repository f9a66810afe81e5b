"""Who may reach the web app: the login secret (flag, RAG_AUTH or RAG_AUTH_FILE) and the bind address check.

The secret is never printed, logged or written into the index manifest; messages name only where it came from.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ConfigError

__all__ = ["Credentials", "resolve_auth", "resolve_cors_origins", "is_loopback", "exposure_warning", "DEFAULT_HOST"]

DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Credentials:
    """One user name and password; `origin` says where they came from (never the values)."""

    username: str
    password: str
    origin: str

    def __repr__(self) -> str:  # keep the password out of tracebacks and logs
        return f"Credentials(username={self.username!r}, password=<hidden>, origin={self.origin!r})"

    def as_tuple(self) -> tuple[str, str]:
        return (self.username, self.password)


def _parse(value: str, origin: str) -> Credentials:
    user, sep, password = value.strip().partition(":")
    if not sep or not user or not password:
        raise ConfigError(f"{origin} must hold user:password (both non-empty)")
    return Credentials(user, password, origin)


def resolve_auth(flag: str | None, env: Mapping[str, str] | None = None) -> Credentials | None:
    """The login to require: --auth, else RAG_AUTH, else the first line of the file named by RAG_AUTH_FILE.

    Args:
        flag: the --auth value ("user:password") or None.
        env: environment (default os.environ).

    Returns:
        Credentials, or None when no login is configured.

    Raises:
        ConfigError: the value is not user:password, or the file cannot be read.
    """
    env = os.environ if env is None else env
    if flag:
        return _parse(flag, "--auth")
    if env.get("RAG_AUTH"):
        return _parse(env["RAG_AUTH"], "RAG_AUTH")
    path = env.get("RAG_AUTH_FILE")
    if path:
        try:
            first = Path(path).read_text(encoding="utf-8").splitlines()[:1]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"RAG_AUTH_FILE {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
            ) from None
        return _parse(first[0] if first else "", f"RAG_AUTH_FILE {path}")
    return None


def resolve_cors_origins(env: Mapping[str, str] | None = None) -> list[str]:
    """The browser origins RAG_CORS_ORIGINS allows to call the JSON API from their pages (comma-separated).

    Returns:
        the origins ("https://tools.example.org", "http://localhost:3000"); none when the variable is unset.

    Raises:
        ConfigError: an entry is not scheme://host[:port] (a path, "*" or a bare host is refused: name each origin).
    """
    from urllib.parse import urlsplit

    env = os.environ if env is None else env
    origins = []
    for raw in (env.get("RAG_CORS_ORIGINS") or "").split(","):
        origin = raw.strip().rstrip("/")
        if not origin:
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.username:
            raise ConfigError(
                f"RAG_CORS_ORIGINS: {raw.strip()!r} is not an origin; name each one as "
                "scheme://host[:port], e.g. https://tools.example.org (comma-separated)"
            )
        origins.append(origin)
    return origins


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, auth: Credentials | None, share: bool) -> str | None:
    """A warning to print when the app is reachable by others without a login, else None."""
    if auth is not None:
        return None
    if share:
        return (
            "warning: --share publishes this app on a public URL without a login; "
            "anyone with the link can read the articles and upload files (add --auth user:password)"
        )
    if not is_loopback(host):
        return (
            f"warning: serving on {host} without a login; anyone who can reach this address can read the "
            "articles and upload files (add --auth user:password, RAG_AUTH or RAG_AUTH_FILE)"
        )
    return None
