"""Builds: one configuration's full build, embedding throughput, index size, query latency, incremental rebuild
and cold start (`bench_config`), and the articles embedded once for every configuration (`embed_once`)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag.evaluation.bench.configs import QUESTIONS, SEEDS, BenchConfig, SharedVectors
from rag.evaluation.bench.latency import cold_start, query_latency
from rag.evaluation.bench.memory import RssSampler, folder_mb

__all__ = ["bench_config", "copy_source", "embed_once"]


def copy_source(source: Path, dest: Path, limit: int | None) -> Path:
    """A private copy of the articles (the incremental step edits it); `limit` keeps the first N records/files."""
    dest.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
        for p in files[:limit] if limit else files:
            target = dest / p.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
        return dest
    target = dest / source.name
    if limit and source.suffix == ".jsonl":
        with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as out:
            for i, line in enumerate(src):
                if i >= limit:
                    break
                out.write(line)
    else:
        shutil.copy2(source, target)
    return dest


def _change_one(source: Path) -> str:
    """Edit one article of the copied source in place (a sentence appended); returns what was changed."""
    note = " This sentence was added to measure an incremental rebuild."
    files = sorted(p for p in source.rglob("*") if p.is_file())
    jsonl = [p for p in files if p.suffix == ".jsonl"]
    if jsonl:
        path = jsonl[0]
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        rec = json.loads(lines[len(lines) // 2])
        rec["text"] = rec["text"].rstrip() + note
        lines[len(lines) // 2] = json.dumps(rec, ensure_ascii=False) + "\n"
        path.write_text("".join(lines), encoding="utf-8")
        return f"{path.name} record {len(lines) // 2} (id {rec.get('id')})"
    text_files = [p for p in files if p.suffix in (".txt", ".md")]
    if not text_files:
        raise ValueError(f"{source} has no .jsonl, .txt or .md article to change")
    path = text_files[len(text_files) // 2]
    path.write_text(path.read_text(encoding="utf-8").rstrip() + note + "\n", encoding="utf-8")
    return path.name


def _embed_throughput(embedder: Any, texts: Sequence[str], batch_size: int) -> dict[str, Any]:
    """Chunks/s and tokens/s of embed_documents alone, on the given chunk texts."""
    tokens = (
        sum(embedder.count_tokens_batch(texts))
        if hasattr(embedder, "count_tokens_batch")
        else sum(embedder.count_tokens(t) for t in texts)
    )
    t0 = time.perf_counter()
    embedder.embed_documents(list(texts), batch_size)
    s = time.perf_counter() - t0
    return {
        "texts": len(texts),
        "tokens": tokens,
        "seconds": round(s, 3),
        "chunks_per_s": round(len(texts) / s, 1),
        "tokens_per_s": round(tokens / s, 1),
        "tokens_per_chunk": round(tokens / max(1, len(texts)), 1),
    }


def bench_config(
    config: BenchConfig,
    source: Path,
    work: Path,
    *,
    settings: Any = None,
    questions: Sequence[str] = QUESTIONS,
    rounds: int = 3,
    embed_sample: int = 512,
    incremental: bool = True,
    cold_start_runs: int = 3,
    embedder: Any = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Measure one configuration: build, embedding throughput, query latency, size, incremental rebuild, cold start.

    Args:
        config: backend and store.
        source: the copied articles (a folder; the incremental step edits one of them).
        work: a private folder for this configuration's indexes.
        settings: base settings (backend and store are replaced by the configuration's).
        questions: the latency question list; each is asked once per round with the query cache cleared.
        rounds: passes over the question list.
        embed_sample: chunk texts for the embedding-only throughput figure (0 skips it).
        incremental: also change one article and rebuild.
        cold_start_runs: fresh `rag ask` processes on a seeds/ index built with this configuration (0 skips).
        embedder: use this embedder instead of the configuration's (tests pass a fake one).

    Returns:
        A JSON-ready dict; times in seconds unless the key says ms, memory in MiB.
    """
    from rag.answer.engine import open_index
    from rag.config import Settings
    from rag.index.build import build_index
    from rag.index.embedding import make_embedder

    settings = (settings or Settings.load()).with_(
        backend=config.backend, store=config.store, milvus_uri=config.milvus_uri or None
    )
    out: dict[str, Any] = {
        "config": config.name,
        "backend": config.backend,
        "store": config.store,
        "settings": {
            k: getattr(settings, k, None)
            for k in ("model", "chunk_size", "chunk_overlap", "retriever", "k", "sentence_vectors")
        },
    }
    index_dir = work / "index"

    t0 = time.perf_counter()
    emb = embedder or make_embedder(settings.model, config.backend)
    emb.embed_documents(["warm up the embedding model before timing"] * 4)
    out["model_load_s"] = round(time.perf_counter() - t0, 3)

    log(f"[{config.name}] building {source}")
    with RssSampler() as rss:
        stats = build_index(source, index_dir, settings, embedder=emb, full=True)
    embedded = stats.chunks + stats.sentences
    out["build"] = {
        "documents": stats.documents,
        "chunks": stats.chunks,
        "sentences": stats.sentences,
        "tokens": stats.tokens,
        "seconds": stats.seconds,
        "documents_per_s": round(stats.documents / stats.seconds, 2),
        "chunks_per_s": round(stats.chunks / stats.seconds, 2),
        "tokens_per_s": round(stats.tokens / stats.seconds, 1),
        "texts_embedded_per_s": round(embedded / stats.seconds, 1),
        "peak_rss_mb": round(rss.peak_mb, 1),
        "rss_before_mb": round(rss.start_mb, 1),
    }

    idx = open_index(index_dir, settings=settings, embedder=emb)
    try:
        out["index"] = {"disk_mb": folder_mb(idx.version_dir), "store": idx.manifest.get("store", {})}
        if embed_sample:
            rows = idx.catalog.chunks_by_ids(_sample_chunk_ids(idx, embed_sample))
            texts = [idx.document(r.doc_id).text[r.start : r.end] for r in rows.values()]
            log(f"[{config.name}] embedding {len(texts)} chunks")
            out["embed"] = _embed_throughput(emb, texts, settings.batch_size)
        log(f"[{config.name}] {rounds} x {len(questions)} questions")
        out["query"] = query_latency(idx, emb, questions, rounds)
    finally:
        idx.close()

    if incremental:
        changed = _change_one(source)
        log(f"[{config.name}] incremental rebuild after changing {changed}")
        calls_before = getattr(emb, "calls", None)
        t0 = time.perf_counter()
        inc = build_index(source, index_dir, settings, embedder=emb)
        wall = time.perf_counter() - t0
        out["incremental"] = {
            "changed": changed,
            "seconds": round(wall, 3),
            "updated": inc.updated,
            "added": inc.added,
            "removed": inc.removed,
            "embedded_chunks": inc.embedded_chunks,
        }
        if calls_before is not None:
            out["incremental"]["texts_embedded"] = emb.calls - calls_before
        full_s = out["build"]["seconds"]
        out["incremental"]["fraction_of_full_build"] = round(wall / full_s, 4) if full_s else None

    # A fake embedder (tests) cannot be loaded by a new process; the shared one wraps the configuration's own model.
    if cold_start_runs and (embedder is None or isinstance(embedder, SharedVectors)) and SEEDS.is_dir():
        seed_index = work / "seed-index"
        build_index(SEEDS, seed_index, settings, embedder=emb, full=True)
        log(f"[{config.name}] cold start: {cold_start_runs} x `rag ask` in a new process")
        out["cold_start"] = cold_start(seed_index, config.backend, cold_start_runs)
    return out


