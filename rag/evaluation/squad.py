"""Answer quality on SQuAD-format data, beside the plain baseline a user would assemble (`rag eval squad`).

SQuAD folder: `articles.jsonl` ({title, paragraphs: [str]}) and `questions.jsonl` ({id, title, paragraph_index,
question, answers: [{text, answer_start}], is_impossible}). Each article is indexed as one document whose text is
its paragraphs joined by a blank line, so a gold answer's offset in the document is its paragraph's offset plus
`answer_start`.

BEIR folder: `corpus.jsonl` ({_id, title, text}), `queries.jsonl` ({_id, text}), `qrels/test.tsv`
(query-id, corpus-id, score, with a header line).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.errors import SourceError
from rag.evaluation.metrics import auroc, contains_answer, normalize_answer, percentile, short_answer_scores
from rag.evaluation.runs import build_collection, progress_bar, read_jsonl, work_folder

if TYPE_CHECKING:
    import numpy as np

    from rag.answer.engine import Index
    from rag.config import Settings
    from rag.index.embedding import Embedder

    class _QueryEncoder(Protocol):
        """The part of a sentence-transformers model (or the ONNX encoder standing in for one) the baseline calls."""

        def encode(self, texts: list[str], /, *, normalize_embeddings: bool, show_progress_bar: bool) -> np.ndarray: ...

    class BaselineEmbedder(Embedder, Protocol):
        """An Embedder that also hands out its loaded model: the baseline encodes each question with the model
        itself, as a plain implementation would (the embedders of `make_embedder` do)."""

        @property
        def model(self) -> _QueryEncoder: ...


__all__ = [
    "SquadQuestion",
    "SquadSet",
    "QuestionResult",
    "load_squad",
    "squad_metrics",
    "run_squad",
    "split_of",
    "TARGETS",
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
    rows = read_jsonl(folder / "articles.jsonl")
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
    for q in read_jsonl(folder / "questions.jsonl"):
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
                raise SourceError(
                    f"{folder / 'questions.jsonl'}: answer of {q['id']} does not match its paragraph at {s}"
                )
            spans.append((s, e))
            texts.append(ans["text"])
        questions.append(SquadQuestion(q["id"], q["question"], title, tuple(spans), tuple(texts)))
    if limit is not None and 0 < limit < len(questions):
        step = len(questions) / limit
        questions = [questions[int(i * step)] for i in range(limit)]
    return SquadSet(docs, tuple(questions))


# -- metrics ---------------------------------------------------------------------------------------------------


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
    # Per answerable question: a quote holds a gold answer; the first quote does; the first span covers one.
    answer_any: list[bool] = []
    answer_1: list[bool] = []
    span_1: list[bool] = []
    for r in ans:
        golds = [normalize_answer(t) for t in r.question.answer_texts]
        rank = next((i for i, p in enumerate(r.passages[:10]) if contains_answer(p, golds)), None)
        first_hit.append(rank)
        answer_any.append(any(contains_answer(q, golds) for q in r.quotes))
        answer_1.append(r.first_quote is not None and contains_answer(r.first_quote, golds))
        span = r.first_span
        span_1.append(span is not None and any(span[0] <= s and e <= span[1] for s, e in r.question.answers))
    for k in (1, 5, 10):
        out[f"hit@{k}"] = sum(1 for x in first_hit if x is not None and x < k) / n
    out["mrr@10"] = sum(1.0 / (x + 1) for x in first_hit if x is not None) / n
    out["answer@1"] = sum(answer_1) / n
    out["answer@any"] = sum(answer_any) / n
    out["span@1"] = sum(span_1) / n
    shorts = [short_answer_scores(r.short_answer, r.question.answer_texts) for r in ans]
    if any(r.short_answer is not None for r in ans):
        out["short_em"] = sum(em for em, _ in shorts) / n
        out["short_f1"] = sum(f1 for _, f1 in shorts) / n
    out["answer@1_answered"] = sum(a and not r.abstained for a, r in zip(answer_1, ans)) / n
    out["answered"] = sum(not r.abstained for r in ans) / n
    out["abstain_unanswerable"] = sum(r.abstained for r in una) / max(len(una), 1)
    out["abstain_answerable"] = sum(r.abstained for r in ans) / n
    out["abstain_auroc"] = auroc([r.confidence for r in ans], [r.confidence for r in una])
    gone = [r for r in ans if r.absent_confidence is not None]
    if gone:
        out["abstain_absent"] = sum(bool(r.absent_abstained) for r in gone) / len(gone)
        absent = [r.absent_confidence for r in gone if r.absent_confidence is not None]  # all of them
        out["absent_auroc"] = auroc([r.confidence for r in gone], absent)
    secs = [r.seconds * 1000 for r in results]
    out["latency_p50_ms"] = percentile(secs, 50)
    out["latency_p95_ms"] = percentile(secs, 95)
    return out


# -- systems ---------------------------------------------------------------------------------------------------


def _ours(idx: Index, q: SquadQuestion, threshold: float, titles: Sequence[str] = ()) -> QuestionResult:
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
        q,
        passages,
        first.quote if first else None,
        [c.quote for c in answer.citations],
        (first.start, first.end) if first else None,
        answer.confidence,
        answer.confidence < threshold,
        seconds,
        absent,
        None if absent is None else absent < threshold,
        first.answer if first else None,
    )


class Baseline:
    """The approach assembled from the same libraries: 1,000-character RecursiveCharacterTextSplitter chunks
    (200 overlap, the tutorial's values), MiniLM, an exact FAISS inner-product index, and as the answer the single
    sentence of the top 5 chunks most similar to the question. Its confidence is that sentence's cosine.

    Sentence vectors are computed once up front (a plain implementation would embed them per question; the
    answers are the same, the latency lower).
    """

    COSINE_THRESHOLD = 0.5

    def __init__(
        self,
        docs: dict[str, tuple[str, str]],
        embedder: BaselineEmbedder,
        progress: Callable[[str, int, int], None] | None = None,
    ):
        import faiss
        import numpy as np
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from rag.ingest.chunking import locate_spans
        from rag.ingest.sentences import split_sentences

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        self.chunks: list[tuple[str, int, int]] = []
        for doc_id, (_, text) in docs.items():
            pieces = splitter.split_text(text)
            for s, e in locate_spans(text, pieces):
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

    def _best(self, qvec: np.ndarray, top: list[int]) -> tuple[float, tuple[str, int, int] | None]:
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
            q,
            passages,
            quote,
            [quote] if quote else [],
            span,
            best[0],
            best[0] < self.COSINE_THRESHOLD,
            seconds,
            absent,
            None if absent is None else absent < self.COSINE_THRESHOLD,
        )


def run_squad(
    folder: str | Path,
    settings: Settings | None = None,
    *,
    baseline: bool = False,
    limit: int | None = None,
    articles: Sequence[str] | None = None,
    split: str = "all",
    work: str | Path | None = None,
    embedder: BaselineEmbedder | None = None,
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
        embedder: a ready embedder (default: the settings' model); the baseline also calls its `model`.
        without_reader: also ask every question of the same index with `reader=none` (the linear sentence model
            alone), reported as "no_reader".

    Returns:
        {"data": {...}, "settings": {...}, "ours": metrics, "no_reader" and "baseline": metrics (when asked)};
        see `squad_metrics`.
    """
    from rag.config import Settings
    from rag.index.embedding import make_embedder

    settings = settings or Settings.load()
    data = load_squad(folder, articles=articles, split=split, limit=limit)
    if not data.questions:
        raise SourceError(f"{folder} holds no questions for the chosen articles/split")
    embedder = embedder or make_embedder(settings.model, settings.backend)
    titles = list(data.articles) if len(data.articles) > 1 else []
    with work_folder(work) as work_dir:
        idx = build_collection(data.articles, work_dir, settings, embedder, None)
        report: dict[str, Any] = {
            "data": {
                "folder": str(folder),
                "articles": len(data.articles),
                "split": split,
                "questions": len(data.questions),
                "chunks": idx.info().get("chunks"),
            },
            "settings": {
                k: getattr(idx.settings, k)
                for k in ("retriever", "chunk_size", "chunk_overlap", "k", "abstain_threshold", "reranker", "reader")
            },
        }
        results = []
        with progress_bar(len(data.questions), "ours", show_progress) as bar:
            for q in data.questions:
                results.append(_ours(idx, q, idx.settings.abstain_threshold, titles))
                bar.update(1)
        report["ours"] = squad_metrics(results)
        idx.close()
        if without_reader:
            from rag.answer.engine import open_index

            plain = open_index(work_dir / "index", settings=settings.with_(reader="none"), embedder=embedder)
            with progress_bar(len(data.questions), "no reader", show_progress) as bar:
                plain_results = []
                for q in data.questions:
                    plain_results.append(_ours(plain, q, plain.settings.abstain_threshold, titles))
                    bar.update(1)
            report["no_reader"] = squad_metrics(plain_results)
            plain.close()
        if baseline:
            base = Baseline(data.articles, embedder)
            b_results = []
            with progress_bar(len(data.questions), "baseline", show_progress) as bar:
                for q in data.questions:
                    b_results.append(base.ask(q, leave_out_article=len(titles) > 1))
                    bar.update(1)
            report["baseline"] = squad_metrics(b_results)
            report["data"]["baseline_chunks"] = len(base.chunks)
        if keep:
            report["_results"] = results
        return report


# -- command line ----------------------------------------------------------------------------------------------

_ORDER = [
    "hit@1",
    "hit@5",
    "hit@10",
    "mrr@10",
    "answer@1",
    "answer@any",
    "span@1",
    "short_em",
    "short_f1",
    "answer@1_answered",
    "answered",
    "abstain_unanswerable",
    "abstain_answerable",
    "abstain_auroc",
    "abstain_absent",
    "absent_auroc",
    "ndcg@10",
    "recall@100",
    "latency_p50_ms",
    "latency_p95_ms",
]


def format_report(report: dict[str, Any]) -> str:
    """The side-by-side table printed by `rag eval`; targets are marked on the full-set metrics."""
    ours = report["ours"]
    others = [
        (name, report[key]) for key, name in (("no_reader", "no reader"), ("baseline", "baseline")) if key in report
    ]
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
