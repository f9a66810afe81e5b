"""The JSON HTTP API at /api/ beside the web app: the same answers and errors as `rag ask --json` and `rag search --json`.

One APIRouter holds every endpoint and carries the login check, so a route added to it is behind the login like
the rest; `create_api()` makes the FastAPI app that `ui.server` mounts at /api, with the JSON error handlers of
`ui.api_errors`, the 1 MB body limit and, only when RAG_CORS_ORIGINS names origins, CORS.

Engine work runs in worker threads, at most `workers` at a time (the web app's queue has as many): further requests
wait their turn rather than being refused.

Example:
    curl -u user:password -H 'Content-Type: application/json' -d '{"question": "When could the pause be lifted?"}' \\
        http://127.0.0.1:7860/api/ask
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse

from rag import __version__
from rag.index.catalog import DocumentInfo
from rag.library.library import Library
from rag.library.listing import LIST_SORTS
from ui.access import Credentials
from ui.api_docs import docs_html
from ui.api_errors import ApiError, BodyLimit, install_error_handlers
from ui.api_models import (
    AnswerOut,
    ArticleListing,
    ArticleOut,
    AskRequest,
    ErrorOut,
    HealthOut,
    PassageOut,
    SearchRequest,
)
from ui.api_router import ERRORS, POSTED, check_login, library_of, router, run_engine

__all__ = ["create_api", "ApiError"]


def _openapi_without_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """app.openapi with FastAPI's automatic 422 answers left out: this API answers a request it cannot read with
    400 and an ErrorOut, like every other bad request."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = plain()
            for methods in doc.get("paths", {}).values():
                for op in methods.values():
                    op.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                doc.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi


@router.post(
    "/ask",
    response_model=AnswerOut,
    responses=POSTED,
    summary="Answer a question with cited quotes",
    description="The answer `rag ask --json` prints: the quoted sentences with their citations (article, "
    "character span, short answer), or an abstention with the nearest passages. With "
    "`history`, a follow-up is read in the light of the earlier turns (`read_as`, `follows`).",
)
async def ask(body: AskRequest, request: Request) -> JSONResponse:
    library = library_of(request)
    answer = await run_engine(
        request,
        library.ask,
        body.question,
        body.k,
        body.doc_ids,
        since=body.since,
        until=body.until,
        section=body.section,
        outlet=body.outlet,
        sort=body.sort,
        history=body.history,
        sources=body.sources,
        abstain_threshold=body.abstain_threshold,
    )
    # The dict itself, not re-validated through AnswerOut: the bytes are those of `rag ask --json`.
    return JSONResponse(answer.to_dict())


@router.post(
    "/search",
    response_model=list[PassageOut],
    responses=POSTED,
    summary="Ranked passages for a query",
    description="The passages `rag search --json` prints, best first (or newest article first), with scores.",
)
async def search(body: SearchRequest, request: Request) -> JSONResponse:
    library = library_of(request)
    passages = await run_engine(
        request,
        library.search,
        body.question,
        body.k,
        body.doc_ids,
        since=body.since,
        until=body.until,
        section=body.section,
        outlet=body.outlet,
        sort=body.sort,
        sources=body.sources,
    )
    return JSONResponse([p.to_dict() for p in passages])


def _row(d: DocumentInfo) -> dict[str, Any]:
    return {
        "id": d.id,
        "title": d.title,
        "source": d.source,
        "date": d.date,
        "section": d.section,
        "outlet": d.outlet,
        "author": d.author,
        "url": d.url,
        "tags": list(d.tags),
        "passages": d.chunks,
    }


