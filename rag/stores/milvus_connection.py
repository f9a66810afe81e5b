"""Where a Milvus store's vectors live and the one pymilvus client per process that reaches them.

A URI ending in `.db` is a Milvus Lite data folder (an embedded engine run inside this process behind a local gRPC
thread); `http(s)://host:19530` is a server. Credentials for a server come from the environment only
(`RAG_MILVUS_TOKEN`, or `RAG_MILVUS_USER` and `RAG_MILVUS_PASSWORD`): they are never logged, never put in an error
message and never written into the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rag.errors import ConfigError, IndexCorruptError, StoreUnavailableError

__all__ = [
    "Target",
    "resolve_target",
    "target_from_params",
    "CONNECTIONS",
    "credentials",
    "scrub",
    "reason",
    "TOKEN_ENV",
    "USER_ENV",
    "PASSWORD_ENV",
    "DEFAULT_LITE_NAME",
    "DEFAULT_TIMEOUT_S",
]

TOKEN_ENV = "RAG_MILVUS_TOKEN"
USER_ENV = "RAG_MILVUS_USER"
PASSWORD_ENV = "RAG_MILVUS_PASSWORD"
DEFAULT_LITE_NAME = "milvus.db"
DEFAULT_TIMEOUT_S = 30.0
_SERVER_SCHEMES = ("http", "https", "tcp", "unix", "grpc")


def _quiet_client_logs() -> None:
    # pymilvus logs every failed call with a traceback, and the Lite server logs its own side; the errors are
    # raised to us anyway and turned into one-line messages. Set after import: pymilvus configures its logger then.
    # grpc._server: the Lite server answers pymilvus's timestamp request (query_iterator) with "not implemented"
    # and grpc logs that with a traceback; the iterator then carries on with a client-side timestamp.
    for name in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Target:
    """Where the vectors live: `connect` is what pymilvus gets, `record` what the manifest keeps."""

    connect: str
    lite: bool
    record: dict[str, str]

    @property
    def shown(self) -> str:
        return self.connect


def resolve_target(uri: str, index_dir: Path) -> Target:
    """Turn a settings URI into a connection target; an empty URI means a Lite folder inside the index folder."""
    uri = (uri or "").strip()
    if not uri:
        uri = str(index_dir / DEFAULT_LITE_NAME)
    parts = urlsplit(uri)
    if parts.scheme in _SERVER_SCHEMES:
        if parts.username or parts.password or "@" in parts.netloc:
            raise ConfigError(
                "the Milvus URI holds credentials; remove them from --milvus-uri and set "
                f"{TOKEN_ENV} (or {USER_ENV} and {PASSWORD_ENV}) instead"
            )
        return Target(uri, False, {"uri": uri})
    if not uri.endswith(".db"):
        raise ConfigError(
            f"--milvus-uri {uri!r} is neither a Milvus Lite path ending in .db nor a server address "
            "(http://host:19530); pass one of those"
        )
    path = Path(uri).expanduser().resolve()
    if not path.parent.is_dir():
        raise ConfigError(
            f"the folder of the Milvus Lite path {path} does not exist; create it or pass another --milvus-uri"
        )
    try:
        inside = path.relative_to(Path(index_dir).resolve())
    except ValueError:
        return Target(str(path), True, {"uri": str(path)})
    # Kept relative to the index folder, so that a copied or moved index folder keeps working.
    return Target(str(path), True, {"uri": inside.as_posix(), "uri_base": "index_dir"})


def target_from_params(params: dict[str, Any], index_dir: Path) -> Target:
    uri = str(params.get("uri") or "")
    if params.get("uri_base") == "index_dir":
        path = (Path(index_dir) / uri).resolve()
        return Target(str(path), True, {"uri": uri, "uri_base": "index_dir"})
    if not uri:
        raise IndexCorruptError(f"{index_dir}: the manifest names no Milvus URI; run `rag rebuild-index`")
    return resolve_target(uri, index_dir)


class Connections:
    """One pymilvus client per target (and login) per process, shared by every store on it and closed with the last.

    Closing a Lite client alone leaves its server thread holding the folder's lock until the process exits;
    releasing the server when the last user closes lets another process (a later `rag rebuild-index`) open it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, list[Any]] = {}  # connect -> [client, users]

    @staticmethod
    def key(target: Target) -> str:
        # Another login (the environment changed) gets its own client; the key holds a digest, not the secret.
        login = "" if target.lite else hashlib.sha256(json.dumps(credentials(), sort_keys=True).encode()).hexdigest()
        return f"{target.connect}#{login[:16]}"

    def acquire(self, target: Target, timeout_s: float = DEFAULT_TIMEOUT_S, key: str | None = None) -> Any:
        key = key or self.key(target)
        with self._lock:
            entry = self._open.get(key)
            if entry is not None:
                entry[1] += 1
                return entry[0]
            client = _connect(target, timeout_s)
            self._open[key] = [client, 1]
            return client

    def release(self, target: Target, key: str | None = None) -> None:
        key = key or self.key(target)
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del self._open[key]
        try:
            entry[0].close()
        except Exception:  # noqa: BLE001 - closing a dead channel is not an error worth raising
            pass
        if target.lite:
            from milvus_lite import server_manager_instance

            server_manager_instance.release_server(target.connect)


