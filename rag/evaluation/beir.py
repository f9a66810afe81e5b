"""Retrieval quality on BEIR-format data (`rag eval beir`): corpus.jsonl ({_id, title, text}), queries.jsonl
({_id, text}) and qrels/test.tsv (query-id, corpus-id, score, with a header line)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import SourceError
from rag.evaluation.metrics import ndcg_at, percentile
from rag.evaluation.runs import build_collection, progress_bar, read_jsonl, work_folder

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.index.embedding import Embedder


def load_beir(
    folder: str | Path, limit: int | None = None
) -> tuple[dict[str, tuple[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """Read a BEIR folder: (corpus {id: (title, text)}, queries {id: text}, qrels {query id: {doc id: grade}})."""
    folder = Path(folder)
    corpus = {str(r["_id"]): (r.get("title") or "", r["text"]) for r in read_jsonl(folder / "corpus.jsonl")}
    queries = {str(r["_id"]): r["text"] for r in read_jsonl(folder / "queries.jsonl")}
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


def run_beir(
    folder: str | Path,
    settings: Settings | None = None,
    *,
    limit: int | None = None,
    work: str | Path | None = None,
    embedder: Embedder | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Index a BEIR corpus (one document per record) and score passage retrieval per query.

    A document's rank is that of its best passage among the first 100 retrieved.

    Returns:
        {"data": {...}, "ours": {"ndcg@10", "recall@100", "latency_p50_ms", "latency_p95_ms"}}.
    """
    from rag.config import Settings
    from rag.index.embedding import make_embedder

    settings = settings or Settings.load()
    corpus, queries, qrels = load_beir(folder, limit)
    if not queries:
        raise SourceError(f"{folder} has no queries with judged documents in qrels/test.tsv")
    embedder = embedder or make_embedder(settings.model, settings.backend)
    with work_folder(work) as work_dir:
        idx = build_collection({d: v for d, v in corpus.items()}, work_dir, settings, embedder, None)
        ndcgs, recalls, secs = [], [], []
        with progress_bar(len(queries), "ours", show_progress) as bar:
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
                "latency_p50_ms": percentile(secs, 50),
                "latency_p95_ms": percentile(secs, 95),
            },
        }
