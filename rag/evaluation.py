"""`rag eval`: answer quality on SQuAD-format and BEIR-format data, beside the plain baseline a user would assemble.

SQuAD folder: `articles.jsonl` ({title, paragraphs: [str]}) and `questions.jsonl` ({id, title, paragraph_index,
question, answers: [{text, answer_start}], is_impossible}). Each article is indexed as one document whose text is
its paragraphs joined by a blank line, so a gold answer's offset in the document is its paragraph's offset plus
`answer_start`.

BEIR folder: `corpus.jsonl` ({_id, title, text}), `queries.jsonl` ({_id, text}), `qrels/test.tsv`
(query-id, corpus-id, score, with a header line).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import string
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .errors import ConfigError, SourceError

__all__ = [
    "SquadQuestion",
    "SquadSet",
    "QuestionResult",
    "load_squad",
    "load_beir",
    "normalize_answer",
    "squad_metrics",
    "auroc",
    "ndcg_at",
    "run_squad",
    "run_beir",
    "split_of",
    "TARGETS",
    "register",
]

PARAGRAPH_JOIN = "\n\n"

# The quality targets for the full SQuAD 2.0 dev set (docs/quality.md); "min" means the metric must be at least it.
TARGETS = {
    "hit@1": 0.93,
    "hit@5": 0.99,
    "answer@1": 0.86,
    "span@1": 0.84,
    "short_f1": 0.70,
    "abstain_auroc": 0.85,
    "answered": 0.90,
    "abstain_absent": 0.95,
}


# -- data ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SquadQuestion:
    """A question with its gold answers as [start, end) character spans of its article's document text."""

    id: str
    question: str
    doc_id: str
    answers: tuple[tuple[int, int], ...]
    answer_texts: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class SquadSet:
    """Articles (doc id -> (title, text)) and their questions, in file order."""

    articles: dict[str, tuple[str, str]]
    questions: tuple[SquadQuestion, ...]


def split_of(article_position: int) -> str:
    """The fixed fit/holdout split: articles at even positions of articles.jsonl fit the answer model."""
    return "fit" if article_position % 2 == 0 else "holdout"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SourceError(f"{path} is missing; a SQuAD folder holds articles.jsonl and questions.jsonl")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SourceError(f"{path}:{n} is not valid JSON ({exc.msg}); fix or remove that line") from None
    return out


def load_squad(
    folder: str | Path, *, articles: Sequence[str] | None = None, split: str = "all", limit: int | None = None
) -> SquadSet:
    """Read a SQuAD-format folder into documents and questions with document-level answer spans.

    Args:
        folder: holds articles.jsonl and questions.jsonl.
        articles: keep only these titles (default: all); the index holds only the kept articles.
        split: "fit", "holdout" or "all": which articles' questions are asked (every kept article is indexed).
        limit: ask at most this many questions, spread evenly over the file.

    Raises:
        SourceError: a file is missing or malformed, or a gold answer does not match its paragraph.
    """
    folder = Path(folder)
    rows = _read_jsonl(folder / "articles.jsonl")
    docs: dict[str, tuple[str, str]] = {}
    offsets: dict[str, list[int]] = {}
    split_by_title: dict[str, str] = {}
    for pos, a in enumerate(rows):
        title = a["title"]
        split_by_title[title] = split_of(pos)
        if articles and title not in articles:
            continue
        starts, cursor = [], 0
        for p in a["paragraphs"]:
            starts.append(cursor)
            cursor += len(p) + len(PARAGRAPH_JOIN)
        docs[title] = (title.replace("_", " "), PARAGRAPH_JOIN.join(a["paragraphs"]))
        offsets[title] = starts
    if articles:
        unknown = sorted(set(articles) - set(docs))
        if unknown:
            raise SourceError(f"{folder / 'articles.jsonl'} has no article titled {unknown[0]!r}; check --articles")
    questions = []
    for q in _read_jsonl(folder / "questions.jsonl"):
        title = q["title"]
        if title not in docs or (split != "all" and split_by_title[title] != split):
            continue
        base = offsets[title][q["paragraph_index"]]
        text = docs[title][1]
        spans, texts = [], []
        for ans in q.get("answers") or []:
            s = base + int(ans["answer_start"])
            e = s + len(ans["text"])
            if text[s:e] != ans["text"]:
                raise SourceError(f"{folder / 'questions.jsonl'}: answer of {q['id']} does not match its paragraph at {s}")
            spans.append((s, e))
            texts.append(ans["text"])
        questions.append(SquadQuestion(q["id"], q["question"], title, tuple(spans), tuple(texts)))
    if limit is not None and 0 < limit < len(questions):
        step = len(questions) / limit
        questions = [questions[int(i * step)] for i in range(limit)]
    return SquadSet(docs, tuple(questions))


