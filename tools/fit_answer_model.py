"""Fit the answer model (rag/data/answer_model.json) on the "fit" half of a SQuAD-format folder.

    .venv/bin/python tools/fit_answer_model.py ../shared/data/squad2_dev --work /tmp/fit [--write]

What it does, in order (all on questions of the articles at even positions of articles.jsonl; the other half is
only reported, never used to choose anything):
1. builds (or reuses) an index of every article with the default settings, and embeds every question once;
2. retrieves each question's pool exactly as the engine does (`Index.pool`) and computes the features of every
   (passage, sentence) pair with `rag.answer.ranking.score_candidates`;
3. fits the sentence model: a softmax over each answerable question's pooled sentences (conditional logit) whose
   positives are the sentences covering a gold answer span or holding a gold answer's text; L2-regularized;
4. fits the confidence model: logistic regression of "the question is answerable" on
   `rag.answer.ranking.confidence_features` of the re-scored pool;
5. fits the presence model: logistic regression, on the same features, of answerable questions against the same
   questions asked with their own article left out (the articles never mention the subject); the engine's
   confidence is the product of the two models;
6. sets the suggested abstention threshold to the confidence that 92% of answerable fit questions reach;
7. prints fit, holdout and full-set figures (abstain_absent: share of answerable questions abstained on when their
   article is left out), and with --write saves the coefficients.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.answer.engine import RANK_POOL  # noqa: E402
from rag.answer.ranking import AnswerModel, Candidate, confidence_features, load_model, passage_order, score_candidates  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.evaluation.metrics import auroc, contains_answer, normalize_answer  # noqa: E402
from rag.evaluation.runs import build_collection  # noqa: E402
from rag.evaluation.squad import load_squad  # noqa: E402
from rag.index.embedding import make_embedder  # noqa: E402

L2 = 1.0
ZERO = AnswerModel({}, {}, 1.0)


def clogit_fit(
    groups: list[tuple[np.ndarray, np.ndarray]], dim: int, l2: float, weights: list[float] | None = None
) -> np.ndarray:
    """Conditional logit with several positives: maximize sum_g weight_g log sum_{positives} softmax(X w)
    - l2/2 |w|^2 (every group weighing 1 when `weights` is None)."""
    from scipy.optimize import minimize

    weights = [1.0] * len(groups) if weights is None else weights

    def loss(w):
        total, grad = 0.5 * l2 * w @ w, l2 * w
        for (X, y), g_w in zip(groups, weights):
            z = X @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            pos = p * y
            mass = pos.sum()
            total -= g_w * np.log(mass + 1e-300)
            grad = grad - g_w * ((pos / mass) @ X - p @ X)
        return total, grad

    return minimize(loss, np.zeros(dim), jac=True, method="L-BFGS-B").x


def logistic_fit(X: np.ndarray, y: np.ndarray, l2: float, weight: np.ndarray | None = None) -> np.ndarray:
    """Logistic regression (rows weighted by `weight`), L2 on every coefficient but the last (the bias column)."""
    from scipy.optimize import minimize

    weight = np.ones(len(y)) if weight is None else weight

    def loss(w):
        z = X @ w
        p = 1 / (1 + np.exp(-z))
        ll = np.sum(weight * (np.logaddexp(0, z) - y * z)) + 0.5 * l2 * w[:-1] @ w[:-1]
        g = X.T @ (weight * (p - y))
        g[:-1] += l2 * w[:-1]
        return ll, g

    return minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B").x


def collect(idx, data, qvecs, k: int):
    """Per question: pooled candidates (unscored), feature matrix, positive labels, and passage texts."""
    out = []
    names = None
    for n, (q, v) in enumerate(zip(data.questions, qvecs)):
        passages, sents, vecs, signals, _ = idx.pool(q.question, v, k)
        cands = score_candidates(q.question, passages, sents, vecs, v, signals, idf=idx.lexical.idf_of, model=ZERO)
        golds = [normalize_answer(t) for t in q.answer_texts]
        if names is None and cands:
            names = list(cands[0].features)
        X = np.array([[c.features[f] for f in names] for c in cands], dtype=np.float32).reshape(len(cands), len(names))
        span = np.array([any(c.sentence.start <= s and e <= c.sentence.end for s, e in q.answers) for c in cands], bool)
        text = np.array([bool(golds) and contains_answer(c.sentence.text, golds) for c in cands], bool)
        holds = [bool(golds) and contains_answer(p.text, golds) for p in passages]
        out.append((q, cands, X, span, text, holds))
        if n % 1000 == 0:
            print(f"  collected {n}/{len(data.questions)}", flush=True)
    return names, out


def absent_confidences(idx, data, qvecs, model: AnswerModel):
    """Confidence features of each answerable question asked with its own article left out (so nothing answers it)."""
    titles = list(data.articles)
    allowed = {t: np.array(idx.catalog.chunk_ids_where([o for o in titles if o != t]), dtype=np.int64) for t in titles}
    out = []
    for q, v in zip(data.questions, qvecs):
        if not q.answerable:
            out.append(None)
            continue
        passages, sents, vecs, signals, _ = idx.pool(q.question, v, 5, allowed[q.doc_id])
        cands = score_candidates(q.question, passages, sents, vecs, v, signals, idf=idx.lexical.idf_of, model=model)
        out.append(confidence_features(q.question, cands, idx.lexical.idf_of) if cands else None)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--work", required=True, help="folder for the index and cached question vectors")
    ap.add_argument("--write", action="store_true", help="save rag/data/answer_model.json")
    ap.add_argument(
        "--no-presence",
        action="store_true",
        help="leave out the model of whether the articles speak of the question's subject at all",
    )
    args = ap.parse_args()
    settings = Settings.load({})
    emb = make_embedder(settings.model, settings.backend)
    data = load_squad(args.path)
    fit_titles = {q.doc_id for q in load_squad(args.path, split="fit").questions}
    work = Path(args.work)
    idx = build_collection(data.articles, work, settings, emb, None)
    cache = work / "question_vectors.npy"
    if cache.exists():
        qvecs = np.load(cache, allow_pickle=False)
    else:
        qvecs = emb.embed_documents([q.question for q in data.questions], 64)
        np.save(cache, qvecs, allow_pickle=False)
    is_fit = np.array([q.doc_id in fit_titles for q in data.questions])
    print(f"{len(data.questions)} questions, {is_fit.sum()} in the fit half; chunks {idx.info()['chunks']}", flush=True)

    names, rows = collect(idx, data, qvecs, settings.k)
    groups = [
        (X.astype(np.float64), (span | text).astype(np.float64))
        for (q, _, X, span, text, _), m in zip(rows, is_fit)
        if m and q.answerable and (span | text).any() and len(X) > 1
    ]
    w = clogit_fit(groups, len(names), L2)
    weights = dict(zip(names, np.where(np.isfinite(w), w, 0.0).tolist()))

    # Re-score with the fitted sentence model; the confidence model reads the new best sentence.
    judged = []
    for q, cands, X, span, text, holds in rows:
        if not len(cands):
            judged.append(None)
            continue
        scores = X.astype(np.float64) @ w
        order = np.argsort(-scores, kind="stable")
        scored = [Candidate(cands[j].sentence, cands[j].passage, cands[j].features, float(scores[j])) for j in order]
        top = passage_order(scored, len(holds))[:10]
        first_hit = next((r for r, p in enumerate(top) if holds[p]), None)
        cf = confidence_features(q.question, scored, idx.lexical.idf_of)
        judged.append((cf, first_hit, bool(span[order[0]]), bool(text[order[0]])))
    cnames = [n for n in next(j for j in judged if j)[0] if n != "bias"] + ["bias"]
    Xc = np.array([[j[0][n] for n in cnames] for j, m in zip(judged, is_fit) if j and m])
    yc = np.array([float(q.answerable) for (q, *_), j, m in zip(rows, judged, is_fit) if j and m])
    wc = logistic_fit(Xc, yc, L2)
    cweights = dict(zip(cnames, wc.tolist()))
    # SQuAD's unanswerable questions are all about an article that is there. A second model learns whether the
    # articles speak of the question's subject at all, from the same answerable questions asked with their own
    # article left out; the confidence is the product of the two.
    absent = absent_confidences(idx, data, qvecs, AnswerModel(weights, {}, 1.0))
    pweights: dict[str, float] = {}
    if not args.no_presence:
        present = [j[0] for (q, *_), j, m in zip(rows, judged, is_fit) if j and m and q.answerable]
        gone = [f for f, m in zip(absent, is_fit) if f is not None and m]
        Xp = np.array([[f[n] for n in cnames] for f in present + gone])
        yp = np.concatenate([np.ones(len(present)), np.zeros(len(gone))])
        pweights = dict(zip(cnames, logistic_fit(Xp, yp, L2).tolist()))
    final = AnswerModel(weights, cweights, 1.0, pweights)

    def figures(mask):
        conf_a, conf_u, hit1, hit5, a1, s1 = [], [], [], [], [], []
        for (q, *_), j, m in zip(rows, judged, mask):
            if not m:
                continue
            conf = final.confidence(j[0]) if j else 0.0
            if not q.answerable:
                conf_u.append(conf)
                continue
            conf_a.append(conf)
            hit1.append(bool(j) and j[1] == 0)
            hit5.append(bool(j) and j[1] is not None and j[1] < 5)
            a1.append(bool(j) and j[3])
            s1.append(bool(j) and j[2])
        return (
            conf_a,
            conf_u,
            {"hit@1": np.mean(hit1), "hit@5": np.mean(hit5), "answer@1": np.mean(a1), "span@1": np.mean(s1)},
        )

    fa, _, _ = figures(is_fit)
    threshold = float(np.floor(np.percentile(fa, 8) * 100) / 100)
    for mask, name in ((is_fit, "fit"), (~is_fit, "holdout"), (np.ones_like(is_fit), "all")):
        a, u, f = figures(mask)
        answered = np.mean(np.array(a) >= threshold)
        abst = np.mean(np.array(u) < threshold)
        gone = [final.confidence(x) for x, m in zip(absent, mask) if x is not None and m]
        f["abstain_absent"] = np.mean(np.array(gone) < threshold)
        f["absent_auroc"] = auroc(a, gone)
        print(
            f"{name:8s} "
            + "  ".join(f"{k} {v:.3f}" for k, v in f.items())
            + f"  auroc {auroc(a, u):.3f}  answered {answered:.3f}  abstain_unanswerable {abst:.3f}"
        )
    print("sentence weights", json.dumps({k: round(v, 3) for k, v in weights.items()}))
    print("confidence weights", json.dumps({k: round(v, 3) for k, v in cweights.items()}))
    print(f"threshold {threshold}")
    if args.write:
        doc = {
            "about": (
                "Written by tools/fit_answer_model.py on the fit half of the SQuAD 2.0 dev articles (even positions in "
                "articles.jsonl). weights: conditional-logit coefficients of the features of rag.answer.ranking."
                "score_candidates; a sentence's score is their weighted sum and a passage ranks by its best sentence. "
                "confidence_weights: logistic coefficients over rag.answer.ranking.confidence_features; confidence = "
                "sigmoid(weighted sum) estimates the chance that the best sentence answers a question about what the "
                "articles discuss; presence_weights: logistic coefficients, same features, for the chance that the "
                "articles discuss the question's subject at all; the confidence is the product. margin: further "
                "sentences are quoted only within this many score units of the first. suggested_threshold: the "
                "confidence 92% of answerable fit questions reach."
            ),
            "weights": {k: round(v, 5) for k, v in weights.items()},
            "confidence_weights": {k: round(v, 5) for k, v in cweights.items()},
            "presence_weights": {k: round(v, 5) for k, v in pweights.items()},
            "margin": 1.0,
            "suggested_threshold": threshold,
            "fitted_on": {
                "chunk_size": settings.chunk_size,
                "chunk_overlap": settings.chunk_overlap,
                "k": settings.k,
                "pool": RANK_POOL,
                "retriever": settings.retriever,
            },
        }
        path = ROOT / "rag" / "data" / "answer_model.json"
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        load_model.cache_clear()
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
