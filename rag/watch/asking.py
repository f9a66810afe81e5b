"""Saved questions asked again after a build, against the articles it added or changed, and their answers recorded.

`ask_new_articles()` runs after every build that publishes (`rag rebuild-index`, `rag add`, `rag sources update`,
`rag watch`, the web app's Rebuild and web sources), and from `rag questions answers`, which so catches up on a
build whose process died between its publish and this step. Under the index's build lock (no version can be
published meanwhile) and the watched lock, it:
1. compares the live version's article hashes with those of the version last checked (rag.watch.store.Checked): the
   new and changed articles are the ones to ask, never the unchanged ones, so a rebuild or `--full` asks nothing;
2. asks each saved question against those of them its filters allow and that no recorded answer of it quotes yet,
   through three screens, cheapest first, each keeping every answer it was measured to keep (docs/benchmarks.md,
   "Watched questions"): an article is read only when its best sentence is close to the question (cosine) and it
   holds most of the question's weight of rare words (idf share); the question is then answered with the linear
   sentence model alone, and only when that gives a confidence above LINEAR_FLOOR does the reader read it;
3. records the answers that reach the question's threshold, once per (question, article), then the version as
   checked. Killed before the answers are written, the step is done again by the next one (nothing lost); killed
   between the two writes, the answers are kept and the next step finds their articles answered (nothing twice).

Example:
    >>> report = ask_new_articles("index/")
    >>> [(a.question_id, a.short_answer, a.url) for a in report.answers]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.config import DEFAULT_MODEL, Settings
from rag.errors import BuildLockedError
from rag.index import indexdir
from rag.watch.store import Checked, SavedQuestion, WatchedAnswer, WatchStore, now

if TYPE_CHECKING:  # pragma: no cover
    from rag.answer.engine import Index
    from rag.index.catalog import Catalog
    from rag.index.embedding import Embedder
    from rag.types import Answer, Document

__all__ = [
    "WatchReport",
    "ask_new_articles",
    "after_build",
    "pending",
    "GATE_COSINE",
    "GATE_COVERAGE",
    "LINEAR_FLOOR",
    "PAUSE",
]

GATE_MODEL = DEFAULT_MODEL
"""The model the cosine screen was measured with; an index built with another model skips that screen."""
GATE_COSINE = 0.30
"""Least cosine between the question and an article's best sentence (the lowest among 408 answers was 0.37)."""
GATE_COVERAGE = 0.40
"""Least share of the question's idf weight that an article's words hold (the lowest among the 408 was 0.45)."""
LINEAR_FLOOR = 0.02
"""Least linear-model confidence for the reader to read a question (the lowest among the 408 was 0.025)."""
PAUSE = "watched"
"""The crash tests' pause point: answers found, not yet recorded (rag.index.indexdir.pause_point)."""


@dataclass
class WatchReport:
    """What one step did.

    Attributes:
        version: the index version asked against (None: nothing to ask).
        articles: new or changed articles in it; questions: saved questions.
        screened: (question, article) pairs past the cosine and word screens; asked: questions asked (the
            reader reads those whose linear confidence reaches LINEAR_FLOOR).
        answers: the answers recorded (the new ones only).
        seconds: time spent; skipped: why nothing was asked when a build held the index.
        error: why the step failed after a build (`after_build`); the next step asks them again.
    """

    version: str | None = None
    articles: int = 0
    questions: int = 0
    screened: int = 0
    asked: int = 0
    answers: list[WatchedAnswer] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None
    error: str | None = None


def pending(index_dir: str | Path) -> bool:
    """Whether the live version has not been checked against the saved questions yet."""
    store = WatchStore(index_dir)
    if not store.exists():
        return False
    version = indexdir.current_version(Path(index_dir))
    checked = store.checked()
    return version is not None and (checked is None or checked.version != version.name)


def ask_new_articles(
    index_dir: str | Path,
    settings: Settings | None = None,
    *,
    index: Index | None = None,
    embedder: Embedder | None = None,
) -> WatchReport:
    """Ask the saved questions against the articles the live version added or changed since the last check.

    Args:
        index_dir: the index folder.
        settings: query settings (default Settings.load()); the threshold of a question without its own is the
            index's abstain_threshold.
        index: the live version, already open (the web app's); opened here when needed otherwise.
        embedder: a ready embedder of the index's model (default: the process's, loaded once).

    Returns:
        WatchReport with the answers recorded now (each article once per question, ever).

    Raises:
        IndexCorruptError: a file of the store cannot be read (the message names it).
    """
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    store = WatchStore(index_dir)
    report = WatchReport()
    if not store.exists():
        return report
    try:
        with indexdir.build_lock(index_dir), store.locked():
            _step(index_dir, store, settings or Settings.load(), index, embedder, report)
    except BuildLockedError:
        # That build's own step asks them, against its version, once it has published.
        report.skipped = "a build is running on the index; its check asks the saved questions when it finishes"
    report.seconds = time.perf_counter() - t0
    return report