CONNECTIONS = Connections()


def credentials() -> dict[str, str]:
    """pymilvus keyword arguments for a server's credentials, from the environment only."""
    token = os.environ.get(TOKEN_ENV, "")
    user, password = os.environ.get(USER_ENV, ""), os.environ.get(PASSWORD_ENV, "")
    if token:
        return {"token": token}
    if user:
        return {"user": user, "password": password}
    return {}


def scrub(text: str) -> str:
    """`text` with every credential value from the environment replaced by ***, for messages and logs."""
    secrets = {os.environ.get(TOKEN_ENV, ""), os.environ.get(PASSWORD_ENV, "")}
    token = os.environ.get(TOKEN_ENV, "")
    if ":" in token:
        secrets.add(token.split(":", 1)[1])  # a user:password token: the password alone is secret too
    for secret in sorted((x for x in secrets if len(x) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _reachable(uri: str, timeout_s: float = 3.0) -> bool:
    """Whether anything accepts a TCP connection at the server URI's host and port."""
    parts = urlsplit(uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 19530)
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _connect(target: Target, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError("the Milvus store needs pymilvus and milvus-lite; run `make install`") from None
    _quiet_client_logs()
    login = {} if target.lite else credentials()
    try:
        return MilvusClient(target.connect, timeout=timeout_s, **login)
    except Exception as exc:  # noqa: BLE001 - pymilvus raises several unrelated classes here
        if target.lite and _lite_locked(target.connect):
            raise StoreUnavailableError(
                f"the Milvus Lite folder {target.connect} is open in another process (Milvus Lite allows one "
                "process per folder); stop that process (`rag serve`, a running build), or use a Milvus server"
            ) from None
        # The messages name the URI and the exception class only: pymilvus messages may echo connection details.
        if target.lite or not _reachable(target.connect):
            raise StoreUnavailableError(
                f"cannot reach Milvus at {target.shown} ({type(exc).__name__}): start the Milvus server there, or "
                "rebuild the index with --milvus-uri naming a running one"
            ) from None
        if "token" in login:
            raise StoreUnavailableError(
                f"Milvus at {target.shown} refused the connection with the token in {TOKEN_ENV}: set a valid "
                f"token (user:password or an API key)"
            ) from None
        if login:
            raise StoreUnavailableError(
                f"Milvus at {target.shown} refused the user and password in {USER_ENV} / {PASSWORD_ENV}: set the "
                "right ones"
            ) from None
        raise StoreUnavailableError(
            f"Milvus at {target.shown} refused the connection; it may require a login: set {TOKEN_ENV} "
            f"(or {USER_ENV} and {PASSWORD_ENV})"
        ) from None


def _lite_locked(path: str) -> bool:
    import fcntl

    lock = Path(path) / "LOCK"
    if not lock.exists():
        return False
    try:
        with open(lock, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False
    except OSError:
        return True


def reason(exc: BaseException) -> str:
    """One line on why a pymilvus or gRPC call failed, with any credential from the environment masked."""
    details, code = getattr(exc, "details", None), getattr(exc, "code", None)
    if callable(details) and callable(code):  # a raw grpc.RpcError
        text = f"{code().name}: {details()}"
    else:
        text = str(getattr(exc, "message", "") or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return scrub(lines[0][:200] if lines else type(exc).__name__)
