"""Extractive answers: score the sentences of retrieved passages, quote the best ones with citations, or abstain.

Two small logistic models, whose coefficients live in `rag/data/answer_model.json` (fitted by
`tools/fit_answer_model.py` on half of the SQuAD 2.0 dev articles), do the judging:

- the sentence model scores every sentence of the retrieved passages from its features (`sentence_features`):
  dense similarity (precomputed sentence vectors, no per-query embedding), IDF-weighted overlap with the
  question, question bigrams, answer-type cues, the passage's rank and similarity, and its neighbours' similarity;
- the confidence model turns the best sentence's score and how much of the question its context covers
  (`confidence_features`) into a probability that the first quoted sentence answers the question. The answer
  abstains below `abstain_threshold`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable, Protocol, Sequence

import numpy as np

from .lexical import content_terms, phrases, terms
from .types import Answer, Citation, Document, Passage, Sentence

__all__ = [
    "ABSTAIN_TEXT",
    "Candidate",
    "AnswerModel",
    "Reranker",
    "compose_answer",
    "score_candidates",
    "sentence_features",
    "confidence_features",
    "content_terms",
    "load_model",
]

ABSTAIN_TEXT = "No passage in the indexed articles answers this."

_NUMBER = re.compile(r"\d")
_YEAR = re.compile(r"\b(1\d{3}|20\d{2})s?\b|\b\d{1,2}(st|nd|rd|th)\s+century\b", re.IGNORECASE)
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December)\b"
)
_CAPITAL = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")
_ANAPHOR = re.compile(r"(it|its|he|his|she|her|they|their|them|this|these|those|that|such|there)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(not|never|no|n't|none|nothing|without)\b", re.IGNORECASE)

IdfFn = Callable[[str], float]


class Reranker(Protocol):
    """Scores (question, text) pairs; higher means more relevant (a sentence-transformers CrossEncoder fits)."""

    def predict(self, pairs: list[tuple[str, str]], **kwargs) -> Sequence[float]: ...


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage with the features the answer model reads."""

    sentence: Sentence
    passage_rank: int
    features: dict[str, float]
    score: float = 0.0
    context_terms: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AnswerModel:
    """Logistic sentence scorer and logistic confidence model (coefficients by feature name)."""

    weights: dict[str, float]
    confidence_weights: dict[str, float]
    margin: float

    def score(self, features: dict[str, float]) -> float:
        """The sentence's log-odds of holding the answer."""
        return sum(self.weights.get(k, 0.0) * v for k, v in features.items())

    def confidence(self, features: dict[str, float]) -> float:
        """Probability in [0, 1] that the best sentence answers the question."""
        z = sum(self.confidence_weights.get(k, 0.0) * v for k, v in features.items())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@lru_cache(maxsize=4)
def load_model(name: str = "answer_model.json") -> AnswerModel:
    """The packaged coefficients (rag/data/<name>)."""
    data = json.loads(resources.files("rag").joinpath("data", name).read_text(encoding="utf-8"))
    return AnswerModel(
        weights={k: float(v) for k, v in data["weights"].items()},
        confidence_weights={k: float(v) for k, v in data["confidence_weights"].items()},
        margin=float(data.get("margin", 1.0)),
    )


def _question_type(question: str) -> dict[str, float]:
    q = question.lower()
    return {
        "q_when": 1.0 if re.search(r"\bwhen\b|\bwhat (year|century|date|decade|month|day)\b|\bwhich year\b", q) else 0.0,
        "q_count": 1.0 if re.search(r"\bhow (many|much|long|old|far|large|big|tall|high)\b|\bwhat percent", q) else 0.0,
        "q_who": 1.0 if re.search(r"\bwho(m|se)?\b", q) else 0.0,
    }


@lru_cache(maxsize=1 << 15)
def _analyse(text: str) -> tuple[tuple[str, ...], frozenset[tuple[str, str]]]:
    """A sentence's terms and phrases, cached: the same passages come back for many questions."""
    return tuple(terms(text)), frozenset(phrases(text))


def _idf_mass(words: set[str], idf: IdfFn) -> float:
    return sum(idf(w) for w in words)


