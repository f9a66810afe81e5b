"""The watched questions in the JSON API: /api/questions (list, save, remove) and /api/answers?since=.

The routes join `ui.api_router.router`, so they share its login, error answers and worker limit. The store is the one
`rag questions` uses (rag.watch.store): a question saved here is asked by every later build, from the web app or the
command line, and the answers recorded are those `rag questions answers --json` prints.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.library.library import Library
from rag.watch.store import WatchStore, parse_since
from ui.api_errors import ApiError
from ui.api_router import ERRORS, POSTED, library_of, router, run_engine

__all__ = ["QuestionRequest"]


class QuestionRequest(BaseModel):
    """POST /api/questions: a question to watch, with the filters and threshold of `rag questions add`."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "Who will run Unilever?"},
                {
                    "question": "What did the Bank of England decide on rates?",
                    "section": ["business"],
                    "min_confidence": 0.5,
                },
            ]
        },
    )

    question: str = Field(description="the question (1 to 2,000 characters, as for /api/ask)")
    min_confidence: float | None = Field(
        None, description="record answers of at least this confidence, 0-1 (default: the index's abstain threshold)"
    )
    section: list[str] | None = Field(None, description="only articles of these sections")
    outlet: list[str] | None = Field(None, description="only articles from these outlets")


def _store(library: Library) -> WatchStore:
    return WatchStore(library.index_dir)


def _questions(library: Library) -> list[dict]:
    store = _store(library)
    counts: dict[int, int] = {}
    for a in store.answers():
        counts[a.question_id] = counts.get(a.question_id, 0) + 1
    return [{**q.to_dict(), "answers": counts.get(q.id, 0)} for q in store.questions()]


def _add(library: Library, body: QuestionRequest) -> dict:
    from rag.index import indexdir

    version = indexdir.require_index(library.index_dir)
    baseline = (version.name, indexdir.read_manifest(version).get("documents") or {})
    q = _store(library).add(
        body.question,
        min_confidence=body.min_confidence,
        section=body.section,
        outlet=body.outlet,
        max_chars=library.settings.max_question_chars,
        baseline=baseline,
    )
    return q.to_dict()


@router.get(
    "/questions",
    responses=ERRORS,
    summary="The watched questions",
    description="The saved questions (`rag questions list --json`), each with its filters, threshold and "
    "the number of answers recorded for it.",
)
async def list_questions(request: Request) -> JSONResponse:
    return JSONResponse(await run_engine(request, _questions, library_of(request)))


@router.post(
    "/questions",
    status_code=201,
    responses=POSTED,
    summary="Watch a question",
    description="Save a question: every later build asks it against the articles it adds or changes, and "
    "records an answer once per article. An empty, overlong or duplicate question, a threshold "
    "outside [0, 1], or a 501st question is refused with 400.",
)
async def add_question(body: QuestionRequest, request: Request) -> JSONResponse:
    return JSONResponse(await run_engine(request, _add, library_of(request), body), status_code=201)


@router.delete(
    "/questions/{question_id}",
    responses={**ERRORS, 404: {"description": "no saved question has this id"}},
    summary="Stop watching a question",
    description="Forget a saved question and its recorded answers.",
)
async def remove_question(
    request: Request, question_id: Annotated[int, Path(description="the question's id", examples=[3])]
) -> JSONResponse:
    store = _store(library_of(request))
    if not any(q.id == question_id for q in store.questions()):
        raise ApiError(404, f"no saved question {question_id}; GET /api/questions lists them", 2)
    gone = await run_engine(request, store.remove, question_id)
    return JSONResponse(gone.to_dict())


@router.get(
    "/answers",
    responses=ERRORS,
    summary="Answers new articles gave the watched questions",
    description="The recorded answers, oldest first (`rag questions answers --json`): each with its question, "
    "the article (id, title, URL), when and against which index version it was recorded, and "
    "the answer as /api/ask gives it (without the nearest passages). `since` keeps those after "
    "an answer id, or those recorded at or after a date or time (UTC).",
)
async def answers(
    request: Request,
    since: Annotated[
        str, Query(description="an answer id (12), or a date or time (2026-11-30, 2026-11-30T08:00:00Z)")
    ] = "",
) -> JSONResponse:
    since_id, since_time = parse_since(since)
    found = await run_engine(request, _store(library_of(request)).answers, since_id=since_id, since_time=since_time)
    return JSONResponse([a.to_dict() for a in found])