def load_beir(folder: str | Path, limit: int | None = None):
    """Read a BEIR folder: (corpus {id: (title, text)}, queries {id: text}, qrels {query id: {doc id: grade}})."""
    folder = Path(folder)
    corpus = {str(r["_id"]): (r.get("title") or "", r["text"]) for r in _read_jsonl(folder / "corpus.jsonl")}
    queries = {str(r["_id"]): r["text"] for r in _read_jsonl(folder / "queries.jsonl")}
    qrels_path = folder / "qrels" / "test.tsv"
    if not qrels_path.is_file():
        raise SourceError(f"{qrels_path} is missing; a BEIR folder holds qrels/test.tsv")
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(qrels_path.read_text(encoding="utf-8").splitlines()):
        parts = line.split("\t")
        if n == 0 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # header
        if len(parts) < 3:
            continue
        qid, did, grade = parts[0], parts[1], int(parts[2])
        if grade > 0:
            qrels.setdefault(qid, {})[did] = grade
    queries = {q: t for q, t in queries.items() if q in qrels}
    if limit is not None and 0 < limit < len(queries):
        queries = dict(list(queries.items())[:limit])
    return corpus, queries, qrels


# -- metrics ---------------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's official normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _contains(haystack: str, golds: Iterable[str]) -> bool:
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


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, float), q)) if len(values) else float("nan")


@dataclass
class QuestionResult:
    """What one system did with one question (the input to `squad_metrics`).

    Attributes:
        passages: texts of the retrieved passages, best first (at least 10 when available).
        first_quote, quotes: the first and all quoted sentences of the answer given with abstention off.
        first_span: the first citation's [start, end) in the document, or None.
        confidence: the answer's confidence score.
        abstained: whether it abstained at the threshold being evaluated.
        seconds: time of the question call.
        absent_confidence, absent_abstained: the same for the question asked with its own article left out (answerable
            questions of a set with more than one article; None otherwise).
        short_answer: the first citation's short answer, or None.
    """

    question: SquadQuestion
    passages: list[str]
    first_quote: str | None
    quotes: list[str]
    first_span: tuple[int, int] | None
    confidence: float
    abstained: bool
    seconds: float
    absent_confidence: float | None = None
    absent_abstained: bool | None = None
    short_answer: str | None = None


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