def sentence_features(
    q_terms: set[str],
    q_bigrams: set[tuple[str, str]],
    q_type: dict[str, float],
    q_mass: float,
    idf: IdfFn,
    sentence: Sentence,
    words: list[str],
    cosine: float,
    prev_cosine: float,
    next_cosine: float,
    prev_overlap: float,
    passage_cosine: float,
    passage_overlap: float,
    passage_rank: int,
) -> dict[str, float]:
    """Features of one candidate sentence, each roughly in [0, 1] (the model's coefficients are on this scale).

    Args:
        q_terms, q_bigrams: the question's content terms and adjacent content-word pairs (`rag.lexical`).
        q_type: indicators from `_question_type`.
        q_mass: summed IDF of the question's terms.
        words: the sentence's terms, in order.
        cosine, prev_cosine, next_cosine: the sentence's and its neighbours' cosine with the question.
        prev_cosine, prev_overlap: the previous sentence's cosine and IDF-weighted overlap when this sentence opens
            with a pronoun (it borrows that context); otherwise its own cosine and 0.
        passage_cosine, passage_overlap: the passage's cosine and IDF-weighted overlap with the question.
        passage_rank: 0 for the best passage.
    """
    wset = set(words)
    text = sentence.text
    shared = q_terms & wset
    overlap = _idf_mass(shared, idf) / q_mass if q_mass > 0 else 0.0
    bigrams = _analyse(text)[1]
    has_year = 1.0 if _YEAR.search(text) or _MONTH.search(text) else 0.0
    has_number = 1.0 if _NUMBER.search(text) else 0.0
    novel = len(wset - q_terms)
    return {
        "cosine": cosine,
        "overlap": overlap,
        "bigram": len(q_bigrams & bigrams) / len(q_bigrams) if q_bigrams else 0.0,
        "prev_cosine": prev_cosine - cosine,
        "next_cosine": next_cosine,
        "prev_overlap": prev_overlap,
        "passage_cosine": passage_cosine,
        "passage_overlap": passage_overlap,
        "rank": 1.0 / (1.0 + passage_rank),
        "when_year": q_type["q_when"] * has_year,
        "count_number": q_type["q_count"] * has_number,
        "who_name": q_type["q_who"] * (1.0 if _CAPITAL.search(text) else 0.0),
        "novel": min(novel, 30) / 30.0,
        "restates": 1.0 if novel == 0 else 0.0,
        "bias": 1.0,
    }


def confidence_features(best: Candidate, second: Candidate | None, q_terms: set[str], idf: IdfFn, question: str) -> dict[str, float]:
    """Question-level features for the confidence model, from the best and second-best candidates."""
    q_mass = _idf_mass(q_terms, idf)
    missing = q_terms - best.context_terms
    missing_idf = max((idf(w) for w in missing), default=0.0)
    max_idf = max((idf(w) for w in q_terms), default=1.0) or 1.0
    q_type = _question_type(question)
    feats = {f"top_{k}": v for k, v in best.features.items() if k != "bias"}
    feats.update({
        "score": best.score,
        "margin": best.score - second.score if second is not None else 1.0,
        "missing_mass": _idf_mass(missing, idf) / q_mass if q_mass > 0 else 1.0,
        "missing_max": missing_idf / max_idf,
        "negation": 1.0 if _NEGATION.search(question) else 0.0,
        # A typed question (when, how many, who) whose best sentence lacks that type of answer.
        "type_unmet": max(q_type.values()) - (
            best.features["when_year"] + best.features["count_number"] + best.features["who_name"] > 0),
        "bias": 1.0,
    })
    return feats


def _default_idf(word: str) -> float:
    return 1.0


def score_candidates(
    question: str,
    passages: Sequence[Passage],
    passage_sentences: Sequence[Sequence[Sentence]],
    sentence_vectors: Sequence[np.ndarray],
    query_vector: np.ndarray,
    passage_cosines: Sequence[float] | None = None,
    *,
    idf: IdfFn | None = None,
    model: AnswerModel | None = None,
) -> list[Candidate]:
    """Every distinct sentence of the passages with its features and score, best first.

    Args:
        passages: retrieved passages, best first.
        passage_sentences: for each passage, its sentences (offsets into the document).
        sentence_vectors: for each passage, float array (n_sentences, dim) of unit vectors.
        query_vector: unit vector (dim,).
        passage_cosines: each passage's cosine with the question (defaults to its score).
        idf: term -> inverse document frequency (default: every term weighs 1).

    Returns:
        Candidates sorted by score, highest first; a sentence repeated in another passage appears once.
    """
    model = model or load_model()
    idf = idf or _default_idf
    q_words = terms(question)
    q_terms = set(q_words)
    q_bigrams = phrases(question)
    q_type = _question_type(question)
    q_mass = _idf_mass(q_terms, idf)
    candidates: list[Candidate] = []
    seen: set[tuple[str, ...]] = set()
    for rank, (passage, sentences, vectors) in enumerate(zip(passages, passage_sentences, sentence_vectors)):
        if not sentences:
            continue
        cos = (np.asarray(vectors, dtype=np.float32) @ query_vector).tolist()
        words = [list(_analyse(s.text)[0]) for s in sentences]
        p_terms = set().union(*words)
        p_overlap = _idf_mass(q_terms & p_terms, idf) / q_mass if q_mass > 0 else 0.0
        p_cos = float(passage_cosines[rank]) if passage_cosines is not None else float(passage.score)
        overlaps = [_idf_mass(q_terms & set(w), idf) / q_mass if q_mass > 0 else 0.0 for w in words]
        for i, sentence in enumerate(sentences):
            # Near-duplicate sentences (a syndicated copy, an overlapping chunk) differ at most in case and punctuation.
            key = tuple(_WORDS.findall(sentence.text.lower()))
            if key in seen:
                continue
            seen.add(key)
            # Only a sentence that opens with a pronoun borrows its predecessor's context.
            borrows = i > 0 and _ANAPHOR.match(sentence.text) is not None
            feats = sentence_features(
                q_terms, q_bigrams, q_type, q_mass, idf, sentence, words[i], cos[i],
                cos[i - 1] if borrows else cos[i], cos[i + 1] if i + 1 < len(sentences) else cos[i],
                overlaps[i - 1] if borrows else 0.0, p_cos, p_overlap, rank,
            )
            context = set(words[i])
            if i:
                context |= set(words[i - 1])
            candidates.append(Candidate(sentence, rank, feats, 0.0, frozenset(context)))
    # How far each sentence trails the best one on the two main signals: comparisons within one question.
    best_cos = max((c.features["cosine"] for c in candidates), default=0.0)
    best_overlap = max((c.features["overlap"] for c in candidates), default=0.0)
    scored = []
    for c in candidates:
        feats = {**c.features, "cosine_gap": best_cos - c.features["cosine"], "overlap_gap": best_overlap - c.features["overlap"]}
        scored.append(Candidate(c.sentence, c.passage_rank, feats, model.score(feats), c.context_terms))
    scored.sort(key=lambda c: c.score, reverse=True)
    return scored


