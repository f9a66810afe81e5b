"""Errors of the JSON API: every failure is `{"error": <one line>, "exit_code": <the CLI's>}` with an HTTP status.

The library's errors keep the command line's message and map to a status by their exit code (2: 400, 4-8: 503);
a request FastAPI cannot read (wrong JSON types, a missing or unknown field, a body over the limit) gets a message
naming the field and what it must be; anything unexpected is a 500 that names no more than the error's type, with
the traceback in the server's log only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.errors import RagError

__all__ = ["ApiError", "BodyLimit", "install_error_handlers", "status_for", "validation_message", "MAX_BODY_BYTES"]

log = logging.getLogger("ui.api")

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body (1 MB): a question of 2,000 characters with 20 turns of history fits many times over."""

# exit code -> HTTP status: 2 a bad question, filter, history or setting; 3 refused input; 4-8 the index or its
# store cannot be used now; 9 a web page that could not be fetched.
_STATUS = {2: 400, 3: 400, 4: 503, 5: 503, 6: 503, 7: 503, 8: 503, 9: 502}


class ApiError(Exception):
    """An error an endpoint answers with: HTTP status, one-line message, the CLI exit code of its family."""

    def __init__(self, status: int, message: str, exit_code: int = 1, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.exit_code = exit_code
        self.headers = headers


TOO_LARGE = (
    f"the request body is over the {MAX_BODY_BYTES // (1024 * 1024)} MB limit; send a shorter question or "
    "history (only the last 20 turns are read)"
)


class BodyLimit:
    """Refuse a request body over `max_bytes` with a JSON 413: at once when Content-Length says so, else as soon
    as the bytes received pass the limit (a chunked body), before any of it is parsed."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await error_response(413, TOO_LARGE, 2)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI passes an HTTPException raised while it reads the body on to the handlers below.
                    raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, limited, send)


def status_for(exc: RagError) -> int:
    """The HTTP status of a library error, from its exit code (500 for the catch-all exit code 1)."""
    return _STATUS.get(exc.exit_code, 500)


def error_response(status: int, message: str, exit_code: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "exit_code": exit_code}, status_code=status, headers=headers)


def _shown(value: Any) -> str:
    """A JSON value as a message names it: `the text "5"`, `the number 5`, `a list`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}" + ("…" if len(value) > 40 else "")
    if isinstance(value, (bytes, bytearray)):
        return "a body that is not JSON"
    return "a list" if isinstance(value, (list, tuple)) else "an object"


_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _field(loc: tuple) -> str:
    """('body', 'section', 0) -> "section item 1"; ('query', 'page') -> "page"."""
    parts = [p for p in loc[1:]] if loc and loc[0] in ("body", "query", "path") else list(loc)
    name = ".".join(str(p) for p in parts if isinstance(p, str)) or "the body"
    items = [p for p in parts if isinstance(p, int)]
    return name + "".join(f" item {i + 1}" for i in items)


def _fields_of(request: Request) -> list[str]:
    """The body fields the endpoint takes (for "unknown field" messages), when its body is a model."""
    field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def validation_message(errors: list[dict], request: Request) -> str:
    """One line for all of a request's validation errors, each naming the field and what it must be."""
    out: list[str] = []
    for e in errors:
        kind, loc, value = e.get("type", ""), tuple(e.get("loc", ())), e.get("input")
        name = _field(loc)
        if kind == "json_invalid":
            out.append(
                f"the body is not JSON ({e.get('ctx', {}).get('error', 'unreadable')} at character "
                f"{loc[1] if len(loc) > 1 else 0}); send a JSON object"
            )
        elif loc[:1] == ("body",) and len(loc) == 1:
            content_type = request.headers.get("content-type", "")
            if kind == "missing":
                out.append('the body is empty; send a JSON object such as {"question": "..."}')
            elif "json" not in content_type:
                out.append(
                    f"the body must be JSON sent with Content-Type: application/json (got "
                    f"{content_type or 'no Content-Type'}); with curl add -H 'Content-Type: application/json'"
                )
            else:
                out.append(f"the body must be a JSON object, got {_shown(value)}")
        elif kind == "missing":
            out.append(f"{name} is required")
        elif kind == "extra_forbidden":
            known = _fields_of(request)
            out.append(f"unknown field {name!r}" + (f"; the fields are: {', '.join(known)}" if known else ""))
        elif kind == "literal_error":
            out.append(
                f"{name} must be {e.get('ctx', {}).get('expected', 'one of the listed values')}, got {_shown(value)}"
            )
        elif kind in _EXPECTED:
            out.append(f"{name} must be {_EXPECTED[kind]}, got {_shown(value)}")
        else:
            out.append(f"{name}: {e.get('msg', 'invalid')}")
    return "; ".join(dict.fromkeys(out))


def install_error_handlers(app: FastAPI, login_check: Callable[[Request], None]) -> None:
    """Answer every failure of `app` as JSON. `login_check(request)` raises ApiError(401) for a request without
    the login, so that an unknown path tells such a request nothing either."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.exit_code, exc.headers)

    @app.exception_handler(RagError)
    async def _rag_error(request: Request, exc: RagError) -> JSONResponse:
        return error_response(status_for(exc), str(exc), exc.exit_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, validation_message(list(exc.errors()), request), 2)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:
            return error_response(413, TOO_LARGE, 2)
        try:
            login_check(request)
        except ApiError as denied:
            return error_response(denied.status, denied.message, denied.exit_code, denied.headers)
        if exc.status_code == 404:
            return error_response(
                404, f"no such endpoint: {request.method} {request.url.path}; the endpoints are listed at /api/docs", 1
            )
        if exc.status_code == 405:
            return error_response(
                405, f"{request.url.path} does not take {request.method}; see /api/docs", 1, dict(exc.headers or {})
            )
        return error_response(exc.status_code, str(exc.detail), 1, dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the server's log has the details", 1)