def squad_metrics(results: Sequence[QuestionResult]) -> dict[str, float]:
    """Retrieval, answer, span, abstention and latency figures over a list of question results.

    hit@k and MRR (over the first 10 passages), answer@1, answer@any and span@1 count answerable questions
    only; answer@1 and span@1 judge the answer given with abstention off, and `answer@1_answered` counts an
    abstention as a miss. `answered` is the share of answerable questions answered at the threshold;
    `abstain_unanswerable` the share of unanswerable ones abstained on; `abstain_auroc` separates the two by
    confidence. `short_em` / `short_f1` score the first citation's short answer (the reader's span) against the gold
    answers of answerable questions with SQuAD's official normalization (abstention off; none given scores 0).
    `abstain_absent` is the share of answerable questions abstained on when asked with their own article
    left out (nothing indexed answers them then), `absent_auroc` separates those from the same questions asked of
    every article.
    """
    ans = [r for r in results if r.question.answerable]
    una = [r for r in results if not r.question.answerable]
    out: dict[str, float] = {"questions": len(results), "answerable": len(ans), "unanswerable": len(una)}
    n = max(len(ans), 1)
    first_hit = []
    for r in ans:
        golds = [normalize_answer(t) for t in r.question.answer_texts]
        rank = next((i for i, p in enumerate(r.passages[:10]) if _contains(p, golds)), None)
        first_hit.append(rank)
        r_any = any(_contains(q, golds) for q in r.quotes)
        setattr(r, "_answer_any", r_any)
        setattr(r, "_answer_1", r.first_quote is not None and _contains(r.first_quote, golds))
        setattr(r, "_span_1", r.first_span is not None and any(r.first_span[0] <= s and e <= r.first_span[1] for s, e in r.question.answers))
    for k in (1, 5, 10):
        out[f"hit@{k}"] = sum(1 for x in first_hit if x is not None and x < k) / n
    out["mrr@10"] = sum(1.0 / (x + 1) for x in first_hit if x is not None) / n
    out["answer@1"] = sum(r._answer_1 for r in ans) / n
    out["answer@any"] = sum(r._answer_any for r in ans) / n
    out["span@1"] = sum(r._span_1 for r in ans) / n
    shorts = [short_answer_scores(r.short_answer, r.question.answer_texts) for r in ans]
    if any(r.short_answer is not None for r in ans):
        out["short_em"] = sum(em for em, _ in shorts) / n
        out["short_f1"] = sum(f1 for _, f1 in shorts) / n
    out["answer@1_answered"] = sum(r._answer_1 and not r.abstained for r in ans) / n
    out["answered"] = sum(not r.abstained for r in ans) / n
    out["abstain_unanswerable"] = sum(r.abstained for r in una) / max(len(una), 1)
    out["abstain_answerable"] = sum(r.abstained for r in ans) / n
    out["abstain_auroc"] = auroc([r.confidence for r in ans], [r.confidence for r in una])
    gone = [r for r in ans if r.absent_confidence is not None]
    if gone:
        out["abstain_absent"] = sum(bool(r.absent_abstained) for r in gone) / len(gone)
        out["absent_auroc"] = auroc([r.confidence for r in gone], [r.absent_confidence for r in gone])
    secs = [r.seconds * 1000 for r in results]
    out["latency_p50_ms"] = _percentile(secs, 50)
    out["latency_p95_ms"] = _percentile(secs, 95)
    return out


# -- systems ---------------------------------------------------------------------------------------------------


