"""The /api/ router and what every endpoint shares: the login check, the documented error answers, the library of
the app, and engine calls in worker threads under the app's limit. `ui.api` and `ui.api_watched` add routes to it."""

from __future__ import annotations

import functools
import secrets
from base64 import b64decode
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from rag.library.library import Library
from ui.access import Credentials
from ui.api_errors import ApiError
from ui.api_models import (
    ErrorOut,
)

__all__ = ["ERRORS", "POSTED", "REALM", "check_login", "library_of", "router", "run_engine"]

REALM = "rag-articles"


_basic = HTTPBasic(
    auto_error=False,
    realm=REALM,
    description="The web app's login (--auth, RAG_AUTH or RAG_AUTH_FILE), when it has one.",
)


def check_login(request: Request) -> None:
    """Raise ApiError(401) unless the request carries the server's login as HTTP Basic (no login: all pass)."""
    expected: Credentials | None = request.app.state.credentials
    if expected is None:
        return
    scheme, _, param = request.headers.get("authorization", "").partition(" ")
    user = password = None
    if scheme.lower() == "basic":
        try:
            user, sep, password = b64decode(param.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            user = None
        else:
            user = user if sep else None
    challenge = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
    if user is None:
        raise ApiError(
            401,
            "this server requires a login: send the web app's user name and password as HTTP Basic "
            "credentials (curl -u user:password)",
            1,
            challenge,
        )
    # Both compared, always, so the time taken does not tell which of the two was wrong.
    ok_user = secrets.compare_digest(user.encode(), expected.username.encode())
    ok_password = secrets.compare_digest((password or "").encode(), expected.password.encode())
    if not (ok_user and ok_password):
        raise ApiError(401, "wrong user name or password for this server", 1, challenge)


async def _require_login(request: Request, _: Annotated[HTTPBasicCredentials | None, Security(_basic)] = None) -> None:
    # The Security parameter only declares the scheme in the OpenAPI document; check_login does the checking.
    check_login(request)


router = APIRouter(dependencies=[Depends(_require_login)])
"""Every /api/ endpoint: add new ones here, so that they share the login, the error handlers and the worker limit."""


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a bad question, filter, history or body (the CLI's exit code 2)"},
    401: {"model": ErrorOut, "description": "the server has a login and the request did not send it"},
    503: {"model": ErrorOut, "description": "no index can be opened now (missing, damaged, or being replaced)"},
}


POSTED = {**ERRORS, 413: {"model": ErrorOut, "description": "the body is over 1 MB"}}


def library_of(request: Request) -> Library:
    return request.app.state.library


async def run_engine(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` in a worker thread, at most the app's `workers` at a time; the event loop stays free."""
    state = request.app.state
    if state.limiter is None:  # created in the server's event loop, on first use
        state.limiter = anyio.CapacityLimiter(state.workers)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=state.limiter)
