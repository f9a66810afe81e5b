"""Extractive answers: score the sentences of retrieved passages, quote the best ones with citations, or abstain.

The sentence score and the confidence come from a small linear model whose coefficients live in
`rag/data/answer_model.json` (see that file for what each feature means and how it was set).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Sequence

import numpy as np

from .types import Answer, Citation, Document, Passage, Sentence

__all__ = ["ABSTAIN_TEXT", "Candidate", "AnswerModel", "compose_answer", "content_terms", "load_model"]

ABSTAIN_TEXT = "No passage in the indexed articles answers this."

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_STOP = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our
    ours out over own same she should so some such than that the their theirs them then there these they this those
    through to too under until up very was we were what when where which while who whom why will with would you your
    yours s t don did also many much one two get got make made say said says per""".split()
)


def _stem(word: str) -> str:
    for suffix in ("ingly", "edly", "ing", "ied", "ies", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix in ("ied", "ies") else "")
    return word


def content_terms(text: str) -> set[str]:
    """Lower-cased, crudely stemmed words of `text` that carry meaning (stop words removed)."""
    return {_stem(w) for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP}


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage with the features the answer model reads."""

    sentence: Sentence
    passage_rank: int
    features: dict[str, float]
    score: float = 0.0


@dataclass(frozen=True)
class AnswerModel:
    """Linear sentence scorer and logistic confidence: p = sigmoid(a * score + b)."""

    weights: dict[str, float]
    conf_a: float
    conf_b: float
    margin: float

    def score(self, features: dict[str, float]) -> float:
        return sum(self.weights.get(k, 0.0) * v for k, v in features.items())

    def confidence(self, score: float) -> float:
        return 1.0 / (1.0 + math.exp(-(self.conf_a * score + self.conf_b)))


@lru_cache(maxsize=4)
def load_model(name: str = "answer_model.json") -> AnswerModel:
    data = json.loads(resources.files("rag").joinpath("data", name).read_text(encoding="utf-8"))
    return AnswerModel(
        weights={k: float(v) for k, v in data["weights"].items()},
        conf_a=float(data["confidence"]["a"]),
        conf_b=float(data["confidence"]["b"]),
        margin=float(data.get("margin", 0.1)),
    )


def sentence_features(
    question_terms: set[str], sentence: Sentence, cosine: float, passage_score: float, passage_rank: int,
    prev_cosine: float | None,
) -> dict[str, float]:
    """Features of one sentence; all in roughly [0, 1]."""
    terms = content_terms(sentence.text)
    overlap = len(question_terms & terms) / len(question_terms) if question_terms else 0.0
    numbers_q = {t for t in question_terms if any(ch.isdigit() for ch in t)}
    number_match = 1.0 if numbers_q and numbers_q & terms else 0.0
    return {
        "cosine": cosine,
        "passage": passage_score,
        "overlap": overlap,
        "rank": 1.0 / (1.0 + passage_rank),
        "number": number_match,
        "prev_cosine": prev_cosine if prev_cosine is not None else cosine,
        "bias": 1.0,
    }


def compose_answer(
    question: str,
    passages: Sequence[Passage],
    passage_sentences: Sequence[Sequence[Sentence]],
    sentence_vectors: Sequence[np.ndarray],
    query_vector: np.ndarray,
    documents: dict[str, Document],
    passage_cosines: Sequence[float] | None = None,
    *,
    abstain_threshold: float,
    max_sentences: int,
    model: AnswerModel | None = None,
    index_version: str = "",
) -> Answer:
    """Pick the sentences that best answer `question` and cite them, or abstain.

    Args:
        passages: retrieved passages, best first.
        passage_sentences: for each passage, its sentences (offsets into the document).
        sentence_vectors: for each passage, float array (n_sentences, dim) of unit vectors.
        query_vector: unit vector (dim,).
        passage_cosines: each passage's cosine with the question (defaults to its score).
        documents: the passages' documents by id (for metadata).
        abstain_threshold: abstain when the best sentence's confidence is below this.
        max_sentences: the most sentences quoted.

    Returns:
        Answer whose citations quote `documents[doc_id].text[start:end]` exactly.
    """
    model = model or load_model()
    q_terms = content_terms(question)
    candidates: list[Candidate] = []
    seen_text: set[str] = set()
    for rank, (passage, sentences, vectors) in enumerate(zip(passages, passage_sentences, sentence_vectors)):
        if not sentences:
            continue
        cos = (np.asarray(vectors, dtype=np.float32) @ query_vector).tolist()
        for i, sentence in enumerate(sentences):
            key = " ".join(sentence.text.lower().split())
            if key in seen_text:  # the same sentence in a syndicated copy or an overlapping chunk
                continue
            seen_text.add(key)
            p_cos = passage_cosines[rank] if passage_cosines is not None else passage.score
            feats = sentence_features(q_terms, sentence, cos[i], p_cos, rank, cos[i - 1] if i else None)
            candidates.append(Candidate(sentence, rank, feats, model.score(feats)))
    candidates.sort(key=lambda c: c.score, reverse=True)
    best_conf = model.confidence(candidates[0].score) if candidates else 0.0
    if not candidates or best_conf < abstain_threshold:
        return Answer(question, ABSTAIN_TEXT, True, best_conf, (), tuple(passages), index_version)
    chosen = [candidates[0]]
    for c in candidates[1:]:
        if len(chosen) >= max_sentences:
            break
        if c.score < candidates[0].score - model.margin or model.confidence(c.score) < abstain_threshold:
            break
        if any(_overlaps(c.sentence, o.sentence) for o in chosen):
            continue
        chosen.append(c)
    citations = []
    for n, c in enumerate(chosen, start=1):
        doc = documents[c.sentence.doc_id]
        citations.append(
            Citation(
                number=n,
                doc_id=doc.id,
                title=doc.title,
                source=doc.source,
                start=c.sentence.start,
                end=c.sentence.end,
                quote=c.sentence.text,
                score=round(model.confidence(c.score), 4),
                author=doc.author,
                outlet=doc.outlet,
            )
        )
    text = " ".join(f"{c.quote} [{c.number}]" for c in citations)
    return Answer(question, text, False, best_conf, tuple(citations), tuple(passages), index_version)


def _overlaps(a: Sentence, b: Sentence) -> bool:
    return a.doc_id == b.doc_id and a.start < b.end and b.start < a.end