def _build(docs: dict[str, tuple[str, str]], work: Path, settings, embedder, progress) -> Any:
    from .pipeline import build_index, open_index

    src = work / "articles"
    src.mkdir(parents=True, exist_ok=True)
    with open(src / "articles.jsonl", "w", encoding="utf-8") as f:
        for doc_id, (title, text) in docs.items():
            f.write(json.dumps({"id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    build_index(src, work / "index", settings, embedder=embedder, progress=progress)
    return open_index(work / "index", settings=settings, embedder=embedder)


@contextmanager
def _work_folder(work: str | Path | None) -> Iterator[Path]:
    """The given work folder (kept, so its index is reused), or a temporary one removed afterwards."""
    if work is not None:
        yield Path(work)
        return
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        yield Path(tmp)


def _ours(idx, q: SquadQuestion, threshold: float, titles: Sequence[str] = ()) -> QuestionResult:
    t0 = time.perf_counter()
    answer, ranked = idx.query_ranked(q.question, abstain_threshold=0.0)
    seconds = time.perf_counter() - t0
    passages = [p.text for p in ranked[:10]]
    first = answer.citations[0] if answer.citations else None
    absent = None
    others = [t for t in titles if t != q.doc_id]
    if q.answerable and others:
        absent = idx.query(q.question, doc_ids=others, abstain_threshold=0.0).confidence
    return QuestionResult(
        q, passages, first.quote if first else None, [c.quote for c in answer.citations],
        (first.start, first.end) if first else None, answer.confidence, answer.confidence < threshold, seconds,
        absent, None if absent is None else absent < threshold, first.answer if first else None,
    )


class Baseline:
    """The approach assembled from the same libraries: 1,000-character RecursiveCharacterTextSplitter chunks
    (200 overlap, the tutorial's values), MiniLM, an exact FAISS inner-product index, and as the answer the single
    sentence of the top 5 chunks most similar to the question. Its confidence is that sentence's cosine.

    Sentence vectors are computed once up front (a plain implementation would embed them per question; the
    answers are the same, the latency lower).
    """

    COSINE_THRESHOLD = 0.5

    def __init__(self, docs: dict[str, tuple[str, str]], embedder, progress: Callable[[str, int, int], None] | None = None):
        import faiss
        import numpy as np
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from .chunking import locate_spans
        from .sentences import split_sentences

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        self.chunks: list[tuple[str, int, int]] = []
        for doc_id, (_, text) in docs.items():
            pieces = splitter.split_text(text)
            for (s, e) in locate_spans(text, pieces):
                self.chunks.append((doc_id, s, e))
        self.docs = docs
        self.embedder = embedder
        texts = [docs[d][1][s:e] for d, s, e in self.chunks]
        vecs = embedder.embed_documents(texts)
        self.index = faiss.IndexFlatIP(vecs.shape[1])
        self.index.add(vecs)
        self.sentences: list[list[tuple[int, int]]] = []
        flat: list[str] = []
        for d, s, e in self.chunks:
            sents = [(x.start, x.end) for x in split_sentences(docs[d][1], d, s, e)]
            self.sentences.append(sents)
            flat += [docs[d][1][a:b] for a, b in sents]
        svecs = embedder.embed_documents(flat)
        self.sentence_vectors = []
        i = 0
        for sents in self.sentences:
            self.sentence_vectors.append(svecs[i : i + len(sents)])
            i += len(sents)
        self._np = np

    def _best(self, qvec, top: list[int]) -> tuple[float, tuple[str, int, int] | None]:
        """The most similar sentence of the first five chunks, with its cosine."""
        best: tuple[float, tuple[str, int, int] | None] = (-2.0, None)
        for ci in top[:5]:
            if len(self.sentence_vectors[ci]):
                cos = self.sentence_vectors[ci] @ qvec
                j = int(cos.argmax())
                if cos[j] > best[0]:
                    d, _, _ = self.chunks[ci]
                    best = (float(cos[j]), (d, *self.sentences[ci][j]))
        return best

    def ask(self, q: SquadQuestion, leave_out_article: bool = False) -> QuestionResult:
        """Answer `q`; with `leave_out_article`, also answer it from the other articles' chunks only."""
        np = self._np
        t0 = time.perf_counter()
        model = self.embedder.model
        qvec = np.asarray(model.encode([q.question], normalize_embeddings=True, show_progress_bar=False)[0], np.float32)
        _, ids = self.index.search(qvec[None, :], 10)
        top = [int(i) for i in ids[0] if i >= 0]
        best = self._best(qvec, top)
        seconds = time.perf_counter() - t0
        absent = None
        if leave_out_article and q.answerable:
            _, all_ids = self.index.search(qvec[None, :], len(self.chunks))
            elsewhere = [int(i) for i in all_ids[0] if i >= 0 and self.chunks[int(i)][0] != q.doc_id]
            absent = self._best(qvec, elsewhere)[0] if elsewhere else None
        passages = [self.docs[self.chunks[c][0]][1][self.chunks[c][1] : self.chunks[c][2]] for c in top]
        quote, span = None, None
        if best[1] is not None:
            d, s, e = best[1]
            quote, span = self.docs[d][1][s:e], (s, e)
        return QuestionResult(
            q, passages, quote, [quote] if quote else [], span, best[0], best[0] < self.COSINE_THRESHOLD, seconds,
            absent, None if absent is None else absent < self.COSINE_THRESHOLD,
        )


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="q", file=sys.stderr, disable=not enabled, leave=False)


def run_squad(
    folder: str | Path,
    settings=None,
    *,
    baseline: bool = False,
    limit: int | None = None,
    articles: Sequence[str] | None = None,
    split: str = "all",
    work: str | Path | None = None,
    embedder=None,
    show_progress: bool = False,
    keep: bool = False,
    without_reader: bool = False,
) -> dict[str, Any]:
    """Index a SQuAD-format folder, ask every question and measure ours (and the baseline).

    Args:
        folder: the SQuAD-format folder.
        settings: engine settings (default Settings.load()); `abstain_threshold` is the threshold evaluated.
        baseline: also run the baseline on the same data in this process.
        limit, articles, split: see `load_squad`.
        work: folder for the articles file and the index (reused when given; default a temporary folder).
        embedder: a ready embedder (default: the settings' model).
        without_reader: also ask every question of the same index with `reader=none` (the linear sentence model
            alone), reported as "no_reader".

    Returns:
        {"data": {...}, "settings": {...}, "ours": metrics, "no_reader" and "baseline": metrics (when asked)};
        see `squad_metrics`.
    """
    from .config import Settings
    from .embedding import make_embedder

    settings = settings or Settings.load()
    data = load_squad(folder, articles=articles, split=split, limit=limit)
    if not data.questions:
        raise SourceError(f"{folder} holds no questions for the chosen articles/split")
    embedder = embedder or make_embedder(settings.model, settings.backend)
    titles = list(data.articles) if len(data.articles) > 1 else []
    with _work_folder(work) as work_dir:
        idx = _build(data.articles, work_dir, settings, embedder, None)
        report: dict[str, Any] = {
            "data": {"folder": str(folder), "articles": len(data.articles), "split": split, "questions": len(data.questions),
                     "chunks": idx.info().get("chunks")},
            "settings": {k: getattr(idx.settings, k) for k in
                         ("retriever", "chunk_size", "chunk_overlap", "k", "abstain_threshold", "reranker", "reader")},
        }
        results = []
        with _bar(len(data.questions), "ours", show_progress) as bar:
            for q in data.questions:
                results.append(_ours(idx, q, idx.settings.abstain_threshold, titles))
                bar.update(1)
        report["ours"] = squad_metrics(results)
        idx.close()
        if without_reader:
            from .pipeline import open_index

            plain = open_index(work_dir / "index", settings=settings.with_(reader="none"), embedder=embedder)
            with _bar(len(data.questions), "no reader", show_progress) as bar:
                plain_results = []
                for q in data.questions:
                    plain_results.append(_ours(plain, q, plain.settings.abstain_threshold, titles))
                    bar.update(1)
            report["no_reader"] = squad_metrics(plain_results)
            plain.close()
        if baseline:
            base = Baseline(data.articles, embedder)
            b_results = []
            with _bar(len(data.questions), "baseline", show_progress) as bar:
                for q in data.questions:
                    b_results.append(base.ask(q, leave_out_article=len(titles) > 1))
                    bar.update(1)
            report["baseline"] = squad_metrics(b_results)
            report["data"]["baseline_chunks"] = len(base.chunks)
        if keep:
            report["_results"] = results
        return report


def run_beir(folder: str | Path, settings=None, *, limit: int | None = None, work: str | Path | None = None,
             embedder=None, show_progress: bool = False) -> dict[str, Any]:
    """Index a BEIR corpus (one document per record) and score passage retrieval per query.

    A document's rank is that of its best passage among the first 100 retrieved.

    Returns:
        {"data": {...}, "ours": {"ndcg@10", "recall@100", "latency_p50_ms", "latency_p95_ms"}}.
    """
    from .config import Settings
    from .embedding import make_embedder

    settings = settings or Settings.load()
    corpus, queries, qrels = load_beir(folder, limit)
    if not queries:
        raise SourceError(f"{folder} has no queries with judged documents in qrels/test.tsv")
    embedder = embedder or make_embedder(settings.model, settings.backend)
    with _work_folder(work) as work_dir:
        idx = _build({d: v for d, v in corpus.items()}, work_dir, settings, embedder, None)
        ndcgs, recalls, secs = [], [], []
        with _bar(len(queries), "ours", show_progress) as bar:
            for qid, text in queries.items():
                t0 = time.perf_counter()
                passages = idx.search(text, 100)
                secs.append((time.perf_counter() - t0) * 1000)
                ranked: list[str] = []
                for p in passages:
                    if p.doc_id not in ranked:
                        ranked.append(p.doc_id)
                rel = qrels[qid]
                ndcgs.append(ndcg_at(ranked, rel, 10))
                recalls.append(len(set(ranked[:100]) & set(rel)) / len(rel))
                bar.update(1)
        idx.close()
        return {
            "data": {"folder": str(folder), "documents": len(corpus), "queries": len(queries)},
            "settings": {"retriever": settings.retriever, "chunk_size": settings.chunk_size},
            "ours": {
                "ndcg@10": sum(ndcgs) / len(ndcgs),
                "recall@100": sum(recalls) / len(recalls),
                "latency_p50_ms": _percentile(secs, 50),
                "latency_p95_ms": _percentile(secs, 95),
            },
        }


# -- command line ----------------------------------------------------------------------------------------------

_ORDER = [
    "hit@1", "hit@5", "hit@10", "mrr@10", "answer@1", "answer@any", "span@1", "short_em", "short_f1",
    "answer@1_answered", "answered",
    "abstain_unanswerable", "abstain_answerable", "abstain_auroc", "abstain_absent", "absent_auroc", "ndcg@10",
    "recall@100", "latency_p50_ms", "latency_p95_ms",
]


def format_report(report: dict[str, Any]) -> str:
    """The side-by-side table printed by `rag eval`; targets are marked on the full-set metrics."""
    ours = report["ours"]
    others = [(name, report[key]) for key, name in (("no_reader", "no reader"), ("baseline", "baseline")) if key in report]
    d = report["data"]
    lines = [
        f"data: {d['folder']}  articles {d['articles'] if 'articles' in d else d.get('documents')}  "
        f"questions {d.get('questions', d.get('queries'))}  split {d.get('split', '-')}",
        "settings: " + ", ".join(f"{k}={v}" for k, v in report.get("settings", {}).items()),
        "",
        f"{'metric':<22}{'ours':>10}" + "".join(f"{name:>11}" for name, _ in others) + "   target",
    ]
    keys = [k for k in _ORDER if k in ours]
    if "questions" in ours:
        lines.append(f"{'questions':<22}{ours['questions']:>10}" + "".join(f"{m['questions']:>11}" for _, m in others))
    for k in keys:
        unit = "1" if k.endswith("_ms") else "3"
        cols = "".join(f"{m[k]:>11.{unit}f}" if k in m else f"{'':>11}" for _, m in others)
        mark = ""
        if k in TARGETS:
            mark = f"   >= {TARGETS[k]:.2f} {'met' if ours[k] >= TARGETS[k] else 'not met'}"
        lines.append(f"{k:<22}{ours[k]:>10.{unit}f}{cols}{mark}")
    return "\n".join(lines)


def _settings_from(args: argparse.Namespace):
    from .config import Settings

    return Settings.load(
        {
            "retriever": args.retriever,
            "chunk_size": args.chunk_size,
            "chunk_overlap": args.chunk_overlap,
            "k": args.k,
            "abstain_threshold": args.threshold,
            "reranker": args.reranker,
            "reader": args.reader,
            "reader_candidates": args.reader_candidates,
        }
    )


def cmd_eval(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    show = not args.json and sys.stderr.isatty()
    if args.format == "conversations":
        from .conversation_eval import check_args, cmd_eval_conversations

        check_args(args)
        return cmd_eval_conversations(args, settings)
    if args.split == "report" and args.format != "conversations":
        raise ConfigError("--split report applies to conversation sets; a SQuAD set splits into fit and holdout")
    if args.format == "squad":
        articles = [a for a in (args.articles or "").split(",") if a] or None
        report = run_squad(args.path, settings, baseline=args.baseline, limit=args.limit, articles=articles,
                           split=args.split, work=args.work, show_progress=show, without_reader=args.without_reader)
    else:
        report = run_beir(args.path, settings, limit=args.limit, work=args.work, show_progress=show)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def register(subparsers) -> None:
    """Add `rag eval squad|beir|conversations PATH` to the command line."""
    p = subparsers.add_parser("eval", help="measure answer and retrieval quality on SQuAD- or BEIR-format data, "
                                           "or follow-up questions on a conversation set")
    p.add_argument("format", choices=("squad", "beir", "conversations"), help="data format")
    p.add_argument("path", help="the data folder (squad, beir) or conversation file (conversations)")
    p.add_argument("--index", help="the index to ask (conversations; default: the configured index)")
    p.add_argument("--details", action="store_true", help="with --json, each asked turn too (conversations)")
    p.add_argument("--baseline", action="store_true", help="also run the plain baseline, side by side (squad)")
    p.add_argument("--limit", type=int, help="ask at most this many questions (spread over the set)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--articles", help="comma-separated titles to index and ask about (squad)")
    p.add_argument("--split", choices=("all", "fit", "holdout", "report"), default="all",
                   help="ask only the questions of the articles that fit the answer model, or of the others (squad: "
                        "fit/holdout; conversations: fit/report)")
    p.add_argument("--work", help="folder for the built index (kept and reused; default a temporary folder)")
    p.add_argument("--retriever", choices=("dense", "lexical", "hybrid"))
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--chunk-overlap", type=int)
    p.add_argument("--k", type=int, help="passages per question")
    p.add_argument("--threshold", type=float, help="abstention threshold to evaluate")
    p.add_argument("--reranker", help="local folder of a sentence-transformers CrossEncoder")
    p.add_argument("--reader", help="default (the shipped reader), none, or a reader folder")
    p.add_argument("--reader-candidates", type=int, help="candidate sentences the reader reads (0: its calibrated number)")
    p.add_argument("--without-reader", action="store_true",
                   help="also ask every question with --reader none, side by side (squad)")
    p.set_defaults(func=cmd_eval)
