"""Frozen records passed between modules; every span is a [start, end) character range into a document."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Document", "Chunk", "Sentence", "Passage", "Citation", "Answer", "BuildStats", "SkippedFile"]


@dataclass(frozen=True)
class Document:
    """One article, with its text exactly as citations will quote it.

    Attributes:
        id: stable identifier (from the record's `id`, else derived from the source path).
        text: the article body; all offsets index into this string.
        title: a title (heading, record field, or the first sentence when there is none).
        source: path of the file it came from, relative to the folder the index was built from (with `#line` for
            JSON lines records): never an absolute path, so it can be shown to anyone.
        content_hash: sha256 of `text` plus the metadata, used to skip re-embedding unchanged articles.
        date: publication date in ISO 8601 ("2024-03-05" or "2024-03-05T10:00:00+00:00"), None when dateless.
        section: the desk or topic ("politics"), from a `section`, `topic` or `category` field.
        tags: keywords the article gives itself.
        date_raw: the date as the article wrote it (kept when it could not be read, then `date` is None).
    """

    id: str
    text: str
    title: str
    source: str
    content_hash: str
    author: str | None = None
    outlet: str | None = None
    url: str | None = None
    date: str | None = None
    section: str | None = None
    tags: tuple[str, ...] = ()
    date_raw: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: `document.text[start:end] == text`."""

    doc_id: str
    index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Sentence:
    """One sentence of a document: `document.text[start:end] == text`."""

    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its relevance score (higher is better)."""

    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float
    chunk_id: int = -1
    also_in: tuple[str, ...] = ()
    date: str | None = None
    section: str | None = None
    outlet: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["also_in"] = list(self.also_in)
        return d


@dataclass(frozen=True)
class Citation:
    """A quoted span: `document(doc_id).text[start:end] == quote`.

    `score` is the answer's confidence for the first citation; a later one gets less, by how far the model rates
    its sentence below the first. `date`, `section` and `outlet` are the quoted article's. `answer_start`/
    `answer_end` bound the short answer the reader found inside the quote (`text[answer_start:answer_end] ==
    answer`, document offsets), or are None when it proposed none.
    """

    number: int
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    quote: str
    score: float
    author: str | None = None
    outlet: str | None = None
    date: str | None = None
    section: str | None = None
    answer: str | None = None
    answer_start: int | None = None
    answer_end: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """An extractive answer: quoted sentences with numbered citations, or an abstention.

    Attributes:
        text: the quoted sentences, each followed by its marker "[n]"; or the abstention message.
        abstained: True when no passage was judged to answer the question.
        confidence: estimated probability in [0, 1] that the first citation answers the question.
        citations: the quoted spans, numbered from 1 (empty when abstained).
        passages: the retrieved passages, best first (kept when abstained, for the reader to check).
        short_answer: the first citation's short answer (see Citation), or None.
        read_as: when the question was read as a follow-up of an earlier turn, the question as the engine read it
            (a pronoun resolved, or the earlier turn's subject added); None when it was read alone.
        follows: the 1-based number, in the history given, of the turn it was read with; None when read alone.
    """

    question: str
    text: str
    abstained: bool
    confidence: float
    citations: tuple[Citation, ...] = ()
    passages: tuple[Passage, ...] = ()
    index_version: str = ""
    read_as: str | None = None
    follows: int | None = None

    @property
    def short_answer(self) -> str | None:
        return self.citations[0].answer if self.citations else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "text": self.text,
            "abstained": self.abstained,
            "confidence": round(float(self.confidence), 4),
            "short_answer": self.short_answer,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [p.to_dict() for p in self.passages],
            "index_version": self.index_version,
            "read_as": self.read_as,
            "follows": self.follows,
        }


@dataclass(frozen=True)
class SkippedFile:
    """A file the build could not use, with a one-line reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class BuildStats:
    """What a build did. `added`/`updated`/`removed` count documents against the previous index."""

    documents: int
    chunks: int
    added: int
    updated: int
    removed: int
    seconds: float
    sentences: int = 0
    embedded_chunks: int = 0
    tokens: int = 0
    skipped: tuple[SkippedFile, ...] = field(default_factory=tuple)
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skipped"] = [asdict(s) for s in self.skipped]
        return d