_WORDS = re.compile(r"\w+")


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
    idf: IdfFn | None = None,
    reranker: Reranker | None = None,
) -> Answer:
    """Pick the sentences that best answer `question` and cite them, or abstain.

    Args:
        passages: retrieved passages, best first.
        passage_sentences: for each passage, its sentences (offsets into the document).
        sentence_vectors: for each passage, float array (n_sentences, dim) of unit vectors.
        query_vector: unit vector (dim,).
        documents: the passages' documents by id (for metadata).
        passage_cosines: each passage's cosine with the question (defaults to its score).
        abstain_threshold: abstain when the confidence is below this.
        max_sentences: the most sentences quoted.
        idf: term -> inverse document frequency, from the lexical index.
        reranker: optional cross-encoder; when given it reorders the ten best candidates.

    Returns:
        Answer whose citations quote `documents[doc_id].text[start:end]` exactly; `confidence` is the
        model's probability that the first citation answers the question.
    """
    model = model or load_model()
    idf = idf or _default_idf
    candidates = score_candidates(
        question, passages, passage_sentences, sentence_vectors, query_vector, passage_cosines, idf=idf, model=model
    )
    if reranker is not None and len(candidates) > 1:
        head = candidates[:10]
        ce = list(reranker.predict([(question, c.sentence.text) for c in head], show_progress_bar=False))
        order = sorted(range(len(head)), key=lambda j: -float(ce[j]))
        candidates = [head[j] for j in order] + candidates[10:]
    if not candidates:
        return Answer(question, ABSTAIN_TEXT, True, 0.0, (), tuple(passages), index_version)
    q_terms = content_terms(question)
    conf = model.confidence(confidence_features(candidates[0], candidates[1] if len(candidates) > 1 else None, q_terms, idf, question))
    if conf < abstain_threshold:
        return Answer(question, ABSTAIN_TEXT, True, conf, (), tuple(passages), index_version)
    chosen = [candidates[0]]
    for c in candidates[1:]:
        if len(chosen) >= max_sentences:
            break
        # Further sentences are quoted only when the model rates them nearly as well as the first.
        if c.score < candidates[0].score - model.margin:
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
                score=round(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, c.score)))), 4),
                author=doc.author,
                outlet=doc.outlet,
            )
        )
    text = " ".join(f"{c.quote} [{c.number}]" for c in citations)
    return Answer(question, text, False, conf, tuple(citations), tuple(passages), index_version)


def _overlaps(a: Sentence, b: Sentence) -> bool:
    return a.doc_id == b.doc_id and a.start < b.end and b.start < a.end


def load_reranker(path: str) -> Reranker:
    """A sentence-transformers CrossEncoder from a local folder (nothing is downloaded).

    Raises:
        ConfigError: the folder is missing or is not a cross-encoder.
    """
    from pathlib import Path

    from .embedding import offline_env
    from .errors import ConfigError

    if not Path(path).is_dir():
        raise ConfigError(f"reranker folder {path} does not exist; pass --reranker with a local CrossEncoder folder")
    offline_env()
    try:
        from sentence_transformers import CrossEncoder

        return CrossEncoder(path, device="cpu", local_files_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot load a CrossEncoder from {path} ({type(exc).__name__}: {exc}); pass another --reranker") from None
