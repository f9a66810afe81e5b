"""The JSON API's bodies and answers as pydantic models: the OpenAPI schema at /api/openapi.json is made from them.

Requests are strict (a number where text is expected is refused, not converted) and refuse unknown fields, so a
misspelt filter is an error rather than a silently ignored one. Answers mirror `Answer.to_dict()`,
`Passage.to_dict()` and the catalog's records field for field; tests/ui/test_ui_api.py checks that they still do.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AskRequest",
    "SearchRequest",
    "CitationOut",
    "PassageOut",
    "AnswerOut",
    "ArticleRow",
    "ArticleListing",
    "ArticleOut",
    "HealthOut",
    "ErrorOut",
]

_STRICT = ConfigDict(strict=True, extra="forbid")

_NAMES = {"type": "array", "items": {"type": "string"}}


def _k_field() -> Any:
    # The range is documented here but checked by the library, so the message is the command line's own
    # ("k must be between 1 and 100, got 0").
    return Field(
        None,
        description="passages to retrieve, 1-100 (default: the server's k, 5)",
        json_schema_extra={"minimum": 1, "maximum": 100},
    )


class _Filters(BaseModel):
    model_config = _STRICT

    question: str = Field(description="the question, in plain words (at most max_question_chars, 2,000)")
    k: int | None = _k_field()
    since: str | None = Field(
        None,
        description="only articles published on or after this date: YYYY-MM-DD, YYYY-MM "
        "or YYYY (dateless articles never pass a date bound)",
    )
    until: str | None = Field(None, description="only articles published on or before this date")
    section: list[str] | None = Field(None, description="only articles of these sections (any case)")
    outlet: list[str] | None = Field(None, description="only articles from these outlets (any case)")
    doc_ids: list[str] | None = Field(None, description="only these article ids")
    sources: list[str] | None = Field(None, description="only articles from these source paths, as shown in answers")
    sort: Literal["relevance", "newest"] = Field(
        "relevance", description="passages by relevance, or newest article first"
    )


class AskRequest(_Filters):
    """POST /api/ask: a question, the filters of `rag ask`, and optionally the conversation so far."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "When could the pause be lifted?"},
                {
                    "question": "What did Ed Balls say about the Budget?",
                    "k": 5,
                    "section": ["politics"],
                    "since": "2005-01",
                    "sort": "newest",
                },
                {
                    "question": "Who said so?",
                    "history": [
                        {
                            "question": "When could the pause be lifted?",
                            "answer": {"citations": [{"doc_id": "000_f517c2c1bff018e5.txt", "quote": "…"}]},
                        }
                    ],
                },
            ]
        },
    )

    # Only the list is checked here: each turn is checked by the library, whose messages name the turn
    # ("history turn 2: answer must be an object…"), as `rag ask --history` does.
    history: list[Any] | None = Field(
        None,
        description="the conversation's earlier turns, oldest first: each a question (text) or an object "
        '{"question": ..., "answer": <an earlier /api/ask answer>}; the last 20 are read',
        json_schema_extra={"items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
    )
    abstain_threshold: float | None = Field(
        None,
        description="abstain below this confidence, 0-1 (default: the server's, 0.21)",
        json_schema_extra={"minimum": 0, "maximum": 1},
    )


class SearchRequest(_Filters):
    """POST /api/search: a query and the filters of `rag search`."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "intelligence sharing", "k": 3},
                {"question": "Budget", "k": 5, "section": ["politics"], "since": "2005-01", "sort": "newest"},
            ]
        },
    )


class CitationOut(BaseModel):
    """A quoted sentence: the article's text[start:end] is `quote`; `answer` is the short answer inside it."""

    model_config = ConfigDict(extra="forbid")

    number: int
    doc_id: str
    title: str
    source: str
    start: int = Field(description="character offset of the quote in the article's text")
    end: int
    quote: str
    score: float
    author: str | None = None
    outlet: str | None = None
    date: str | None = None
    section: str | None = None
    answer: str | None = Field(None, description="the short answer the reader marked inside the quote")
    answer_start: int | None = None
    answer_end: int | None = None


class PassageOut(BaseModel):
    """A retrieved passage with its score; the article's text[start:end] is `text`."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float
    chunk_id: int
    also_in: list[str] = Field(description="ids of articles holding the same passage (syndicated copies)")
    date: str | None = None
    section: str | None = None
    outlet: str | None = None


class AnswerOut(BaseModel):
    """What `rag ask --json` prints: quoted sentences with citations, or an abstention with the nearest passages."""

    model_config = ConfigDict(extra="forbid")

    question: str
    text: str = Field(description="the quoted sentences, each followed by [n]; or the abstention message")
    abstained: bool
    confidence: float = Field(description="estimated chance, 0-1, that the articles answer the question")
    short_answer: str | None
    citations: list[CitationOut]
    passages: list[PassageOut]
    index_version: str
    read_as: str | None = Field(description="how a follow-up was read with the conversation, else null")
    follows: int | None = Field(description="the 1-based history turn a follow-up was read with, else null")


class ArticleRow(BaseModel):
    """One article of the library listing (no text)."""

    id: str
    title: str
    source: str
    date: str | None
    section: str | None
    outlet: str | None
    author: str | None
    url: str | None
    tags: list[str]
    passages: int


class ArticleListing(BaseModel):
    """One page of the articles that match the search and filters, with counts over all of them."""

    rows: list[ArticleRow]
    total: int = Field(description="articles matching the search and filters, all pages")
    page: int
    pages: int
    per_page: int
    by_section: dict[str, int] = Field(description="matching articles by section, largest first")
    by_month: dict[str, int] = Field(description="matching articles by month (YYYY-MM), newest first")


class ArticleOut(BaseModel):
    """An article's metadata and its whole text (every citation's offsets index into `text`)."""

    id: str
    title: str
    source: str
    author: str | None
    outlet: str | None
    url: str | None
    date: str | None
    date_raw: str | None
    section: str | None
    tags: list[str]
    text: str


class HealthOut(BaseModel):
    """The live index version and what it holds."""

    status: Literal["ok"]
    index_version: str
    documents: int
    chunks: int
    sentences: int
    model: str
    reader: str
    built_at: str
    building: bool = Field(description="a rebuild or web update is running; answers come from this version")


class ErrorOut(BaseModel):
    """Every error: the command line's one-line message and the exit code `rag` gives the same failure."""

    error: str = Field(examples=["k must be between 1 and 100, got 0"])
    exit_code: int = Field(
        description="2: a bad question, filter, history or setting; 4-8: the index cannot be "
        "used; 1: other (see README, exit codes)",
        examples=[2],
    )
