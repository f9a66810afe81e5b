"""Ranking by the best sentence: every sentence of the pooled passages is scored, and passages are ordered by their
best sentence.

A question usually targets one sentence. So the engine retrieves a pool of passages (hybrid dense + BM25), scores
every sentence in the pool with a small linear model over `sentence_features` (the sentence's own similarity and
word overlap with the question, its neighbours', and its passage's retrieval signals), and ranks
the passages by their best sentence. The first quoted sentence is then simply the best-scored sentence.

The coefficients live in `rag/data/answer_model.json`, written by `tools/fit_answer_model.py` on half of the SQuAD
2.0 dev articles (conditional logit: the sentences of one question compete; docs/quality.md has the figures).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from importlib import resources
from itertools import combinations

import numpy as np

from rag.index.lexical import _WORD, STOP_WORDS, _stem, terms_and_phrases
from rag.types import Passage, Sentence

__all__ = [
    "AnswerModel",
    "Candidate",
    "Question",
    "Signals",
    "analyse_question",
    "confidence_features",
    "load_model",
    "passage_order",
    "rank_pool",
    "score_candidates",
]

IdfFn = Callable[[str], float]

_CAPITALIZED = re.compile(r"\b[A-Z][\w’'-]*")
_NUMBER = re.compile(r"\d[\d,.]*")
_ANAPHOR = re.compile(r"(it|its|he|his|she|her|they|their|them|this|these|those|that|such|there)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(not|never|no|n't|none|nothing|without|non)\b", re.IGNORECASE)
_WHEN = re.compile(r"\bwhen\b|\bwhat (year|century|date|decade|month|day)\b|\bwhich year\b|\bwhat time\b")
_COUNT = re.compile(r"\bhow (many|much|long|old|far|large|big|tall|high)\b|\bwhat percent")
_WHO = re.compile(r"\bwho(m|se)?\b")

# Products of the strongest signals let the linear model weigh agreement between them (a sentence that matches
# both by meaning and by words beats one that matches only one way).
_PRODUCT_KEYS = (
    "cosine",
    "overlap",
    "window_overlap",
    "passage_best_cosine",
    "passage_dense",
    "passage_fused",
    "bigram",
    "names_covered",
)
# The confidence model reads these features of the best sentence.
_CONFIDENCE_KEYS = (
    "cosine",
    "overlap",
    "window_overlap",
    "bigram",
    "names_covered",
    "numbers_covered",
    "novel_share",
    "window_missing_max",
    "window_missing_count",
    "missing_max",
    "passage_missing_max",
    "passage_missing_count",
    "passage_dense",
    "passage_fused",
    "passage_overlap",
    "passage_names_covered",
    "passage_best_cosine",
    "length",
)


def _names(text: str, skip_first: bool) -> set[str]:
    """Stemmed capitalized words (a sentence's first word is skipped when asked: it is capitalized anyway)."""
    out = set()
    for m in _CAPITALIZED.finditer(text):
        if skip_first and m.start() == 0:
            continue
        w = m.group(0).lower()
        if w not in STOP_WORDS:
            out.add(_stem(w))
    return out


def _numbers(text: str) -> set[str]:
    return {m.group(0).strip(".,") for m in _NUMBER.finditer(text)}


@dataclass(frozen=True)
class _Text:
    """What the features need of every sentence, computed once per distinct text (`_analyse`)."""

    text: str
    words: tuple[str, ...]
    word_set: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    names: frozenset[str]
    numbers: frozenset[str]
    anaphor: bool
    negated: bool


@lru_cache(maxsize=1 << 15)
def _analyse(text: str) -> _Text:
    found, pairs = terms_and_phrases(text)
    words = tuple(found)
    return _Text(
        text,
        words,
        frozenset(words),
        frozenset(pairs),
        frozenset(_names(text, False)),
        frozenset(_numbers(text)),
        _ANAPHOR.match(text) is not None,
        _NEGATION.search(text) is not None,
    )


@dataclass(frozen=True)
class Question:
    """The parts of a question the features compare sentences with."""

    text: str
    terms: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    names: frozenset[str]
    numbers: frozenset[str]
    when: bool
    count: bool
    who: bool
    negated: bool
    weight: dict[str, float]
    mass: float
    max_idf: float
    words: tuple[str, ...]


def analyse_question(question: str, idf: IdfFn) -> Question:
    found, pairs = terms_and_phrases(question)
    q_terms = frozenset(found)
    low = question.lower()
    weight = {w: idf(w) for w in q_terms}
    return Question(
        question,
        q_terms,
        frozenset(pairs),
        frozenset(_names(question, True)),
        frozenset(_numbers(question)),
        _WHEN.search(low) is not None,
        _COUNT.search(low) is not None,
        _WHO.search(low) is not None,
        _NEGATION.search(question) is not None,
        weight,
        sum(weight.values()) or 1.0,
        max(weight.values(), default=1.0) or 1.0,
        tuple(found),
    )


@dataclass(frozen=True)
class Signals:
    """How the retriever found a pooled passage.

    Attributes:
        fused: the retriever's score (hybrid: 0.5 cosine + 0.5 BM25 share).
        dense: the passage's cosine with the question.
        lexical: its BM25 score divided by the best BM25 score of the question (0 when BM25 did not find it).
        rank: position in the pool, 0 first.
        dense_rank, lexical_rank: position among the dense / BM25 candidates, -1 when that side did not find it.
    """

    fused: float
    dense: float
    lexical: float
    rank: int
    dense_rank: int = -1
    lexical_rank: int = -1


@dataclass(frozen=True)
class Candidate:
    """A sentence of a pooled passage with its features and the model's score (log-odds, higher is better)."""

    sentence: Sentence
    passage: int
    features: Mapping[str, float]
    score: float = 0.0


@dataclass(frozen=True)
class AnswerModel:
    """Linear sentence scorer and the confidence: the product of two logistic models over the same features.

    `confidence_weights` judge whether the best sentence answers a question about what the articles discuss
    (fitted on SQuAD 2.0's answerable and unanswerable questions); `presence_weights` judge whether the articles
    discuss the question's subject at all (fitted on answerable questions asked with and without their article).
    Empty weights leave that factor out.
    """

    weights: dict[str, float]
    confidence_weights: dict[str, float]
    margin: float = 1.0
    presence_weights: dict[str, float] = field(default_factory=dict)

    def weight_vector(self, names: tuple[str, ...]) -> np.ndarray:
        """The sentence coefficients in `names` order (built once per feature layout)."""
        vector = self._vectors.get(names)
        if vector is None:
            vector = self._vectors[names] = np.array([self.weights.get(n, 0.0) for n in names])
        return vector

    @cached_property
    def _vectors(self) -> dict[tuple[str, ...], np.ndarray]:
        return {}

    def confidence(self, features: Mapping[str, float]) -> float:
        """Probability in [0, 1] that the articles answer the question."""
        p = _sigmoid(sum(self.confidence_weights.get(k, 0.0) * v for k, v in features.items()))
        if self.presence_weights:
            p *= _sigmoid(sum(self.presence_weights.get(k, 0.0) * v for k, v in features.items()))
        return p


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@lru_cache(maxsize=4)
def load_model(name: str = "answer_model.json") -> AnswerModel:
    """The packaged coefficients (rag/data/<name>)."""
    data = json.loads(resources.files("rag").joinpath("data", name).read_text(encoding="utf-8"))
    return AnswerModel(
        weights={k: float(v) for k, v in data["weights"].items()},
        confidence_weights={k: float(v) for k, v in data["confidence_weights"].items()},
        margin=float(data.get("margin", 1.0)),
        presence_weights={k: float(v) for k, v in data.get("presence_weights", {}).items()},
    )


def _rank_share(rank: int) -> float:
    return 1.0 / (1.0 + (rank if rank >= 0 else 60))


def _share(words: frozenset[str] | set[str], q: Question) -> float:
    return sum(q.weight[w] for w in q.terms & words) / q.mass


def _missing(words: frozenset[str] | set[str], q: Question) -> tuple[float, float]:
    gone = q.terms - words
    return max((q.weight[w] for w in gone), default=0.0) / q.max_idf, min(len(gone), 4) / 4


def passage_features(
    q: Question, signals: Signals, texts: Sequence[_Text], cosines: Sequence[float], overlaps: Sequence[float]
) -> dict[str, float]:
    """Features shared by every sentence of one passage (prefixed `passage_`)."""
    words = frozenset().union(*(t.word_set for t in texts)) if texts else frozenset()
    missing_max, missing_count = _missing(words, q)
    return {
        "passage_fused": signals.fused,
        "passage_dense": signals.dense,
        "passage_lexical": signals.lexical,
        "passage_rank": _rank_share(signals.rank),
        "passage_dense_rank": _rank_share(signals.dense_rank),
        "passage_lexical_rank": _rank_share(signals.lexical_rank),
        "passage_overlap": _share(words, q),
        "passage_names_covered": len(q.names & words) / len(q.names) if q.names else 1.0,
        "passage_best_cosine": max(cosines, default=0.0),
        "passage_best_overlap": max(overlaps, default=0.0),
        "passage_mean_cosine": float(np.mean(cosines)) if len(cosines) else 0.0,
        "passage_missing_max": missing_max,
        "passage_missing_count": missing_count,
    }


def sentence_features(
    q: Question, texts: Sequence[_Text], i: int, cosines: Sequence[float], overlaps: Sequence[float], inside: bool
) -> dict[str, float]:
    """Features of sentence i of a passage, each roughly in [0, 1].

    Args:
        texts: the passage's analysed sentences, in order; `cosines` and `overlaps` (IDF-weighted share of the
            question's terms) are theirs.
        inside: the sentence lies wholly inside the passage (not cut by its boundary).
    """
    t = texts[i]
    prev = texts[i - 1] if i > 0 else None
    nxt = texts[i + 1] if i + 1 < len(texts) else None
    window = t.word_set | (prev.word_set if prev else frozenset()) | (nxt.word_set if nxt else frozenset())
    novel = t.word_set - q.terms
    new_names = t.names - q.names
    new_numbers = t.numbers - q.numbers
    window_missing_max, window_missing_count = _missing(window, q)
    return {
        "cosine": cosines[i],
        "overlap": overlaps[i],
        "bigram": len(q.bigrams & t.bigrams) / len(q.bigrams) if q.bigrams else 0.0,
        "prev_cosine": cosines[i - 1] if prev else cosines[i],
        "next_cosine": cosines[i + 1] if nxt else cosines[i],
        "prev_overlap": overlaps[i - 1] if prev else 0.0,
        # A neighbour that matches the question better than this sentence may hold the answer instead.
        "next_gain": max(0.0, overlaps[i + 1] - overlaps[i]) if nxt else 0.0,
        # A sentence opening with a pronoun leans on its predecessor for what it is about.
        "anaphor": 1.0 if t.anaphor else 0.0,
        "window_overlap": _share(window, q),
        "names_covered": len(q.names & t.word_set) / len(q.names) if q.names else 1.0,
        "numbers_covered": len(q.numbers & t.numbers) / len(q.numbers) if q.numbers else 1.0,
        "novel": min(len(novel), 30) / 30,
        "restates": 1.0 if not novel else 0.0,
        "new_names": min(len(new_names), 5) / 5,
        "new_numbers": min(len(new_numbers), 3) / 3,
        "negated": 1.0 if t.negated else 0.0,
        "length": min(len(t.words), 60) / 60,
        "position": i / max(len(texts) - 1, 1),
        "cut": 0.0 if inside else 1.0,
        "novel_share": len(novel) / max(len(t.word_set), 1),
        "window_missing_max": window_missing_max,
        "window_missing_count": window_missing_count,
        "missing_max": _missing(t.word_set, q)[0],
    }


def _default_idf(word: str) -> float:
    return 1.0


def score_candidates(
    question: str,
    passages: Sequence[Passage],
    passage_sentences: Sequence[Sequence[Sentence]],
    sentence_vectors: Sequence[np.ndarray],
    query_vector: np.ndarray,
    signals: Sequence[Signals] | None = None,
    *,
    idf: IdfFn | None = None,
    model: AnswerModel | None = None,
) -> list[Candidate]:
    """Every (passage, sentence) pair of the pool with its features and score, best first.

    A sentence shared by two overlapping passages appears once per passage (each with its passage's signals);
    `passage_order` and the answer use the best of them.

    Args:
        passages: the pooled passages, in retrieval order.
        passage_sentences: for each passage, its sentences (offsets into the document).
        sentence_vectors: for each passage, float array (n_sentences, dim) of unit vectors.
        query_vector: unit vector (dim,).
        signals: for each passage, how the retriever found it (default: its score as cosine, its position as rank).
        idf: term -> inverse document frequency (default: every term weighs 1).
    """
    model = model or load_model()
    idf = idf or _default_idf
    q = analyse_question(question, idf)
    if signals is None:
        signals = [Signals(p.score, p.score, 0.0, r, r, -1) for r, p in enumerate(passages)]
    sentences_of: list[Sentence] = []
    passage_of: list[int] = []
    rows: list[list[float]] = []
    names: list[str] | None = None
    for n, (passage, sentences, vectors) in enumerate(zip(passages, passage_sentences, sentence_vectors)):
        if not sentences:
            continue
        cosines = (np.asarray(vectors, dtype=np.float32) @ query_vector).tolist()
        texts = [_analyse(s.text) for s in sentences]
        overlaps = [_share(t.word_set, q) for t in texts]
        shared = passage_features(q, signals[n], texts, cosines, overlaps)
        for i, s in enumerate(sentences):
            inside = passage.start <= s.start and s.end <= passage.end
            f = sentence_features(q, texts, i, cosines, overlaps, inside)
            f.update(shared)
            if names is None:
                names = list(f)
            rows.append(list(f.values()))
            sentences_of.append(s)
            passage_of.append(n)
    if names is None:
        return []
    all_names = _all_names(tuple(names))
    X = _expand(np.array(rows, dtype=np.float64), names)
    scores = X @ model.weight_vector(all_names)
    order = sorted(range(len(rows)), key=lambda j: (-scores[j], passage_of[j], sentences_of[j].start))
    return [Candidate(sentences_of[j], passage_of[j], _Row(all_names, X[j]), float(scores[j])) for j in order]


@lru_cache(maxsize=8)
def _all_names(names: tuple[str, ...]) -> tuple[str, ...]:
    pairs = [f"{a}*{b}" for a, b in combinations(_PRODUCT_KEYS, 2)]
    squares = [f"{a}^2" for a in _PRODUCT_KEYS]
    return (*names, "cosine_gap", "overlap_gap", *pairs, *squares)


def _expand(X: np.ndarray, names: list[str]) -> np.ndarray:
    """Append the pool-relative gaps and the products of the strongest features (in `_all_names` order)."""
    col = {n: i for i, n in enumerate(names)}
    # How far each sentence trails the pool's best on the two main signals: comparisons within one question.
    gaps = [X[:, col["cosine"]].max() - X[:, col["cosine"]], X[:, col["overlap"]].max() - X[:, col["overlap"]]]
    keys = X[:, [col[k] for k in _PRODUCT_KEYS]]
    a, b = np.triu_indices(len(_PRODUCT_KEYS), 1)
    return np.hstack([X, np.stack(gaps, 1), keys[:, a] * keys[:, b], keys * keys])


class _Row(Mapping[str, float]):
    """A candidate's features: a read-only mapping over one row of the pool's feature matrix."""

    __slots__ = ("_names", "_values", "_index")

    def __init__(self, names: tuple[str, ...], values: np.ndarray):
        self._names = names
        self._values = values
        self._index = _index_of(names)

    def __getitem__(self, key: str) -> float:
        return float(self._values[self._index[key]])

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@lru_cache(maxsize=8)
def _index_of(names: tuple[str, ...]) -> dict[str, int]:
    return {n: i for i, n in enumerate(names)}


def _best_by_passage(candidates: Sequence[Candidate]) -> dict[int, float]:
    best: dict[int, float] = {}
    for c in candidates:
        if c.passage not in best or c.score > best[c.passage]:
            best[c.passage] = c.score
    return best


def passage_order(candidates: Sequence[Candidate], n_passages: int) -> list[int]:
    """Pool positions ordered by their best sentence's score; passages without sentences keep retrieval order, last."""
    best = _best_by_passage(candidates)
    return sorted(range(n_passages), key=lambda n: (n not in best, -best.get(n, 0.0), n))


@lru_cache(maxsize=1)
def _antonyms() -> dict[str, frozenset[str]]:
    """word -> the words of opposite meaning listed in rag/data/antonyms.txt."""
    out: dict[str, set[str]] = {}
    text = resources.files("rag").joinpath("data", "antonyms.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or line.startswith("#"):
            continue
        a, b = parts
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return {k: frozenset(v) for k, v in out.items()}


def _antonym_swap(question: str, sentence: str) -> bool:
    """The sentence holds the opposite of a question word, and not the word itself ("least" asked, "most" said)."""
    opposites = _antonyms()
    q_words = {m.group(0).lower() for m in _WORD.finditer(question)}
    s_words = {m.group(0).lower() for m in _WORD.finditer(sentence)}
    return any(
        w not in s_words and (opposites.get(w, frozenset()) & s_words) and not (opposites.get(w, frozenset()) & q_words)
        for w in q_words
    )


def _substitutions(question: Sequence[str], sentence: Sequence[str]) -> int:
    """Question words the sentence swaps for another between the same two neighbours ("French words" for
    "English words"): the way an unanswerable question is often made from an answerable one."""
    in_sentence, in_question = set(sentence), set(question)
    count = 0
    for i in range(1, len(question) - 1):
        if question[i] in in_sentence:
            continue
        left, right = question[i - 1], question[i + 1]
        if any(
            sentence[j - 1] == left and sentence[j + 1] == right and sentence[j] not in in_question
            for j in range(1, len(sentence) - 1)
        ):
            count += 1
    return count


def confidence_features(question: str, candidates: Sequence[Candidate], idf: IdfFn | None = None) -> dict[str, float]:
    """Question-level features for the confidence model, from the scored candidates (best first)."""
    idf = idf or _default_idf
    q = analyse_question(question, idf)
    best = candidates[0]
    distinct: dict[tuple[str, int], float] = {}
    for c in candidates:
        key = (c.sentence.doc_id, c.sentence.start)
        distinct.setdefault(key, c.score)
    scores = np.array(sorted(distinct.values(), reverse=True))
    second = scores[1] if len(scores) > 1 else scores[0] - 5.0
    feats = {k: best.features[k] for k in _CONFIDENCE_KEYS}
    top = _analyse(best.sentence.text)
    feats.update(
        {
            "substitution": min(_substitutions(q.words, top.words), 2) / 2,
            "negation_mismatch": 1.0 if q.negated != top.negated else 0.0,
            "antonym_swap": 1.0 if _antonym_swap(question, best.sentence.text) else 0.0,
            "top_score": best.score / 10,
            "top_margin": (scores[0] - second) / 5,
            "top_share": float(1.0 / np.exp(scores - scores[0]).sum()),
            "question_when": 1.0 if q.when else 0.0,
            "question_count": 1.0 if q.count else 0.0,
            "question_who": 1.0 if q.who else 0.0,
            "question_negated": 1.0 if q.negated else 0.0,
            "question_length": len(q.words) / 10,
            "bias": 1.0,
        }
    )
    return feats


def rank_pool(passages: Sequence[Passage], candidates: Sequence[Candidate]) -> tuple[list[Passage], list[Candidate]]:
    """The pool re-ordered by best sentence, and its scored sentences (`score_candidates`, best first) indexed into
    that new order.

    Each passage's `score` becomes its best sentence's score (log-odds); a passage without sentences scores one
    below the lowest of those and keeps its retrieval order among such passages.
    """
    order = passage_order(candidates, len(passages))
    new_position = {old: new for new, old in enumerate(order)}
    best = _best_by_passage(candidates)
    floor = min(best.values(), default=0.0) - 1.0
    ranked = [replace(passages[n], score=round(best.get(n, floor), 4)) for n in order]
    moved = [Candidate(c.sentence, new_position[c.passage], c.features, c.score) for c in candidates]
    return ranked, moved