def after_build(
    index_dir: str | Path,
    settings: Settings | None = None,
    *,
    index: Index | None = None,
    embedder: Embedder | None = None,
) -> WatchReport:
    """`ask_new_articles` as a build's last step: a failure (a damaged store file) is reported in `error`, never
    raised, since the build itself has published; the next build or `rag questions answers` asks again."""
    from rag.errors import RagError

    try:
        return ask_new_articles(index_dir, settings, index=index, embedder=embedder)
    except RagError as exc:
        return WatchReport(error=str(exc))


def _step(
    index_dir: Path,
    store: WatchStore,
    settings: Settings,
    index: Index | None,
    embedder: Embedder | None,
    report: WatchReport,
) -> None:
    version = indexdir.current_version(index_dir)
    checked = store.checked()
    if version is None or (checked is not None and checked.version == version.name):
        return
    manifest = indexdir.read_manifest(version)
    hashes: dict[str, str] = manifest.get("documents") or {}
    questions = store.questions()
    report.version, report.questions = version.name, len(questions)
    found: list[dict[str, Any]] = []
    if checked is not None and questions:
        changed = checked.changed(hashes)
        report.articles = len(changed)
        if changed:
            found = _ask(index_dir, version, manifest, changed, questions, store, settings, index, embedder, report)
    indexdir.pause_point(PAUSE)
    report.answers = store.record(found)
    store.set_checked(Checked.of(version.name, hashes))


def _ask(
    index_dir: Path,
    version: Path,
    manifest: dict[str, Any],
    changed: list[str],
    questions: list[SavedQuestion],
    store: WatchStore,
    settings: Settings,
    index: Index | None,
    embedder: Embedder | None,
    report: WatchReport,
) -> list[dict[str, Any]]:
    from rag.index.catalog import Catalog

    answered = store.answered()
    catalog = Catalog(version)
    try:
        docs = {d: doc for d in changed if (doc := catalog.document(d, cache=False)) is not None}
        wanted = {
            q.id: [
                d
                for d, doc in docs.items()
                if q.matches(doc.section, doc.outlet) and d not in answered.get(q.id, set())
            ]
            for q in questions
        }
        vectors: dict[int, np.ndarray] = {}
        if manifest.get("model") == GATE_MODEL:
            vectors = _question_vectors(questions, manifest, store, settings, embedder)
            close = _close_articles(questions, wanted, catalog, version, manifest, vectors)
        else:
            close = wanted
    finally:
        catalog.close()
    opened = None
    found = []
    try:
        for q in questions:
            if not close.get(q.id):
                continue
            if opened is None:
                opened = _open(index_dir, version, settings, index, embedder)
                if manifest.get("model") == GATE_MODEL:
                    close = _holding_the_words(questions, close, opened)
                    if not close.get(q.id):
                        continue
            report.screened += len(close[q.id])
            answer = _answer(opened, q, close[q.id], vectors.get(q.id), report)
            if answer is not None:
                found.append(_record(q, answer, docs, version.name))
    finally:
        if opened is not None and opened is not index:
            opened.close()
    return found


def _close_articles(
    questions: Sequence[SavedQuestion],
    wanted: dict[int, list[str]],
    catalog: Catalog,
    version: Path,
    manifest: dict[str, Any],
    vectors: dict[int, np.ndarray],
) -> dict[int, list[str]]:
    """For each question, the articles whose best sentence has a cosine of at least GATE_COSINE with it.

    One product of the questions' vectors (kept in the store, made once per question) with the new articles'
    sentence vectors (read from the version's 4-bit codes)."""
    from rag.index.sentvecs import FILE, SentenceVectors

    ids = sorted({d for docs in wanted.values() for d in docs})
    if not ids:
        return {}
    rows = catalog.sentences_of(ids)  # ordered by article: each article's rows are contiguous
    if not rows:
        return {}
    sentences = SentenceVectors(version / FILE, int(manifest.get("dimension") or 0))[[r.row for r in rows]]
    order = [q for q in questions if wanted.get(q.id)]
    cos = np.stack([vectors[q.id] for q in order]) @ sentences.T  # (questions, sentences)
    doc_of = [r.doc_id for r in rows]
    starts = [i for i in range(len(rows)) if i == 0 or doc_of[i] != doc_of[i - 1]]
    best = np.maximum.reduceat(cos, starts, axis=1)  # (questions, articles)
    article = {doc_of[s]: j for j, s in enumerate(starts)}
    return {
        q.id: [d for d in wanted[q.id] if d in article and best[i, article[d]] >= GATE_COSINE]
        for i, q in enumerate(order)
    }