@router.get(
    "/articles",
    response_model=ArticleListing,
    responses=ERRORS,
    summary="The library listing",
    description="The indexed articles as the Library tab lists them: searched (every word in the title, id, "
    "section, outlet, author or tags), filtered, sorted in natural order, one page at a time, "
    "with counts by section and by month over all matches.",
)
async def articles(
    request: Request,
    q: Annotated[str, Query(description="words that must all appear (any case)", examples=["Time Warner"])] = "",
    section: Annotated[str | None, Query(description="only this section", examples=["business"])] = None,
    outlet: Annotated[str | None, Query(description="only this outlet")] = None,
    sort: Annotated[str, Query(description=f"one of: {', '.join(LIST_SORTS)}", examples=["date"])] = "id",
    descending: Annotated[bool, Query(description="reverse the order")] = False,
    page: Annotated[int, Query(description="page, from 1 (past the last: the last)", examples=[2])] = 1,
    per_page: Annotated[int, Query(description="rows per page, 1-500")] = 50,
) -> JSONResponse:
    library = library_of(request)
    listing = await run_engine(
        request,
        library.listing,
        q,
        section=section,
        outlet=outlet,
        sort=sort,
        descending=descending,
        page=page,
        per_page=per_page,
    )
    return JSONResponse(
        {
            "rows": [_row(d) for d in listing.rows],
            "total": listing.total,
            "page": listing.page,
            "pages": listing.pages,
            "per_page": listing.per_page,
            "by_section": listing.by_section,
            "by_month": listing.by_month,
        }
    )


@router.get(
    "/articles/{doc_id:path}",
    response_model=ArticleOut,
    responses={**ERRORS, 404: {"model": ErrorOut, "description": "no article with this id"}},
    summary="One article: metadata and text",
    description="An article by its id (percent-encode the characters that URLs reserve: `#` as %23, `?` as "
    "%3F). Citation offsets index into `text`.",
)
async def article(
    request: Request, doc_id: Annotated[str, Path(description="the article's id", examples=["business/001"])]
) -> JSONResponse:
    library = library_of(request)
    doc = await run_engine(request, library.document, doc_id)
    if doc is None:
        raise ApiError(404, f"no article {doc_id!r} in the index; GET /api/articles lists the ids", 1)
    return JSONResponse(
        {
            "id": doc.id,
            "title": doc.title,
            "source": doc.source,
            "author": doc.author,
            "outlet": doc.outlet,
            "url": doc.url,
            "date": doc.date,
            "date_raw": doc.date_raw,
            "section": doc.section,
            "tags": list(doc.tags),
            "text": doc.text,
        }
    )


def _health(library: Library) -> dict[str, Any]:
    info = library.index.info()
    return {
        "status": "ok",
        "index_version": str(info.get("version", "")),
        "documents": int(info.get("documents") or 0),
        "chunks": int(info.get("chunks") or 0),
        "sentences": int(info.get("sentences") or 0),
        "model": str(info.get("model") or ""),
        "reader": str(info.get("reader") or ""),
        "built_at": str(info.get("built_at") or ""),
        "building": library.building,
    }


@router.get(
    "/health",
    response_model=HealthOut,
    responses=ERRORS,
    summary="The live index",
    description="The index version answering now, its counts, model and reader; 503 while no index can be "
    "opened. A rebuild does not make it fail: answers come from the previous version meanwhile.",
)
async def health(request: Request) -> JSONResponse:
    return JSONResponse(await run_engine(request, _health, library_of(request)))


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
    return HTMLResponse(docs_html(request.app.openapi(), base, login=request.app.state.credentials is not None))


DESCRIPTION = """Answers quoted from the indexed articles, each cited by article and character span, as JSON.

Every endpoint takes the web app's login as HTTP Basic credentials when the server has one (`curl -u user:password`).
Every error is `{"error": "<one line>", "exit_code": n}`: the message and exit code `rag` gives for the same
failure; 400 for a bad question, filter or history, 404 for an unknown article, 413 for a body over 1 MB, 503 while
no index can be opened.
"""


def create_api(
    library: Library, *, credentials: Credentials | None = None, workers: int = 4, cors_origins: Sequence[str] = ()
) -> FastAPI:
    """The API as a FastAPI app, to mount at /api.

    Args:
        library: the index it answers from (the web app's own).
        credentials: the login every endpoint requires (None: none).
        workers: engine calls running at once; more requests wait.
        cors_origins: browser origins allowed to call it from their pages (none: no CORS headers at all).
    """
    app = FastAPI(
        title="rag-articles API",
        version=__version__,
        description=DESCRIPTION,
        servers=[{"url": "/api"}],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.library = library
    app.state.credentials = credentials
    app.state.workers = max(1, int(workers))
    app.state.limiter = None
    install_error_handlers(app, check_login)
    from ui import api_watched  # noqa: F401 - its routes (/questions, /answers) join the router first

    app.include_router(router)
    app.openapi = _openapi_without_422(app)  # type: ignore[method-assign]
    app.add_middleware(BodyLimit)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=True,
        )
    return app
