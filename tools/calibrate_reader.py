"""Calibrate a reader on the fit half of a SQuAD-format folder: how its margin joins the linear sentence score, how
many candidates it reads, and the confidence model that reads its margins; writes `calibration.json` beside it.

    .venv/bin/python tools/calibrate_reader.py ../shared/data/squad2_dev --work /tmp/fit \
        [--reader rag/data/reader] [--candidates 4,6,8,12] [--blend-from /tmp/reddit] [--write]

What it does (fit = questions of the articles at even positions of articles.jsonl; the other half is only reported):
1. builds (or reuses) the index of every article with the default settings and embeds every question once;
2. for each question, scores the pool with the shipped linear model (`rag/data/answer_model.json`) and lets the
   reader read the windows of the best `max(--candidates)` sentences, keeping each window's readings, so that
   every candidate count is measured from one pass;
3. for each candidate count: fits the two blend coefficients (conditional logit over the fit questions' pooled
   sentences, positives = sentences holding a gold answer), re-scores, and measures answer@1 on the fit half;
   keeps the count with the best fit answer@1 among those within the latency budget (--max-candidates). With
   `--blend-from FOLDER` the blend and the count are fitted on that folder's fit half instead (built the same way
   in WORK/blend-from): text neither the linear model nor the reader was fitted on, such as a `qa_train` source the
   reader held out, written as a folder by tools/source_folder.py. On the SQuAD fit half the linear model is
   scored on the questions it was fitted on, so a blend fitted there trusts it more than new text warrants. With
   `--adaptive LO:HI` the table also holds rules that read LO windows, and HI when the reader's best margin over the
   LO is low (the bar set so that a share of the blend set reads HI): more of the right sentences read for the
   questions the reader is unsure of, at the median cost of LO;
4. fits the confidence model (answerable vs unanswerable) and the presence model (answerable questions with and
   without their article) over `confidence_features` + `reader_features`, as tools/fit_answer_model.py does, and
   leaves out the hand-made unanswerability cues (`--drop`) when the fit-half AUROC does not need them;
5. shifts the confidence model's bias so that the default abstain_threshold (0.21) is still the confidence that 92%
   of answerable fit questions reach, so one threshold means the same with and without the reader;
6. prints fit, holdout and full-set figures, and with --write saves the calibration into the reader folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.answer.ranking import AnswerModel, confidence_features, load_model, passage_order, score_candidates  # noqa: E402
from rag.answer.reader import OnnxReader, packaged_reader_dir  # noqa: E402
from rag.answer.reading import CALIBRATION_FILE, Blend, reader_features, rescore, windows_for  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.evaluation.metrics import auroc, contains_answer, normalize_answer, short_answer_scores  # noqa: E402
from rag.evaluation.runs import build_collection  # noqa: E402
from rag.evaluation.squad import load_squad  # noqa: E402
from rag.index.embedding import make_embedder  # noqa: E402

from tools.fit_answer_model import clogit_fit, logistic_fit  # noqa: E402

L2 = 1.0
TARGET_THRESHOLD = 0.21


def pool_windows(idx, question: str, qvec, k: int, top: int, allowed=None):
    """The question's pool as the engine ranks it without the reader: passages, scored candidates, the windows of
    the best `top` sentences (the reader's input) and the pool's documents."""
    passages, sents, vecs, signals, docs = idx.pool(question, qvec, k, allowed)
    cands = score_candidates(question, passages, sents, vecs, qvec, signals, idf=idx.lexical.idf_of)
    return passages, cands, windows_for(cands, sents, top), docs


def read_pool(idx, reader, question: str, qvec, k: int, top: int, allowed=None):
    passages, cands, windows, docs = pool_windows(idx, question, qvec, k, top, allowed)
    texts = {d: doc.text for d, doc in docs.items()}
    per_window = reader.read(question, windows, texts) if windows else []
    return passages, cands, per_window


def reads_for(per_window, rule) -> int:
    """How many windows a rule reads for one question: ("fixed", m) reads m; ("more", lo, hi, below) reads lo, and
    hi when the reader's best margin over those lo is under `below` (rag.answer.reading.read_candidates)."""
    if rule[0] == "fixed":
        return rule[1]
    _, lo, hi, below = rule
    return lo if best_margin(per_window, lo) >= below else hi


def best_margin(per_window, m: int) -> float:
    first = readings_upto(per_window, m)
    return max((r.score for r in first.values()), default=float("-inf"))


def rule_name(rule) -> str:
    return f"{rule[1]:d}" if rule[0] == "fixed" else f"{rule[1]}+{rule[2] - rule[1]}<{rule[3]:.2f}"


def readings_upto(per_window, m: int) -> dict:
    best = {}
    for readings in per_window[:m]:
        for r in readings:
            key = (r.sentence.doc_id, r.sentence.start)
            if key not in best or r.score > best[key].score:
                best[key] = r
    return best


class _NewsQuestion:
    """A news question as the blend fit reads a SQuAD one: gold answers by text only (no offsets)."""

    def __init__(self, q: dict):
        self.question, self.answers, self.answerable = q["question"], [], bool(q["answers"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--work", required=True)
    ap.add_argument("--reader", default=str(packaged_reader_dir()))
    ap.add_argument("--candidates", default="4,6,8")
    ap.add_argument("--max-candidates", type=int, default=8, help="the most candidates the latency budget allows")
    ap.add_argument(
        "--max-fixed",
        type=int,
        default=None,
        help="the most candidates read for every question (default --max-candidates); with --adaptive, "
        "--max-candidates bounds HI, which only some questions read",
    )
    ap.add_argument(
        "--blend-from",
        default=None,
        help="fit the blend and the candidate count on this SQuAD-format folder's fit half (step 3)",
    )
    ap.add_argument(
        "--news",
        default=None,
        help="a news question set (bench/news_calibration.jsonl): its fit part joins the blend and the "
        "confidence fit, weighted as much as the SQuAD fit half",
    )
    ap.add_argument("--news-index", default=None, help="the index of the articles the --news questions are asked of")
    ap.add_argument(
        "--news-weight",
        type=float,
        default=1.0,
        help="the news fit part's weight in the confidence fit, as a share of the SQuAD fit half's",
    )
    ap.add_argument(
        "--blend-mix",
        action="store_true",
        help="fit the blend and choose the candidate count on the SQuAD fit half, the --blend-from fit "
        "half and the --news fit part together, each part weighing the same (answer@1 averaged "
        "over the three parts chooses)",
    )
    ap.add_argument(
        "--reader-scales",
        default="1",
        help="multiples of the fitted reader coefficient to measure (and choose among) beside the fit",
    )
    ap.add_argument(
        "--adaptive",
        default=None,
        help="LO:HI: also measure reading LO windows and HI when the reader's best margin over the LO is low, "
        "the margin's bar set so that each of --more-shares of the blend set reads HI",
    )
    ap.add_argument(
        "--more-shares",
        default="0.2,0.35,0.5",
        help="shares of questions that read more with --adaptive (above 0.5 the p50 becomes HI windows' cost)",
    )
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="ask only this many questions (a quick check)")
    ap.add_argument(
        "--split",
        choices=("fit", "all"),
        default="fit",
        help="read the fit half only (enough to calibrate), or every question (to report the holdout too)",
    )
    ap.add_argument(
        "--drop",
        default="antonym_swap,substitution,negation_mismatch",
        help="confidence features to leave out when they do not lift the fit-half AUROC",
    )
    args = ap.parse_args()

    settings = Settings.load({"reader": "none"})
    emb = make_embedder(settings.model, settings.backend)
    data = load_squad(args.path, limit=args.limit, split=args.split)
    fit_titles = {q.doc_id for q in load_squad(args.path, split="fit").questions}
    work = Path(args.work)
    idx = build_collection(data.articles, work, settings, emb, None)
    cache = work / f"question_vectors-{args.split}-{args.limit or 'all'}.npy"
    if cache.exists():
        qvecs = np.load(cache, allow_pickle=False)
    else:
        qvecs = emb.embed_documents([q.question for q in data.questions], 64)
        np.save(cache, qvecs, allow_pickle=False)
    reader = OnnxReader(args.reader, threads=args.threads or None)
    counts = sorted(int(c) for c in args.candidates.split(","))
    adaptive = tuple(int(x) for x in args.adaptive.split(":")) if args.adaptive else None
    top = max(counts + list(adaptive or ()))
    # The absent pools feed the confidence fit only, which uses the chosen rule: never more than the budget reads.
    top_chosen = max(
        [c for c in counts if c <= args.max_candidates] + [x for x in adaptive or () if x <= args.max_candidates]
    )
    is_fit = np.array([q.doc_id in fit_titles for q in data.questions])
    titles = list(data.articles)
    allowed = {t: np.array(idx.catalog.chunk_ids_where([o for o in titles if o != t]), dtype=np.int64) for t in titles}
    base = load_model()

    t0 = time.time()
    rows, absent_rows = [], []

    def read_question(index, q, v):
        """The question's pool, its scored candidates, the readings of the best `top` windows, its gold answers."""
        return (
            *read_pool(index, reader, q.question, v, settings.k, top),
            [normalize_answer(t) for t in q.answer_texts],
        )

    for n, (q, v) in enumerate(zip(data.questions, qvecs)):
        passages, cands, per_window, golds = read_question(idx, q, v)
        holds = [bool(golds) and contains_answer(p.text, golds) for p in passages]
        rows.append((q, passages, cands, per_window, golds, holds))
        absent = None
        if q.answerable:
            absent = read_pool(idx, reader, q.question, v, 5, top_chosen, allowed[q.doc_id])
        absent_rows.append(absent)
        if n % 500 == 0:
            print(f"  read {n}/{len(data.questions)} in {time.time() - t0:.0f} s", flush=True)

    def labels(q, golds, cands):
        return np.array(
            [
                any(c.sentence.start <= s and e <= c.sentence.end for s, e in q.answers)
                or (bool(golds) and contains_answer(c.sentence.text, golds))
                for c in cands
            ],
            dtype=np.float64,
        )

    def blend_rows(cands, readings):
        floor = min((r.score for r in readings.values()), default=0.0)
        return np.array(
            [
                [
                    c.score,
                    readings[(c.sentence.doc_id, c.sentence.start)].score
                    if (c.sentence.doc_id, c.sentence.start) in readings
                    else floor,
                ]
                for c in cands
            ]
        )

    # Steps 2-3: the blend for each candidate count, chosen by fit-half answer@1 (of --blend-from when given).
    if args.blend_from:
        other = load_squad(args.blend_from, split="fit")
        other_idx = build_collection(other.articles, work / "blend-from", settings, emb, None)
        other_vecs = emb.embed_documents([q.question for q in other.questions], 64)
        blend_set = []
        for q, v in zip(other.questions, other_vecs):
            if q.answerable:
                blend_set.append((q, *read_question(other_idx, q, v)[1:]))
        parts = ["blend-from"] * len(blend_set)
        other_idx.close()
        print(f"blend fitted on {len(blend_set)} questions of {args.blend_from} (fit half)", flush=True)
    if not args.blend_from or args.blend_mix:
        squad_part = [
            (q, cands, per_window, golds)
            for (q, _, cands, per_window, golds, _), fit in zip(rows, is_fit)
            if fit and q.answerable
        ]
        blend_set = squad_part + (blend_set if args.blend_from else [])
        parts = ["squad-fit"] * len(squad_part) + (parts if args.blend_from else [])
    # The news fit part: read once here, then in the blend (answerable questions) and the confidence fit (all).
    news_rows = []
    if args.news:
        from rag import open_index

        with open(args.news, encoding="utf-8") as f:
            news = [json.loads(line) for line in f if line.strip()]
        news = [q for q in news if q.get("split") == "fit"]
        news_idx = open_index(args.news_index, settings=settings, embedder=emb)
        news_vecs = emb.embed_documents([q["question"] for q in news], 64)
        for q, v in zip(news, news_vecs):
            passages, cands, per_window = read_pool(news_idx, reader, q["question"], v, settings.k, top)
            golds = [normalize_answer(a) for a in q["answers"]]
            news_rows.append((q, cands, per_window, golds))
        news_lexical = news_idx.lexical
        for q, cands, per_window, golds in news_rows:
            if golds:
                blend_set.append((_NewsQuestion(q), cands, per_window, golds))
                parts.append("news-fit")
        print(
            f"news: {len(news_rows)} fit questions of {args.news}, "
            f"{sum(1 for r in news_rows if r[3])} answerable (joined to the blend set)",
            flush=True,
        )
    # Each part weighs the same in the fit and in the choice with --blend-mix; otherwise every question weighs 1.
    names = sorted(set(parts))
    share = {p: len(parts) / (len(names) * parts.count(p)) if args.blend_mix else 1.0 for p in names}
    scales = [float(x) for x in args.reader_scales.split(",")]
    rules: list[tuple] = [("fixed", m) for m in counts]
    if adaptive:
        lo, hi = adaptive
        # The bar is a quantile of the best margin over the first LO windows across the blend set's parts (each
        # weighing as in the fit), so that about `share` of the questions read HI.
        margins = np.array([best_margin(pw, lo) for (_q, cands, pw, _g) in blend_set])
        weights = np.array([share[p] for p in parts])
        order = np.argsort(margins)
        cum = np.cumsum(weights[order]) / weights.sum()
        for more_share in (float(x) for x in args.more_shares.split(",")):
            bar = float(margins[order][min(len(order) - 1, int(np.searchsorted(cum, more_share)))])
            rules.append(("more", lo, hi, round(bar, 3)))
    choice = None
    print(
        "windows read  scale  linear  reader  more  " + "  ".join(f"{p:>10s}" for p in names) + "        mean",
        flush=True,
    )
    for rule in rules:
        reads = [reads_for(per_window, rule) for (_q, _c, per_window, _g) in blend_set]
        groups, g_weights = [], []
        for (q, cands, per_window, golds), part, m in zip(blend_set, parts, reads):
            if not cands:
                continue
            y = labels(q, golds, cands)
            if y.any() and len(cands) > 1:
                groups.append((blend_rows(cands, readings_upto(per_window, m)), y))
                g_weights.append(share[part])
        fitted = clogit_fit(groups, 2, 0.01, g_weights)
        read_more = float(np.average([m > rule[1] for m in reads], weights=[share[p] for p in parts]))
        for scale in scales:
            w = np.array([fitted[0], fitted[1] * scale])
            hits: dict[str, list[bool]] = {p: [] for p in names}
            for (_q, cands, per_window, golds), part, m in zip(blend_set, parts, reads):
                best = rescore(cands, readings_upto(per_window, m), Blend(w[0], w[1], m))[:1]
                hits[part].append(bool(best) and contains_answer(best[0].sentence.text, golds))
            by_part = {p: float(np.mean(h)) for p, h in hits.items()}
            mean = (
                float(np.mean(list(by_part.values())))
                if args.blend_mix
                else float(np.mean([x for h in hits.values() for x in h]))
            )
            print(
                f"{rule_name(rule):>12s}  {scale:5.1f}  {w[0]:6.3f}  {w[1]:6.3f}  {read_more:4.2f}  "
                + "  ".join(f"{by_part[p]:10.4f}" for p in names)
                + f"  {mean:10.4f}",
                flush=True,
            )
            # Rules past the latency budget are measured for the table, never chosen: a fixed count past it, or
            # one that reads HI windows past it or for more than half the questions (the p50 would be HI's).
            within = (
                rule[1] <= (args.max_fixed or args.max_candidates)
                if rule[0] == "fixed"
                else rule[2] <= args.max_candidates and read_more <= 0.5
            )
            if within and (choice is None or mean > choice[2] + 0.002):
                choice = (rule, w, mean)
    rule, w, _ = choice
    m = rule[1]
    more = (rule[2] - rule[1], rule[3]) if rule[0] == "more" else (0, 0.0)
    blend = Blend(float(w[0]), float(w[1]), m, more=more[0], more_below=more[1])

    # Step 4: confidence and presence over the re-scored pools.
    def judged(q, passages, cands, per_window, golds, holds):
        if not cands:
            return None
        readings = readings_upto(per_window, reads_for(per_window, rule))
        scored = rescore(cands, readings, blend)
        feats = confidence_features(q.question, scored, idx.lexical.idf_of)
        feats.update(reader_features(scored[0], readings))
        top_passages = passage_order(scored, len(holds))[:10]
        first_hit = next((r for r, p in enumerate(top_passages) if holds[p]), None)
        best = scored[0]
        r = readings.get((best.sentence.doc_id, best.sentence.start))
        short = best.sentence.text if r is None else None
        if r is not None:
            doc_text = idx.document(best.sentence.doc_id).text
            short = doc_text[r.answer_start : r.answer_end]
        span = any(best.sentence.start <= s and e <= best.sentence.end for s, e in q.answers)
        text = bool(golds) and contains_answer(best.sentence.text, golds)
        return feats, first_hit, span, text, short

    results = [judged(*row) for row in rows]
    news_feats = []
    for q, cands, per_window, golds in news_rows:
        if not cands:
            continue
        readings = readings_upto(per_window, reads_for(per_window, rule))
        scored = rescore(cands, readings, blend)
        f = confidence_features(q["question"], scored, news_lexical.idf_of)
        f.update(reader_features(scored[0], readings))
        news_feats.append((f, float(bool(golds))))
    absent_feats = []
    for (q, *_), a in zip(rows, absent_rows):
        if a is None or not a[1]:
            absent_feats.append(None)
            continue
        passages, cands, per_window = a
        readings = readings_upto(per_window, reads_for(per_window, rule))
        scored = rescore(cands, readings, blend)
        f = confidence_features(q.question, scored, idx.lexical.idf_of)
        f.update(reader_features(scored[0], readings))
        absent_feats.append(f)

    def fit_confidence(dropped: set[str]):
        """Confidence and presence models over every feature but `dropped`, the bias shifted (step 5)."""
        cnames = [k for k in next(r for r in results if r)[0] if k != "bias" and k not in dropped] + ["bias"]
        Xc = np.array([[r[0][k] for k in cnames] for r, fit in zip(results, is_fit) if r and fit])
        yc = np.array([float(row[0].answerable) for row, r, fit in zip(rows, results, is_fit) if r and fit])
        wc = np.ones(len(yc))
        if news_feats:
            # News weighs --news-weight times the SQuAD fit half in all, so that neither kind of text sets the
            # confidence alone.
            Xc = np.vstack([Xc, np.array([[f[k] for k in cnames] for f, _ in news_feats])])
            yc = np.concatenate([yc, [y for _, y in news_feats]])
            wc = np.concatenate([wc, np.full(len(news_feats), args.news_weight * len(wc) / len(news_feats))])
        cweights = dict(zip(cnames, logistic_fit(Xc, yc, L2, wc).tolist()))
        present = [r[0] for row, r, fit in zip(rows, results, is_fit) if r and fit and row[0].answerable]
        gone = [f for f, fit in zip(absent_feats, is_fit) if f is not None and fit]
        Xp = np.array([[f[k] for k in cnames] for f in present + gone])
        yp = np.concatenate([np.ones(len(present)), np.zeros(len(gone))])
        pweights = dict(zip(cnames, logistic_fit(Xp, yp, L2).tolist()))

        def confidences(shift):
            model = AnswerModel({}, {**cweights, "bias": cweights["bias"] + shift}, 1.0, pweights)
            return [
                model.confidence(r[0]) if r else 0.0
                for row, r, fit in zip(rows, results, is_fit)
                if fit and row[0].answerable
            ]

        def news_confidences(shift):
            model = AnswerModel({}, {**cweights, "bias": cweights["bias"] + shift}, 1.0, pweights)
            return [model.confidence(f) for f, y in news_feats if y]

        def reached(shift) -> float:
            """The confidence 92% of answerable fit questions reach (SQuAD and news weighing the same)."""
            if not news_feats:
                return float(np.percentile(confidences(shift), 8))
            a, b = confidences(shift), news_confidences(shift)
            values = np.array(a + b)
            weights = np.concatenate([np.full(len(a), 1 / len(a)), np.full(len(b), args.news_weight / len(b))])
            order = np.argsort(values)
            cum = np.cumsum(weights[order]) / weights.sum()
            return float(values[order][np.searchsorted(cum, 0.08)])

        lo, hi = -20.0, 20.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if reached(mid) < TARGET_THRESHOLD:
                lo = mid
            else:
                hi = mid
        cweights["bias"] += hi
        return cweights, pweights

    def fit_auroc(cweights, pweights) -> float:
        model = AnswerModel({}, cweights, 1.0, pweights)
        a = [
            model.confidence(r[0]) if r else 0.0
            for row, r, fit in zip(rows, results, is_fit)
            if fit and row[0].answerable
        ]
        u = [
            model.confidence(r[0]) if r else 0.0
            for row, r, fit in zip(rows, results, is_fit)
            if fit and not row[0].answerable
        ]
        if news_feats:
            # The two AUROCs weighed as the fit weighs the two kinds of text, so that a cue that only helps one
            # kind is judged on both.
            na = [model.confidence(f) for f, y in news_feats if y]
            nu = [model.confidence(f) for f, y in news_feats if not y]
            return (auroc(a, u) + args.news_weight * auroc(na, nu)) / (1 + args.news_weight)
        return auroc(a, u)

    # Hand-made unanswerability cues are left out when, with the reader's features in, they do not lift the
    # fit-half AUROC by more than 0.002.
    dropped: set[str] = set()
    cweights, pweights = fit_confidence(dropped)
    candidates_to_drop = {d for d in args.drop.split(",") if d}
    if candidates_to_drop:
        without = fit_confidence(candidates_to_drop)
        kept, lost = fit_auroc(cweights, pweights), fit_auroc(*without)
        print(f"fit AUROC with {sorted(candidates_to_drop)}: {kept:.4f}, without: {lost:.4f}", flush=True)
        if lost >= kept - 0.002:
            dropped = candidates_to_drop
            cweights, pweights = without
    final = AnswerModel(base.weights, cweights, base.margin, pweights)

    report = {}
    for mask, name in ((is_fit, "fit"), (~is_fit, "holdout"), (np.ones_like(is_fit), "all")):
        if not mask.any() or (name == "all" and mask.sum() == is_fit.sum()):
            continue
        conf_a, conf_u, hit1, hit5, a1, s1, ems, f1s, gone_c = [], [], [], [], [], [], [], [], []
        for (q, *_), r, a, fit in zip(rows, results, absent_feats, mask):
            if not fit:
                continue
            conf = final.confidence(r[0]) if r else 0.0
            if not q.answerable:
                conf_u.append(conf)
                continue
            conf_a.append(conf)
            hit1.append(bool(r) and r[1] == 0)
            hit5.append(bool(r) and r[1] is not None and r[1] < 5)
            s1.append(bool(r) and r[2])
            a1.append(bool(r) and r[3])
            em, f1 = short_answer_scores(r[4] if r else None, q.answer_texts)
            ems.append(em)
            f1s.append(f1)
            gone_c.append(final.confidence(a) if a is not None else 0.0)
        figs = {
            "hit@1": np.mean(hit1),
            "hit@5": np.mean(hit5),
            "answer@1": np.mean(a1),
            "span@1": np.mean(s1),
            "short_em": np.mean(ems),
            "short_f1": np.mean(f1s),
            "answered": np.mean(np.array(conf_a) >= TARGET_THRESHOLD),
            "abstain_unanswerable": np.mean(np.array(conf_u) < TARGET_THRESHOLD),
            "abstain_auroc": auroc(conf_a, conf_u),
            "abstain_absent": np.mean(np.array(gone_c) < TARGET_THRESHOLD),
        }
        report[name] = {k: round(float(v), 4) for k, v in figs.items()}
        print(f"{name:8s} " + "  ".join(f"{k} {v:.3f}" for k, v in figs.items()), flush=True)
    if news_feats:
        na = [final.confidence(f) for f, y in news_feats if y]
        nu = [final.confidence(f) for f, y in news_feats if not y]
        figs = {
            "answered": np.mean(np.array(na) >= TARGET_THRESHOLD),
            "abstain_unanswerable": np.mean(np.array(nu) < TARGET_THRESHOLD),
            "abstain_auroc": auroc(na, nu),
        }
        report["news_fit"] = {k: round(float(v), 4) for k, v in figs.items()}
        print("news fit " + "  ".join(f"{k} {v:.3f}" for k, v in figs.items()), flush=True)
    print(f"windows read {rule_name(rule)}, blend linear {blend.linear:.4f} reader {blend.reader:.4f}")
    print("confidence weights", json.dumps({k: round(v, 3) for k, v in cweights.items()}))
    if args.write:
        doc = {
            "about": (
                "Written by tools/calibrate_reader.py on the fit half of the SQuAD 2.0 dev articles (even positions in "
                "articles.jsonl); blend_from: where the blend and candidates were fitted instead, if anywhere; news: the "
                "news question set whose fit part joined the blend and the confidence fit (news_weight: its weight "
                "there, as a share of the SQuAD fit half's). A read "
                "sentence scores linear * (linear model score) + reader * (reader margin); "
                "candidates: how many of the best linear candidates are read; more / more_below: how many more are "
                "read when the reader's best margin over those is below more_below. confidence_weights / presence_weights: "
                "logistic coefficients over rag.answer.ranking.confidence_features + rag.answer.reading.reader_features (confidence "
                "= product of the two sigmoids); the bias is shifted so that suggested_threshold is the confidence "
                "92% of answerable fit questions reach."
            ),
            "linear": round(blend.linear, 6),
            "reader": round(blend.reader, 6),
            "candidates": m,
            "more": blend.more,
            "more_below": blend.more_below,
            "blend_from": Path(args.blend_from).name if args.blend_from else None,
            "news": Path(args.news).name if args.news else None,
            "news_weight": args.news_weight if args.news else None,
            "blend_mix": bool(args.blend_mix),
            "confidence_weights": {k: round(v, 6) for k, v in cweights.items()},
            "presence_weights": {k: round(v, 6) for k, v in pweights.items()},
            "margin": base.margin,
            "suggested_threshold": TARGET_THRESHOLD,
            "dropped_features": sorted(dropped),
            "figures": report,
        }
        path = Path(args.reader) / CALIBRATION_FILE
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