def _question_vectors(
    questions: Sequence[SavedQuestion],
    manifest: dict[str, Any],
    store: WatchStore,
    settings: Settings,
    embedder: Embedder | None,
) -> dict[int, np.ndarray]:
    signature = f"{manifest.get('model')}|{manifest.get('settings', {}).get('backend')}"
    vectors = store.vectors(signature)
    missing = [q for q in questions if q.id not in vectors]
    if missing:
        if embedder is None:
            from rag.index.embedding import make_embedder

            saved = manifest.get("settings", {})
            embedder = make_embedder(manifest["model"], saved.get("backend") or settings.backend, settings.device)
        for q in missing:
            vectors[q.id] = np.asarray(embedder.embed_query(q.question), dtype=np.float32)
        store.save_vectors(signature, {q.id: vectors[q.id] for q in questions})
    return vectors


def _holding_the_words(
    questions: Sequence[SavedQuestion], close: dict[int, list[str]], idx: Index
) -> dict[int, list[str]]:
    """Of the close articles, those holding at least GATE_COVERAGE of the question's idf weight (BM25's idf).

    Which articles hold a word is read from the BM25 index (the passages in a word's column of its score matrix),
    not by splitting the articles' text again."""
    from rag.index.lexical import content_terms

    lex = idx.lexical
    if lex is None:
        return close
    wanted = sorted({d for ds in close.values() for d in ds})
    position = {int(c): i for i, c in enumerate(lex.chunk_ids)}
    slot = {d: i for i, d in enumerate(wanted)}
    owner = np.full(len(lex.chunk_ids), -1, dtype=np.int64)  # each passage's article, as a position in `wanted`
    for r in idx.catalog.chunks_of(wanted):
        if r.id in position:
            owner[position[r.id]] = slot[r.doc_id]
    holders: dict[str, set[str]] = {}

    def holding(term: str) -> set[str]:
        if term not in holders:
            at = owner[lex.rows_holding(term)]
            holders[term] = {wanted[i] for i in np.unique(at[at >= 0]).tolist()}
        return holders[term]

    out = {}
    for q in questions:
        if not close.get(q.id):
            continue
        weights = {t: lex.idf_of(t) for t in content_terms(q.question)}
        total = sum(weights.values())
        if total <= 0:
            out[q.id] = close[q.id]
            continue
        held: dict[str, float] = {}
        for t, w in weights.items():
            for d in holding(t):
                held[d] = held.get(d, 0.0) + w
        out[q.id] = [d for d in close[q.id] if held.get(d, 0.0) / total >= GATE_COVERAGE]
    return out


def _open(index_dir: Path, version: Path, settings: Settings, index: Index | None, embedder: Embedder | None) -> Index:
    if index is not None and index.version == version.name:
        return index
    from rag.answer.engine import open_index

    # The build lock is held: the live version is the one just read. Its files were checked when written.
    opened = open_index(index_dir, settings=settings, embedder=embedder, verify=False)
    assert opened.version == version.name, (opened.version, version.name)
    return opened


def _answer(
    idx: Index, q: SavedQuestion, doc_ids: list[str], vector: np.ndarray | None, report: WatchReport
) -> Answer | None:
    """The question's answer from these articles when it reaches its threshold, else None.

    The reader reads only when the linear model's confidence reaches LINEAR_FLOOR (one retrieval either way), so no
    answer under the floor is recorded, whatever the question's own threshold."""
    from rag.errors import FilterError, QuestionError

    threshold = q.min_confidence if q.min_confidence is not None else idx.settings.abstain_threshold
    report.asked += 1
    try:
        answer = idx.query(
            q.question,
            doc_ids=doc_ids,
            abstain_threshold=max(threshold, LINEAR_FLOOR),
            read=LINEAR_FLOOR,
            vector=vector,
        )
    except (FilterError, QuestionError):  # an article gone meanwhile, or a limit lowered since it was saved
        return None
    return None if answer.abstained or not answer.citations else answer


def _record(q: SavedQuestion, answer: Answer, docs: dict[str, Document], version: str) -> dict[str, Any]:
    cited = list(dict.fromkeys(c.doc_id for c in answer.citations))
    first = docs.get(cited[0])
    body = answer.to_dict()
    body.pop("passages", None)  # the quotes are the answer; the nearest passages would only grow the store
    return {
        "question_id": q.id,
        "question": q.question,
        "doc_id": cited[0],
        "doc_ids": tuple(cited),
        "title": first.title if first else answer.citations[0].title,
        "url": first.url if first else None,
        "recorded_at": now(),
        "index_version": version,
        "answer": body,
    }
