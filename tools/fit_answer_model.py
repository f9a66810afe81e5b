"""Fit the answer model (rag/data/answer_model.json) on the "fit" half of a SQuAD-format folder.

    .venv/bin/python tools/fit_answer_model.py ../shared/data/squad2_dev --work /tmp/fit [--write]

What it does, in order (all on questions of the articles at even positions of articles.jsonl; the other half is
only reported, never used to choose anything):
1. builds (or reuses) an index of every article with the default settings, and embeds every question once;
2. picks the hybrid retrieval weight with the best hit@1 + hit@5;
3. fits the sentence model: a softmax over each answerable question's candidate sentences (conditional logit),
   so the sentence covering a gold answer span scores highest; L2-regularized;
4. fits the confidence model: logistic regression of "the first sentence covers a gold span" (unanswerable
   questions are negatives) on the question-level features of rag.answer.confidence_features;
5. sets the suggested abstention threshold to the confidence that 92% of answerable fit questions reach;
6. prints fit and holdout figures, and with --write saves the coefficients.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.answer import AnswerModel, confidence_features, load_model, score_candidates  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.embedding import make_embedder  # noqa: E402
from rag.evaluation import _build, _contains, auroc, load_squad, normalize_answer  # noqa: E402
from rag.lexical import content_terms  # noqa: E402
from rag.retrieval import HybridRetriever, SentenceBoostRetriever, fuse  # noqa: E402

WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
L2 = 1.0


def softmax_fit(groups: list[tuple[np.ndarray, int]], dim: int, l2: float) -> np.ndarray:
    """Conditional logit: maximize sum log softmax(X w)[gold] - l2/2 |w|^2 (bias excluded: it cancels)."""
    from scipy.optimize import minimize

    def loss(w):
        total, grad = 0.5 * l2 * w @ w, l2 * w
        for X, gold in groups:
            z = X @ w
            z = z - z.max()
            p = np.exp(z)
            p /= p.sum()
            total -= np.log(p[gold] + 1e-12)
            grad = grad - (X[gold] - p @ X)
        return total, grad

    return minimize(loss, np.zeros(dim), jac=True, method="L-BFGS-B").x


def logistic_fit(X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    from scipy.optimize import minimize

    def loss(w):
        z = X @ w
        p = 1 / (1 + np.exp(-z))
        ll = np.sum(np.logaddexp(0, z) - y * z) + 0.5 * l2 * w[:-1] @ w[:-1]
        g = X.T @ (p - y)
        g[:-1] += l2 * w[:-1]
        return ll, g

    return minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B").x


def collect(idx, data, qvecs, weight: float, k: int):
    """Per question: candidates (features, covers-gold labels) from the top-k passages."""
    # The same candidates the engine sees: fused retrieval re-ranked by each passage's best sentence.
    retriever = SentenceBoostRetriever(
        HybridRetriever(idx.store, idx.lexical, weight), idx.catalog.sentence_rows_of_chunks, idx.sentence_matrix
    )
    out = []
    for q, v in zip(data.questions, qvecs):
        hits = retriever.retrieve(q.question, v, k * 2)
        passages, cosines, docs = idx._passages(hits, k)
        sents, vecs = idx._sentences(passages, docs)
        cands = score_candidates(q.question, passages, sents, vecs, v, cosines, idf=idx.lexical.idf_of, model=MODEL0)
        labels = [any(c.sentence.start <= s and e <= c.sentence.end for s, e in q.answers) for c in cands]
        out.append((q, cands, labels))
    return out


MODEL0 = AnswerModel({}, {}, 1.0)


def retrieval_scores(idx, data, qvecs, split_mask):
    """hit@1, hit@5 on the fit questions for each fusion weight (pools fetched once)."""
    pools = []
    for q, v in zip(data.questions, qvecs):
        ds, di = idx.store.search(v[None, :], 50)
        ls, li = idx.lexical.search(q.question, 50)
        pools.append(({int(i): float(s) for s, i in zip(ds[0], di[0]) if i >= 0}, {int(i): float(s) for s, i in zip(ls, li)}))
    rows = idx.catalog.all_chunks()
    text_of = {r.id: idx.document(r.doc_id).text[r.start : r.end] for r in rows}
    res = {}
    for w in (0.0, *WEIGHTS, 1.0):
        hits1 = hits5 = n = 0
        for (q, (d, l)), m in zip(zip(data.questions, pools), split_mask):
            if not m or not q.answerable:
                continue
            fused = fuse(d, l, w)
            top = [i for i, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:5]]
            golds = [normalize_answer(t) for t in q.answer_texts]
            r = next((j for j, c in enumerate(top) if _contains(text_of[c], golds)), None)
            n += 1
            hits1 += r == 0
            hits5 += r is not None
        res[w] = (hits1 / n, hits5 / n)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--work", required=True, help="folder for the index and cached question vectors")
    ap.add_argument("--chunk-size", type=int)
    ap.add_argument("--chunk-overlap", type=int)
    ap.add_argument("--confidence-label", choices=("answerable", "correct"), default="answerable",
                    help="what the confidence estimates: that the articles answer, or that the first sentence does")
    ap.add_argument("--write", action="store_true", help="save rag/data/answer_model.json")
    args = ap.parse_args()
    settings = Settings.load({"chunk_size": args.chunk_size, "chunk_overlap": args.chunk_overlap, "retriever": "hybrid"})
    emb = make_embedder(settings.model, settings.backend)
    data = load_squad(args.path)
    fit_titles = {q.doc_id for q in load_squad(args.path, split="fit").questions}
    work = Path(args.work)
    idx = _build(data.articles, work, settings, emb, None)
    cache = work / "question_vectors.npy"
    if cache.exists():
        qvecs = np.load(cache, allow_pickle=False)
    else:
        qvecs = emb.embed_documents([q.question for q in data.questions], 64)
        np.save(cache, qvecs, allow_pickle=False)
    is_fit = np.array([q.doc_id in fit_titles for q in data.questions])
    print(f"{len(data.questions)} questions, {is_fit.sum()} in the fit half; chunks {idx.info()['chunks']}", flush=True)

    rs = retrieval_scores(idx, data, qvecs, is_fit)
    for w, (h1, h5) in rs.items():
        print(f"fusion weight {w:.1f}: fit hit@1 {h1:.3f} hit@5 {h5:.3f}")
    weight = max(WEIGHTS, key=lambda w: rs[w][0] + rs[w][1])
    print(f"chosen weight {weight}", flush=True)

    rows = collect(idx, data, qvecs, weight, settings.k)
    names = list(rows[0][1][0].features)
    groups = []
    for (q, cands, labels), m in zip(rows, is_fit):
        if m and q.answerable and any(labels) and len(cands) > 1:
            X = np.array([[c.features[n] for n in names] for c in cands])
            groups.append((X, labels.index(True)))
    bias = names.index("bias")
    w = softmax_fit(groups, len(names), L2)
    w = np.where(np.isfinite(w), w, 0.0)
    w[bias] = 0.0
    weights = dict(zip(names, w.tolist()))
    model = AnswerModel(weights, {}, 1.0)

    # Re-rank with the fitted sentence model, then fit the confidence on the new first sentence.
    conf_rows = []
    for q, cands, labels in rows:
        if not cands:
            conf_rows.append(None)
            continue
        order = sorted(range(len(cands)), key=lambda j: -model.score(cands[j].features))
        rescored = [type(cands[j])(cands[j].sentence, cands[j].passage_rank, cands[j].features, model.score(cands[j].features),
                                   cands[j].context_terms) for j in order]
        cf = confidence_features(rescored[0], rescored[1] if len(rescored) > 1 else None, content_terms(q.question),
                                 idx.lexical.idf_of, q.question)
        conf_rows.append((cf, labels[order[0]] if args.confidence_label == "correct" else q.answerable, q.answerable,
                          labels[order[0]]))
    cnames = list(next(r for r in conf_rows if r)[0])
    cnames = [n for n in cnames if n != "bias"] + ["bias"]
    Xc = np.array([[r[0][n] for n in cnames] for r, m in zip(conf_rows, is_fit) if r and m])
    yc = np.array([float(r[1]) for r, m in zip(conf_rows, is_fit) if r and m])
    wc = logistic_fit(Xc, yc, L2)
    cweights = dict(zip(cnames, wc.tolist()))
    final = AnswerModel(weights, cweights, 1.0)

    def report(mask, name):
        ans_conf, una_conf, a1 = [], [], []
        for r, m in zip(conf_rows, mask):
            if not m:
                continue
            conf = final.confidence(r[0]) if r else 0.0
            (ans_conf if (r and r[2]) else una_conf).append(conf)
            if r and r[2]:
                a1.append(r[3])
        return ans_conf, una_conf, float(np.mean(a1))

    fa, fu, f_a1 = report(is_fit, "fit")
    threshold = float(np.floor(np.percentile(fa, 8) * 100) / 100)
    for mask, name in ((is_fit, "fit"), (~is_fit, "holdout"), (np.ones_like(is_fit), "all")):
        a, u, s1 = report(mask, name)
        answered = np.mean(np.array(a) >= threshold)
        abst = np.mean(np.array(u) < threshold)
        print(f"{name:8s} span@1 {s1:.3f}  auroc {auroc(a, u):.3f}  answered {answered:.3f}  abstain_unanswerable {abst:.3f}")
    print("sentence weights", json.dumps({k: round(v, 3) for k, v in weights.items()}))
    print("confidence weights", json.dumps({k: round(v, 3) for k, v in cweights.items()}))
    print(f"threshold {threshold}")
    if args.write:
        doc = {
            "about": (
                "Written by tools/fit_answer_model.py on the fit half of the SQuAD 2.0 dev articles (even positions in "
                "articles.jsonl). weights: conditional-logit coefficients of the sentence features (rag.answer."
                "sentence_features); a sentence's score is their weighted sum. confidence_weights: logistic "
                "coefficients over rag.answer.confidence_features; confidence = sigmoid(weighted sum) estimates the "
                "chance that the first quoted sentence covers the answer. margin: further sentences are quoted only "
                "within this many score units of the first. suggested_threshold: the confidence 92% of answerable fit "
                "questions reach; hybrid_weight: the fusion weight chosen on the same half."
            ),
            "weights": {k: round(v, 5) for k, v in weights.items()},
            "confidence_weights": {k: round(v, 5) for k, v in cweights.items()},
            "margin": 1.0,
            "suggested_threshold": threshold,
            "hybrid_weight": weight,
            "fitted_on": {"chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap, "k": settings.k},
        }
        path = ROOT / "rag" / "data" / "answer_model.json"
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        load_model.cache_clear()
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
