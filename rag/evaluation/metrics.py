"""The measures every evaluation shares: SQuAD's answer normalization and containment, short-answer EM/F1, AUROC,
nDCG and percentiles. Pure functions over plain values."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Sequence

__all__ = ["auroc", "contains_answer", "ndcg_at", "normalize_answer", "percentile", "short_answer_scores"]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's official normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def contains_answer(haystack: str, golds: Iterable[str]) -> bool:
    # Padding with spaces makes "1" not match inside "1914": answers are whole normalized words.
    h = f" {normalize_answer(haystack)} "
    return any(g and f" {g} " in h for g in golds)


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    import numpy as np

    scores = np.concatenate([np.asarray(positives, float), np.asarray(negatives, float)])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), float)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (as trec_eval and BEIR compute it)."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, float), q)) if len(values) else float("nan")


def short_answer_scores(prediction: str | None, golds: Sequence[str]) -> tuple[float, float]:
    """SQuAD's official exact match and token F1 of a short answer against its gold answers (the best of them);
    no prediction scores 0."""
    if prediction is None or not golds:
        return 0.0, 0.0
    pred = normalize_answer(prediction).split()
    em = f1 = 0.0
    for gold in golds:
        g = normalize_answer(gold).split()
        em = max(em, float(pred == g))
        common: dict[str, int] = {}
        for w in g:
            common[w] = common.get(w, 0) + 1
        same = 0
        for w in pred:
            if common.get(w, 0) > 0:
                common[w] -= 1
                same += 1
        if same:
            precision, recall = same / len(pred), same / len(g)
            f1 = max(f1, 2 * precision * recall / (precision + recall))
    return em, f1
