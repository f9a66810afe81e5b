"""Extractive answers: quote the best-scored sentences with citations, or abstain.

The sentences arrive scored by `rag.answer.ranking` (every sentence of the retrieved pool, best first). The confidence
model of the same fitted file (`rag/data/answer_model.json`) turns the best sentence's features and its lead over
the others into a probability that the articles answer the question; below `abstain_threshold` the answer abstains
and only lists the passages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Protocol

from rag.answer.ranking import AnswerModel, Candidate, IdfFn, confidence_features, load_model
from rag.answer.reader import Reading
from rag.answer.reading import reader_features
from rag.types import Answer, Citation, Document, Passage, Sentence

__all__ = ["ABSTAIN_TEXT", "Reranker", "compose_answer", "load_reranker"]

ABSTAIN_TEXT = "No passage in the indexed articles answers this."

_WORDS = re.compile(r"\w+")


class Reranker(Protocol):
    """Scores (question, text) pairs; higher means more relevant (a sentence-transformers CrossEncoder fits)."""

    def predict(self, pairs: list[tuple[str, str]], *, show_progress_bar: bool | None = None) -> Sequence[float]: ...


def compose_answer(
    question: str,
    passages: Sequence[Passage],
    candidates: Sequence[Candidate],
    documents: dict[str, Document],
    *,
    k: int,
    abstain_threshold: float,
    max_sentences: int,
    model: AnswerModel | None = None,
    index_version: str = "",
    idf: IdfFn | None = None,
    reranker: Reranker | None = None,
    readings: Mapping[tuple[str, int], Reading] | None = None,
) -> Answer:
    """Pick the sentences that best answer `question` and cite them, or abstain.

    Args:
        passages: the ranked pool (`rag.answer.ranking.rank_pool`); the answer shows the first k.
        candidates: the pool's scored sentences, best first, their `passage` indexing `passages`.
        documents: the passages' documents by id (for metadata).
        abstain_threshold: abstain when the confidence is below this.
        max_sentences: the most sentences quoted.
        idf: term -> inverse document frequency, from the lexical index.
        reranker: optional cross-encoder; when given it reorders the ten best candidates.
        readings: the reader's readings by (doc_id, sentence start) (`rag.answer.reading.read_candidates`), when a reader
            ran: its margins join the confidence features (`model` must be the reader's calibration) and its
            spans become the citations' short answers.

    Returns:
        Answer whose citations quote `documents[doc_id].text[start:end]` exactly; `confidence` is the
        model's probability that the articles answer the question.
    """
    model = model or load_model()
    shown = tuple(passages[:k])
    quotable = [c for c in candidates if c.passage < k]
    if not quotable:
        return Answer(question, ABSTAIN_TEXT, True, 0.0, (), shown, index_version)
    features = confidence_features(question, candidates, idf)
    if readings is not None:
        features.update(reader_features(candidates[0], readings))
    conf = model.confidence(features)
    if reranker is not None and len(quotable) > 1:
        head = quotable[:10]
        ce = list(reranker.predict([(question, c.sentence.text) for c in head], show_progress_bar=False))
        order = sorted(range(len(head)), key=lambda j: -float(ce[j]))
        quotable = [head[j] for j in order] + quotable[10:]
    if conf < abstain_threshold:
        return Answer(question, ABSTAIN_TEXT, True, conf, (), shown, index_version)
    first = quotable[0]
    chosen = [first]
    seen = {tuple(_WORDS.findall(first.sentence.text.lower()))}
    for c in quotable[1:]:
        if len(chosen) >= max_sentences:
            break
        # Further sentences are quoted only when the model rates them nearly as well as the first.
        if c.score < first.score - model.margin:
            break
        # The same sentence in an overlapping passage, or a near-duplicate one (a syndicated copy), is quoted once.
        key = tuple(_WORDS.findall(c.sentence.text.lower()))
        if key in seen or any(_overlaps(c.sentence, o.sentence) for o in chosen):
            continue
        seen.add(key)
        chosen.append(c)
    citations = []
    for n, c in enumerate(chosen, start=1):
        doc = documents[c.sentence.doc_id]
        span = _short_answer(c, readings, first=n == 1)
        citations.append(
            Citation(
                number=n,
                doc_id=doc.id,
                title=doc.title,
                source=doc.source,
                start=c.sentence.start,
                end=c.sentence.end,
                quote=c.sentence.text,
                score=round(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, c.score - first.score)))) * 2 * conf, 4),
                author=doc.author,
                outlet=doc.outlet,
                answer=doc.text[span[0] : span[1]] if span else None,
                answer_start=span[0] if span else None,
                answer_end=span[1] if span else None,
            )
        )
    text = " ".join(f"{c.quote} [{c.number}]" for c in citations)
    return Answer(question, text, False, conf, tuple(citations), shown, index_version)


def _short_answer(
    c: Candidate, readings: Mapping[tuple[str, int], Reading] | None, first: bool
) -> tuple[int, int] | None:
    """The reader's span inside the quoted sentence: always for the first quote it read, for later quotes only when
    the reader prefers the span to "no answer"."""
    r = readings.get((c.sentence.doc_id, c.sentence.start)) if readings else None
    if r is None or (not first and r.score <= 0) or r.answer_end <= r.answer_start:
        return None
    return r.answer_start, r.answer_end


def _overlaps(a: Sentence, b: Sentence) -> bool:
    return a.doc_id == b.doc_id and a.start < b.end and b.start < a.end


def load_reranker(path: str) -> Reranker:
    """A sentence-transformers CrossEncoder from a local folder (nothing is downloaded).

    Raises:
        ConfigError: the folder is missing or is not a cross-encoder.
    """
    from pathlib import Path

    from rag.config import offline_env
    from rag.errors import ConfigError

    if not Path(path).is_dir():
        raise ConfigError(f"reranker folder {path} does not exist; pass --reranker with a local CrossEncoder folder")
    offline_env()
    try:
        from sentence_transformers import CrossEncoder

        return CrossEncoder(path, device="cpu", local_files_only=True)
    except Exception as exc:
        raise ConfigError(
            f"cannot load a CrossEncoder from {path} ({type(exc).__name__}: {exc}); pass another --reranker"
        ) from None