def _sample_chunk_ids(idx: Any, n: int) -> list[int]:
    """Up to n chunk ids spread evenly over the index (a fixed choice, so configurations embed the same texts)."""
    ids = [r.id for r in sorted(idx.catalog.all_chunks(), key=lambda r: (r.doc_id, r.index))]
    step = max(1, len(ids) // n) if ids else 1
    return ids[::step][:n]


def embed_once(
    configs: Sequence[BenchConfig],
    source: Path,
    root: Path,
    limit: int | None,
    settings: Any,
    log: Callable[[str], None],
) -> dict[str, SharedVectors]:
    """One SharedVectors per backend, filled by an untimed FAISS build of the articles."""
    from rag.config import Settings
    from rag.index.build import build_index
    from rag.index.embedding import make_embedder

    settings = settings or Settings.load()
    shared: dict[str, SharedVectors] = {}
    for backend in dict.fromkeys(c.backend for c in configs if not c.is_tutorial):
        emb = shared[backend] = SharedVectors(make_embedder(settings.model, backend))
        folder = root / f"embed-once-{backend}"
        log(f"[{backend}] embedding {source} once for every configuration")
        t0 = time.perf_counter()
        build_index(
            copy_source(source, folder / "source", limit),
            folder / "index",
            settings.with_(backend=backend, store="faiss"),
            embedder=emb,
            full=True,
        )
        emb.seconds = round(time.perf_counter() - t0, 1)
        shutil.rmtree(folder, ignore_errors=True)
    return shared
