"""`rag bench`: build throughput, query latency, memory, index size, incremental rebuild and cold start, measured.

Every configuration given to `--compare` runs in the same process, one after the other, and the report gives
each figure as a ratio to the first configuration: on a shared machine absolute timings drift from one run to the
next, ratios taken minutes apart much less. `--synthetic N` measures the FAISS store alone on N random unit
vectors (recall@10 against exact search, query latency, vector memory).

Stores compare the same way: `onnx-int8/milvus` is Milvus Lite, `onnx-int8/milvus@http://host:19530` a Milvus
server; with `--shared-embeddings` the articles are embedded once, before any configuration, so that the build
times compare what the stores do rather than the model's share, which is the same for all of them.

`tutorial` in `--compare` is the baseline a user gets by following a tutorial: the same articles read by
`load_documents`, cut by langchain's RecursiveCharacterTextSplitter into 200-token chunks (the model's tokenizer,
no overlap), encoded by a plain PyTorch SentenceTransformer, added to a faiss.IndexFlatIP and written to disk. It
has build figures only (it has no answer path, no incremental rebuild), and the report says how many times faster
each other configuration's full build is ("build vs tutorial").

`--scale 2225,20000,100000` builds synthetic collections of that many articles, the source's articles repeated
with deterministic changes (copy 0 is the article itself; later copies have their paragraphs and sentences
reordered, a few words swapped and the copy number in the title), each in a fresh process so that its peak memory
is its own, and reports build time, peak RSS, index size and warm query latency per size, and how they grow.

Example:
    rag bench --compare torch,onnx,onnx-int8 --out bench.json
    rag bench --compare onnx-int8,onnx-int8/milvus,onnx-int8/milvus@http://127.0.0.1:19530 --shared-embeddings
    rag bench --compare tutorial,onnx-int8 --no-incremental
    rag bench --synthetic 1000000
    rag bench --scale 2225,20000,100000 --out scale.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_SOURCE",
    "TUTORIAL",
    "BenchConfig",
    "SharedVectors",
    "RssSampler",
    "SyntheticCollection",
    "percentiles",
    "bench_config",
    "bench_tutorial",
    "bench_synthetic",
    "bench_scale",
    "bench_scale_one",
    "write_synthetic_collection",
    "run_bench",
    "format_table",
    "register",
]

ROOT = Path(__file__).resolve().parents[2]  # the repository: rag/evaluation/bench.py is two folders down
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "bbc_news" / "articles.jsonl"
SEEDS = ROOT / "seeds"
TUTORIAL = "tutorial"  # the --compare name of the tutorial baseline (bench_tutorial)
TUTORIAL_CHUNK_TOKENS = 200

# A fixed question list for latency: news-style questions over the five BBC topics, plus a few unanswerable ones.
QUESTIONS = (
    "Which company reported a rise in quarterly profits?",
    "What did the central bank decide about interest rates?",
    "How much did oil prices rise?",
    "Why did the dollar fall against the euro?",
    "Which airline announced job cuts?",
    "What happened to house prices in the UK?",
    "Who won the best actor award?",
    "Which film topped the box office?",
    "What did the band say about their new album?",
    "Who will host the awards ceremony?",
    "Which musician died this week?",
    "What did the prime minister say about the election date?",
    "How will the new law on identity cards work?",
    "What did the Conservatives promise on taxes?",
    "Why did the minister resign?",
    "What is the government's plan for asylum seekers?",
    "Who won the Australian Open?",
    "How did England play against Wales in the Six Nations?",
    "Which football club sacked its manager?",
    "When will the athlete return from injury?",
    "What did the coach say after the defeat?",
    "How many mobile phones were sold last year?",
    "What security flaw was found in the web browser?",
    "How fast is the new broadband service?",
    "What did the games console maker announce?",
    "How are spam e-mails being tackled?",
    "Who is the chief executive of the software company?",
    "What did the survey find about internet use?",
    "What is the boiling point of mercury?",
    "How do volcanoes form on Mars?",
)


@dataclass(frozen=True)
class BenchConfig:
    """One configuration to measure.

    Attributes:
        backend: embedding backend ("torch", "onnx", "onnx-int8"), or "tutorial" for the tutorial baseline.
        store: vector store kind ("faiss", "milvus").
        milvus_uri: the Milvus server or Lite path for store "milvus" ("": Lite inside the index folder).
        label: name in the report (default "<backend>", "<backend>/<store>", or "<backend>/milvus-server").
    """

    backend: str = "torch"
    store: str = "faiss"
    milvus_uri: str = ""
    label: str = ""

    @property
    def is_tutorial(self) -> bool:
        return self.backend == TUTORIAL

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if self.store == "faiss":
            return self.backend
        server = "://" in self.milvus_uri
        return f"{self.backend}/{self.store}-server" if server else f"{self.backend}/{self.store}"

    @classmethod
    def parse(cls, text: str, store: str = "faiss") -> BenchConfig:
        """ "onnx-int8", "onnx-int8/milvus" or "onnx-int8/milvus@http://127.0.0.1:19530" -> BenchConfig."""
        backend, _, rest = text.strip().partition("/")
        kind, _, uri = rest.partition("@")
        return cls(backend=backend, store=kind or store, milvus_uri=uri)


class SharedVectors:
    """An embedder that keeps every document vector it computes, so that builds of the same articles in several
    configurations embed each text once; queries are embedded afresh, as in any build.

    Args:
        inner: the embedder that computes vectors (name, dimension and everything else are its own).
    """

    def __init__(self, inner: Any):
        self._inner = inner
        self._vectors: dict[str, Any] = {}
        self.seconds = 0.0  # how long filling it took (set by whoever fills it)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: Callable[[int], None] | None = None
    ):
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self._inner.embed_documents(missing, batch_size)))
        if progress:
            progress(len(texts))
        if not texts:
            return np.zeros((0, self._inner.dimension), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32, copy=False)


def _rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _max_rss_mb()


def _max_rss_mb() -> float:
    """The highest resident memory this process has had, in MiB (getrusage; the kernel's own peak)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


class RssSampler:
    """Samples this process's RSS in a background thread; `peak_mb` is the highest value seen.

    Example:
        >>> with RssSampler() as rss:
        ...     work()
        >>> rss.peak_mb, rss.start_mb
    """

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.start_mb = self.peak_mb = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __enter__(self) -> RssSampler:
        self.start_mb = self.peak_mb = _rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean of durations given in seconds, returned in milliseconds (nearest-rank)."""
    if not samples_s:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan"), "n": 0}
    xs = sorted(samples_s)

    def rank(q: float) -> float:
        return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs) - 1e-9) - 1))] * 1000.0

    return {
        "p50_ms": round(statistics.median(xs) * 1000.0, 3),
        "p95_ms": round(rank(0.95), 3),
        "p99_ms": round(rank(0.99), 3),
        "mean_ms": round(statistics.fmean(xs) * 1000.0, 3),
        "n": len(xs),
    }


def _folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20, 2)


def _copy_source(source: Path, dest: Path, limit: int | None) -> Path:
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


def _cold_start(index_dir: Path, backend: str, runs: int) -> dict[str, Any]:
    """Wall time of `rag ask` in a fresh process, from exec to exit, median of `runs`."""
    exe = Path(sys.executable).parent / "rag"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "rag.cli.commands"]
    cmd += ["ask", "what would lift the pause?", "--index", str(index_dir), "--json"]
    env = {**os.environ, "RAG_BACKEND": backend}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    answer = json.loads(done.stdout)
    return {
        "median_s": round(statistics.median(times), 3),
        "runs_s": [round(t, 3) for t in times],
        "abstained": bool(answer.get("abstained")),
    }


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
        out["index"] = {"disk_mb": _folder_mb(idx.version_dir), "store": idx.manifest.get("store", {})}
        if embed_sample:
            rows = idx.catalog.chunks_by_ids(_sample_chunk_ids(idx, embed_sample))
            texts = [idx.document(r.doc_id).text[r.start : r.end] for r in rows.values()]
            log(f"[{config.name}] embedding {len(texts)} chunks")
            out["embed"] = _embed_throughput(emb, texts, settings.batch_size)
        log(f"[{config.name}] {rounds} x {len(questions)} questions")
        out["query"] = _query_latency(idx, emb, questions, rounds)
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
        out["cold_start"] = _cold_start(seed_index, config.backend, cold_start_runs)
    return out


def _sample_chunk_ids(idx: Any, n: int) -> list[int]:
    """Up to n chunk ids spread evenly over the index (a fixed choice, so configurations embed the same texts)."""
    ids = [r.id for r in sorted(idx.catalog.all_chunks(), key=lambda r: (r.doc_id, r.index))]
    step = max(1, len(ids) // n) if ids else 1
    return ids[::step][:n]


def _query_latency(idx: Any, emb: Any, questions: Sequence[str], rounds: int) -> dict[str, Any]:
    """Warm in-process Index.query latency, question string to Answer, query-vector cache cleared each time.

    `first_pass` covers the first round only: questions this process has not seen, whose passages' sentences
    have not been analysed yet (later rounds find that analysis cached, as a running server does for frequent
    passages).
    """
    cache = getattr(emb, "_cache", None)
    for q in ("warm-up question about the news", "another warm-up question"):
        idx.query(q)
    samples, embed_samples = [], []
    answered = 0
    for _ in range(rounds):
        for q in questions:
            if cache is not None:
                cache.clear()
            t0 = time.perf_counter()
            answer = idx.query(q)
            samples.append(time.perf_counter() - t0)
            answered += not answer.abstained
            if cache is not None:
                cache.clear()
            t0 = time.perf_counter()
            emb.embed_query(q)
            embed_samples.append(time.perf_counter() - t0)
    return {
        **percentiles(samples),
        "first_pass": percentiles(samples[: len(questions)]),
        "embed_query": percentiles(embed_samples),
        "answered_fraction": round(answered / max(1, len(samples)), 3),
    }


# -- the tutorial baseline --------------------------------------------------------------------------------------


def _load_tutorial_model(model: str) -> Any:
    """The plain PyTorch SentenceTransformer a tutorial loads, from the local copy of `model` (never a hub)."""
    from rag.config import resolve_model_path

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # The splitter measures whole articles first, and the tokenizer warns that they are longer than the model's limit;
    # the loading bar would cut into the progress lines.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_model_path(model)
    kwargs: dict[str, Any] = {} if Path(path).is_dir() else {"local_files_only": True}
    return SentenceTransformer(path, device="cpu", **kwargs)


def bench_tutorial(
    source: Path,
    work: Path,
    *,
    settings: Any = None,
    model: Any = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Build the tutorial stack on the articles, timed from reading the files to the saved FAISS index.

    Read with `load_documents` (so both stacks see the same texts), split by langchain's
    RecursiveCharacterTextSplitter into 200-token chunks of the model's tokenizer with no overlap and the default
    separators, encoded by `SentenceTransformer.encode(chunks, batch_size=32, normalize_embeddings=True)`, added to
    a faiss.IndexFlatIP and written with faiss.write_index. As for the other configurations, the model is loaded and
    warmed up before the clock starts.

    Args:
        source: the copied articles (a file or folder).
        work: a private folder; the index goes to work/tutorial-index/index.faiss.
        settings: base settings; only the model is taken from them (the tutorial chunks its own way).
        model: a ready SentenceTransformer, or anything with `.encode(texts, batch_size=, normalize_embeddings=)`
            and `.tokenizer.tokenize(text)` (tests pass a fake); default: the settings' model, with PyTorch on CPU.

    Returns:
        A JSON-ready dict with the figures of `bench_config` that apply (build, index disk size, model load); it
        has no query, incremental or cold-start figures, since the stack has no answer path.
    """
    import faiss
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.config import Settings
    from rag.ingest.files import load_documents

    settings = settings or Settings.load()
    out: dict[str, Any] = {
        "config": TUTORIAL,
        "backend": TUTORIAL,
        "store": "faiss",
        "settings": {
            "model": settings.model,
            "chunk_size": TUTORIAL_CHUNK_TOKENS,
            "chunk_overlap": 0,
            "splitter": "RecursiveCharacterTextSplitter",
            "encoder": "sentence-transformers",
        },
    }
    t0 = time.perf_counter()
    model = model or _load_tutorial_model(settings.model)
    model.encode(["warm up the embedding model before timing"] * 4, batch_size=32, normalize_embeddings=True)
    out["model_load_s"] = round(time.perf_counter() - t0, 3)
    torch = sys.modules.get("torch")
    if torch is not None:  # process-wide: an earlier torch configuration (which uses every core) sets it here too
        out["torch_threads"] = torch.get_num_threads()

    tokenizer = model.tokenizer
    # Exactly what RecursiveCharacterTextSplitter.from_huggingface_tokenizer builds; spelled out because that
    # constructor accepts only a transformers tokenizer, and tests pass a fake one.
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=TUTORIAL_CHUNK_TOKENS, chunk_overlap=0, length_function=lambda text: len(tokenizer.tokenize(text))
    )
    folder = work / "tutorial-index"
    folder.mkdir(parents=True, exist_ok=True)
    log(f"[{TUTORIAL}] building {source}")
    with RssSampler() as rss:
        t0 = time.perf_counter()
        docs = load_documents(source).documents
        chunks = [chunk for doc in docs for chunk in splitter.split_text(doc.text)]
        vectors = model.encode(chunks, batch_size=32, normalize_embeddings=True)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        faiss.write_index(index, str(folder / "index.faiss"))
        seconds = time.perf_counter() - t0
    tokens = sum(len(tokenizer.tokenize(c)) for c in chunks)  # counted after the clock stopped
    out["build"] = {
        "documents": len(docs),
        "chunks": len(chunks),
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "documents_per_s": round(len(docs) / seconds, 2),
        "chunks_per_s": round(len(chunks) / seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "peak_rss_mb": round(rss.peak_mb, 1),
        "rss_before_mb": round(rss.start_mb, 1),
    }
    out["index"] = {
        "disk_mb": _folder_mb(folder),
        "store": {"index_type": "IndexFlatIP", "vectors": int(index.ntotal), "dimension": int(index.d)},
        "holds": "chunk vectors only (no texts, offsets, sentence vectors or lexical index)",
    }
    return out


def build_vs_tutorial(configs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """How many times faster each configuration's full build is than the tutorial's: {config: tutorial s / its s}.

    Empty when no configuration is the tutorial; the tutorial's own entry is 1.0.
    """
    tutorial = next((c for c in configs if c.get("backend") == TUTORIAL), None)
    base = _get(tutorial, ("build", "seconds"))
    if not isinstance(base, (int, float)) or base <= 0:
        return {}
    return {
        c["config"]: round(base / s, 2)
        for c in configs
        if isinstance(s := _get(c, ("build", "seconds")), (int, float)) and s > 0
    }


# -- synthetic scale test ---------------------------------------------------------------------------------------


def _centres(clusters: int, dim: int, seed: int = 0):
    import numpy as np

    c = np.random.default_rng(seed).standard_normal((clusters, dim)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _synthetic_blocks(n: int, centres, block: int, seed: int, spread: float):
    """Unit vectors drawn around the given centres (sentence embeddings are clustered, not uniform)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for start in range(0, n, block):
        m = min(block, n - start)
        x = centres[rng.integers(0, len(centres), m)]
        x = x + spread * rng.standard_normal(x.shape).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield start, x


def bench_synthetic(
    n: int,
    *,
    dim: int = 384,
    queries: int = 200,
    k: int = 10,
    exact_max: int | None = None,
    clusters: int | None = None,
    spread: float = 0.05,
    work: Path | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Build a FaissStore of n synthetic vectors and measure recall@k against exact search, latency and memory.

    The exact answers are computed block by block while the store is filled, so all n float32 vectors are never
    held at once.

    Args:
        n: number of vectors.
        dim: their dimension.
        queries: query vectors, drawn from the same distribution (not in the store).
        k: neighbours compared for recall.
        exact_max: the store's exact-search limit (default the store's own).
        clusters: centres of the mixture (default n // 100, at least 10).
        spread: per-dimension noise around a centre (0.05 in 384 dims: cosine ~0.5 within a cluster).
        work: folder for the saved index (default a temporary one).

    Returns:
        layout, build seconds, recall@k, query latency (single queries, warm), file size and RSS of the loaded
        store, in-memory and memory-mapped.
    """
    import numpy as np

    from rag.stores.faiss import EXACT_MAX, FaissStore

    clusters = clusters or max(10, n // 100)
    block = 50_000
    centres = _centres(clusters, dim)
    _, q = next(_synthetic_blocks(queries, centres, queries, 12345, spread))

    store = FaissStore(dim, exact_max=EXACT_MAX if exact_max is None else exact_max, expected_size=n)
    best_s = np.full((queries, k), -np.inf, dtype=np.float32)
    best_i = np.full((queries, k), -1, dtype=np.int64)
    t0 = time.perf_counter()
    with RssSampler() as rss:
        for start, x in _synthetic_blocks(n, centres, block, 0, spread):
            ids = np.arange(start, start + len(x), dtype=np.int64)
            store.add(ids, x)
            s = q @ x.T  # exact scores for this block, merged into the running top-k
            top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
            cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
            cand_i = np.concatenate([best_i, ids[top]], axis=1)
            keep = np.argsort(-cand_s, axis=1)[:, :k]
            best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
            if start // block % 4 == 0:
                log(f"synthetic: {start + len(x):,} / {n:,} vectors")
    build_s = time.perf_counter() - t0

    def measure(s: FaissStore) -> tuple[float, dict[str, Any]]:
        _, got = s.search(q, k)
        recall = float(np.mean([len(set(got[i]) & set(best_i[i])) / k for i in range(queries)]))
        for i in range(min(5, queries)):
            s.search(q[i : i + 1], k)
        times = []
        for i in range(queries):
            t = time.perf_counter()
            s.search(q[i : i + 1], k)
            times.append(time.perf_counter() - t)
        return round(recall, 4), percentiles(times)

    recall_mem, lat_mem = measure(store)
    params = store.params()
    tmp = tempfile.TemporaryDirectory(prefix="rag-bench-synth-") if work is None else None
    folder = Path(tmp.name if tmp else work)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        store.save(folder)
        file_mb = round((folder / FaissStore.FILE).stat().st_size / 2**20, 1)
        del store
        # Memory is measured in fresh processes: freed memory is not returned to the system here.
        rss_loaded = _load_rss(folder, params, mmap=False)
        rss_mapped = _load_rss(folder, params, mmap=True)
        mapped = FaissStore.load(folder, params)
        recall_map, lat_map = measure(mapped)
        is_mapped = mapped.mapped
        del mapped
    finally:
        if tmp:
            tmp.cleanup()
    return {
        "n": n,
        "dimension": dim,
        "queries": queries,
        "k": k,
        "clusters": clusters,
        "spread": spread,
        "layout": params,
        "build_s": round(build_s, 1),
        "build_peak_rss_mb": round(rss.peak_mb, 1),
        "recall_at_k": recall_mem,
        "query": lat_mem,
        "file_mb": file_mb,
        "rss_loaded_in_memory_mb": rss_loaded["after_open_mb"],
        "mmap": {
            "mapped": is_mapped,
            "rss_after_open_mb": rss_mapped["after_open_mb"],
            "rss_after_queries_mb": rss_mapped["after_queries_mb"],
            "recall_at_k": recall_map,
            "query": lat_map,
        },
    }


_LOAD_RSS = """
import json, sys
import faiss
import numpy as np
from rag.evaluation.bench import _rss_mb
from rag.stores.faiss import FaissStore
folder, params, mmap = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1"
before = _rss_mb()
store = FaissStore.load(folder, params, mmap=mmap)
opened = _rss_mb() - before
q = np.random.default_rng(1).standard_normal((200, store.dimension)).astype(np.float32)
for i in range(len(q)):
    store.search(q[i : i + 1], 10)
print(json.dumps({"after_open_mb": round(opened, 1), "after_queries_mb": round(_rss_mb() - before, 1)}))
"""


def _load_rss(folder: Path, params: dict[str, Any], mmap: bool) -> dict[str, float]:
    """RSS growth of a fresh process that opens the saved store and runs 200 queries."""
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_RSS, str(folder), json.dumps(params), "1" if mmap else "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        return {"after_open_mb": float("nan"), "after_queries_mb": float("nan")}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- collections of many articles -------------------------------------------------------------------------------

# Sentence ends inside a paragraph; good enough to reorder them (the engine's own splitter is not needed here).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9£$])")
_PLAIN_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class SyntheticCollection:
    """A collection written by `write_synthetic_collection`.

    Attributes:
        folder: the folder of .jsonl files.
        articles: records written.
        files: .jsonl files written.
        source_articles: records of the source used (all of them when `articles` is larger).
        copies: passes over the source (copy numbers 0 .. copies - 1).
        marked: varied copies whose text still equalled an earlier one and got a closing line naming the copy.
    """

    folder: Path
    articles: int
    files: int
    source_articles: int
    copies: int
    marked: int = 0


def _source_records(source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(line, record) for each usable line of a .jsonl file (a JSON object with a string "text"), read lazily."""
    with open(source, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("text"), str) and rec["text"].strip():
                yield line.rstrip("\n"), rec


def _vary(rec: dict[str, Any], copy: int, position: int) -> dict[str, Any]:
    """Copy `copy` (>= 1) of the record at `position`: paragraphs and the sentences in each reordered, a few pairs
    of adjacent plain words swapped, the copy number in the id and title. Seeded by (copy, position) alone, so the
    same collection comes out on every machine."""
    rng = random.Random(f"{copy}:{position}")  # a str seed is hashed with sha512, not with PYTHONHASHSEED
    paragraphs = rec["text"].split("\n\n")
    rng.shuffle(paragraphs)
    varied = []
    for para in paragraphs:
        sentences = _SENTENCE_END.split(para)
        rng.shuffle(sentences)
        varied.append(" ".join(sentences))
    words = "\n\n".join(varied).split(" ")
    plain = [
        i for i in range(len(words) - 1) if _PLAIN_WORD.fullmatch(words[i]) and _PLAIN_WORD.fullmatch(words[i + 1])
    ]
    for i in sorted(rng.sample(plain, min(3, len(plain)))):
        words[i], words[i + 1] = words[i + 1], words[i]
    out = {**rec, "text": " ".join(words)}
    if rec.get("id") is not None:
        out["id"] = f"{rec['id']}~{copy}"
    if isinstance(rec.get("title"), str) and rec["title"].strip():
        out["title"] = f"{rec['title']} (copy {copy})"
    return out


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def write_synthetic_collection(source: Path, folder: Path, n: int, *, per_file: int = 5000) -> SyntheticCollection:
    """Write n articles made from a .jsonl source into folder/articles-0000.jsonl, ..., line by line.

    The first pass over the source writes its records unchanged (copy 0), the first n when n is smaller; further
    passes write varied copies (`_vary`) until n are written. No article is held in memory, only an 8-byte hash
    of each text written, so that a copy whose variation happens to repeat an earlier text can be told apart.
    Files hold `per_file` articles each, which keeps them under the engine's default max_file_mb.

    Args:
        source: a .jsonl file, one article per line (a JSON object with "text"; "id" and "title" are changed in
            copies when present).
        folder: where to write (created; existing articles-*.jsonl files in it are replaced).
        n: articles to write (>= 1).
        per_file: articles per file.

    Returns:
        SyntheticCollection.

    Raises:
        SourceError: the source is not a .jsonl file or has no usable record.
    """
    from rag.errors import SourceError

    source = Path(source)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not source.is_file() or source.suffix != ".jsonl":
        raise SourceError(f"{source} is not a .jsonl file of articles; pass --scale-source with one")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("articles-*.jsonl"):
        old.unlink()
    seen: set[bytes] = set()
    written = marked = source_articles = copy = 0
    out = None
    try:
        while written < n:
            position = -1
            for position, (line, rec) in enumerate(_source_records(source)):
                if written == n:
                    break
                if copy == 0:
                    digest = _digest(rec["text"])
                else:
                    rec = _vary(rec, copy, position)
                    base, digest, tag = rec["text"], _digest(rec["text"]), 0
                    while digest in seen:  # a short article has few orders: the copy then says which it is
                        tag += 1
                        rec["text"] = f"{base}\n\n(Copy {copy}-{tag}.)"
                        digest = _digest(rec["text"])
                    marked += tag > 0
                    line = json.dumps(rec, ensure_ascii=False)
                seen.add(digest)
                if written % per_file == 0:
                    if out:
                        out.close()
                    out = open(folder / f"articles-{written // per_file:04d}.jsonl", "w", encoding="utf-8")
                out.write(line + "\n")
                written += 1
            if position < 0:
                raise SourceError(f"{source} has no usable article (a JSON object with a string 'text' per line)")
            if copy == 0:
                source_articles = written
            copy += 1
    finally:
        if out:
            out.close()
    return SyntheticCollection(folder, written, (written - 1) // per_file + 1, source_articles, copy, marked)


def bench_scale_one(
    source: Path,
    index_dir: Path,
    *,
    settings: Any = None,
    rounds: int = 2,
    questions: Sequence[str] = QUESTIONS,
    embedder: Any = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Full build of `source` into a fresh `index_dir`, then warm query latency: one size of `bench_scale`.

    Meant to run alone in its process (see `_scale_one_main`), so that `max_rss_mb`, the kernel's peak for the
    process (model, build and queries), belongs to this build alone.

    Args:
        source: the articles.
        index_dir: the index folder (must not hold an index: the build is measured from scratch).
        settings: engine settings (default: Settings.load()).
        rounds: passes over `questions`.
        questions: latency questions, answered by the default path (retrieval and reader).
        embedder: use this embedder instead of the settings' model (tests pass a fake one).

    Returns:
        A JSON-ready dict: seconds, MiB, milliseconds as the keys say.
    """
    from rag.answer.engine import open_index
    from rag.config import Settings
    from rag.index.build import build_index
    from rag.index.embedding import make_embedder

    settings = settings or Settings.load()
    t0 = time.perf_counter()
    emb = embedder or make_embedder(settings.model, settings.backend)
    emb.embed_documents(["warm up the embedding model before timing"] * 4)
    model_load_s = time.perf_counter() - t0
    started, last = time.perf_counter(), ["", 0.0]

    def progress(stage: str, done: int, total: int) -> None:
        # A 100,000-article build runs for hours: a line per stage, and one a minute within it, say it is alive.
        now = time.perf_counter() - started
        if stage != last[0] or now - last[1] >= 60:
            last[:] = [stage, now]
            log(f"  {stage} {done:,}/{total:,} ({now:,.0f} s)")

    with RssSampler() as rss:
        stats = build_index(source, index_dir, settings, embedder=emb, full=True, progress=progress)
    log(f"  built {stats.documents:,} articles in {stats.seconds:,.1f} s; {rounds} x {len(questions)} questions")
    idx = open_index(index_dir, settings=settings, embedder=emb)
    try:
        disk_mb = _folder_mb(idx.version_dir)
        query = _query_latency(idx, emb, questions, rounds)
    finally:
        idx.close()
    return {
        "documents": stats.documents,
        "chunks": stats.chunks,
        "sentences": stats.sentences,
        "tokens": stats.tokens,
        "skipped": len(stats.skipped),
        "build_s": stats.seconds,
        "articles_per_s": round(stats.documents / stats.seconds, 2),
        "build_s_per_1k_articles": round(stats.seconds * 1000 / max(1, stats.documents), 3),
        "peak_rss_mb": round(rss.peak_mb, 1),
        "rss_before_build_mb": round(rss.start_mb, 1),
        "max_rss_mb": round(_max_rss_mb(), 1),
        "disk_mb": disk_mb,
        "kb_per_chunk": round(disk_mb * 1024 / max(1, stats.chunks), 2),
        "query": query,
        "model_load_s": round(model_load_s, 3),
        "backend": settings.backend,
    }


_SCALE_ONE = "import sys; from rag.evaluation.bench import _scale_one_main; sys.exit(_scale_one_main(sys.argv[1]))"


def _scale_one_main(params: str) -> int:
    """The fresh process of one size: `bench_scale_one` with JSON parameters, its result as JSON on stdout and its
    progress lines on stderr."""
    from rag.config import Settings

    p = json.loads(params)
    out = bench_scale_one(
        Path(p["source"]),
        Path(p["index"]),
        settings=Settings.from_dict(p["settings"]),
        rounds=p["rounds"],
        questions=p["questions"],
        log=lambda s: print(s, file=sys.stderr, flush=True),
    )
    print(json.dumps(out))
    return 0


def _scale_subprocess(
    source: Path, index_dir: Path, settings: Any, rounds: int, questions: Sequence[str], log: Callable[[str], None]
) -> dict[str, Any]:
    """`bench_scale_one` in a new Python process; each line it writes on stderr is passed to `log` as it comes."""
    from collections import deque

    from rag.errors import RagError

    params = json.dumps(
        {
            "source": str(source),
            "index": str(index_dir),
            "settings": settings.to_dict(),
            "rounds": rounds,
            "questions": list(questions),
        },
        default=str,
    )
    # stdout goes to a file: a pipe nobody reads while stderr is being read could fill and stall the child.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SCALE_ONE, params], stdout=stdout, stderr=subprocess.PIPE, text=True
        )
        tail: deque[str] = deque(maxlen=5)
        for line in proc.stderr:
            tail.append(line.rstrip())
            log(line.rstrip())
        code = proc.wait()
        stdout.seek(0)
        printed = stdout.read().strip().splitlines()
    if code != 0 or not printed:
        why = next((t for t in reversed(tail) if t.strip()), f"exit {code}")
        raise RagError(f"the build of {source} failed in its own process (exit {code}): {why}")
    return json.loads(printed[-1])


def bench_scale(
    sizes: Sequence[int],
    source: Path | None = None,
    *,
    work: Path | None = None,
    keep: bool = False,
    settings: Any = None,
    rounds: int = 2,
    questions: Sequence[str] = QUESTIONS,
    embedder: Any = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Build and query synthetic collections of each size, each in a fresh process, and say how the figures grow.

    Args:
        sizes: article counts, measured in increasing order.
        source: a .jsonl of articles to repeat (default ../shared/data/bbc_news/articles.jsonl).
        work: folder for the collections and indexes (default a temporary one).
        keep: keep each size's collection and index folder (default: removed once measured).
        settings: engine settings for every build (default: Settings.load()).
        rounds: passes over `questions` for the query latency.
        embedder: build and query in this process with this embedder instead (tests pass a fake one, which a
            new process could not load); `max_rss_mb` is then this process's, not the build's own.
        log: progress lines, those of the builds' processes included.

    Returns:
        {"source", "rounds", "questions", "settings", "runs": [one dict per size], "growth": [between sizes]}.
    """
    from rag.config import Settings

    settings = settings or Settings.load()
    source = Path(source or DEFAULT_SOURCE)
    sizes = sorted(set(sizes))
    tmp = tempfile.TemporaryDirectory(prefix="rag-bench-scale-") if work is None else None
    root = Path(tmp.name if tmp else work)
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for n in sizes:
            folder = root / f"scale-{n}"
            if (folder / "index").exists():
                shutil.rmtree(folder / "index")  # a fresh build, not an update of an earlier run's index
            log(f"scale {n:,}: writing the collection ({time.perf_counter() - started:,.0f} s elapsed)")
            collection = write_synthetic_collection(source, folder / "articles", n)
            log(f"scale {n:,}: building and querying in a {'fresh process' if embedder is None else 'this process'}")
            if embedder is None:
                result = _scale_subprocess(collection.folder, folder / "index", settings, rounds, questions, log)
            else:
                result = bench_scale_one(
                    collection.folder,
                    folder / "index",
                    settings=settings,
                    rounds=rounds,
                    questions=questions,
                    embedder=embedder,
                    log=log,
                )
            runs.append(
                {
                    "articles": n,
                    "files": collection.files,
                    "copies": collection.copies,
                    "marked_copies": collection.marked,
                    "fresh_process": embedder is None,
                    **result,
                }
            )
            log(
                f"scale {n:,}: build {result['build_s']:,.1f} s, peak RSS {result['max_rss_mb']:,.0f} MiB, "
                f"query p50 {result['query']['p50_ms']:,.1f} ms ({time.perf_counter() - started:,.0f} s elapsed)"
            )
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if tmp:
            tmp.cleanup()
    return {
        "source": str(source),
        "rounds": rounds,
        "questions": len(questions),
        "settings": settings.index_signature(),
        "runs": runs,
        "growth": scale_growth(runs),
    }


def scale_growth(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """How each figure grows from one size to the next: ratios, and per 1,000 added articles for the costs."""

    def ratio(a: Any, b: Any) -> float | None:
        return round(b / a, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else None

    out = []
    for a, b in zip(runs, runs[1:]):
        per_1k = 1000 / (b["articles"] - a["articles"])
        out.append(
            {
                "from": a["articles"],
                "to": b["articles"],
                "articles_x": ratio(a["articles"], b["articles"]),
                "build_s_x": ratio(a["build_s"], b["build_s"]),
                "build_s_per_1k_added": round((b["build_s"] - a["build_s"]) * per_1k, 3),
                "max_rss_mb_added": round(b["max_rss_mb"] - a["max_rss_mb"], 1),
                "max_rss_mb_per_1k_added": round((b["max_rss_mb"] - a["max_rss_mb"]) * per_1k, 2),
                "peak_rss_mb_per_1k_added": round((b["peak_rss_mb"] - a["peak_rss_mb"]) * per_1k, 2),
                "disk_mb_per_1k_added": round((b["disk_mb"] - a["disk_mb"]) * per_1k, 2),
                "query_p50_x": ratio(a["query"]["p50_ms"], b["query"]["p50_ms"]),
                "query_p95_x": ratio(a["query"]["p95_ms"], b["query"]["p95_ms"]),
            }
        )
    return out


# -- report ---------------------------------------------------------------------------------------------------

# (row label, path into a configuration's result, higher is better?)
ROWS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("embed tokens/s", ("embed", "tokens_per_s"), True),
    ("embed chunks/s", ("embed", "chunks_per_s"), True),
    ("build s", ("build", "seconds"), False),
    ("build documents/s", ("build", "documents_per_s"), True),
    ("build chunks/s", ("build", "chunks_per_s"), True),
    ("build tokens/s", ("build", "tokens_per_s"), True),
    ("build peak RSS MiB", ("build", "peak_rss_mb"), False),
    ("query p50 ms", ("query", "p50_ms"), False),
    ("query p95 ms", ("query", "p95_ms"), False),
    ("query p99 ms", ("query", "p99_ms"), False),
    ("query p50 ms (new)", ("query", "first_pass", "p50_ms"), False),
    ("query p95 ms (new)", ("query", "first_pass", "p95_ms"), False),
    ("query-embed p50 ms", ("query", "embed_query", "p50_ms"), False),
    ("index on disk MiB", ("index", "disk_mb"), False),
    ("incremental s", ("incremental", "seconds"), False),
    ("cold start s", ("cold_start", "median_s"), False),
    ("model load s", ("model_load_s",), False),
)


def _get(d: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def add_ratios(configs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each figure of each configuration divided by the first configuration's ({label: {config: ratio}})."""
    ratios: dict[str, dict[str, float]] = {}
    if not configs:
        return ratios
    base = configs[0]
    for label, path, _ in ROWS:
        b = _get(base, path)
        if not isinstance(b, (int, float)) or b == 0:
            continue
        ratios[label] = {c["config"]: round(v / b, 3) for c in configs if isinstance(v := _get(c, path), (int, float))}
    return ratios


def format_table(report: dict[str, Any]) -> str:
    """The report as an aligned text table (ratios to the first configuration in brackets)."""
    lines: list[str] = []
    env = report.get("machine", {})
    lines.append(
        f"machine: {env.get('cpus')} CPUs, {env.get('cpu_model', '?')}, python {env.get('python')}, "
        f"load average {env.get('loadavg_start')} -> {env.get('loadavg_end')}"
    )
    configs = report.get("configs", [])
    if configs:
        src = report.get("source", {})
        # The tutorial cuts its own chunks and has no sentences: the figures come from an engine build if any.
        ref = next((c["build"] for c in configs if c.get("backend") != TUTORIAL), configs[0]["build"])
        lines.append(
            f"source: {src.get('path')} ({ref['documents']} documents, "
            f"{ref['chunks']} chunks, {ref.get('sentences', '-')} sentences)"
        )
        names = [c["config"] for c in configs]
        width = max(14, *(len(n) + 2 for n in names))
        lines.append(f"{'':<22}" + "".join(f"{n:>{width + 9}}" for n in names))
        ratios = report.get("ratios", {})
        for label, path, _ in ROWS:
            vals = [_get(c, path) for c in configs]
            if all(v is None for v in vals):
                continue
            cells = []
            for c, v in zip(configs, vals):
                r = ratios.get(label, {}).get(c["config"])
                cell = "-" if v is None else (f"{v:,.1f}" if isinstance(v, float) else f"{v:,}")
                cells.append(
                    f"{cell:>{width}}" + (f" ({r:.2f}x)" if r is not None and c is not configs[0] else " " * 9)
                )
            lines.append(f"{label:<22}" + "".join(cells))
        vs = report.get("build_vs_tutorial", {})
        if vs:
            cells = [f"{vs[c['config']]:.2f}x" if c["config"] in vs else "-" for c in configs]
            lines.append(f"{'build vs tutorial':<22}" + "".join(f"{cell:>{width}}" + " " * 9 for cell in cells))
        for c in configs:
            if c.get("backend") == TUTORIAL:
                lines.append(
                    f"{c['config']}: {c['build']['chunks']:,} chunks of <= {TUTORIAL_CHUNK_TOKENS} tokens "
                    "(RecursiveCharacterTextSplitter), SentenceTransformer on PyTorch, faiss.IndexFlatIP; "
                    "build figures only (no answer path); build vs tutorial = tutorial build s / build s"
                )
            inc = c.get("incremental")
            if inc:
                lines.append(
                    f"{c['config']}: incremental rebuild after changing {inc['changed']}: {inc['seconds']} s, "
                    f"{inc.get('texts_embedded', '?')} texts embedded, {inc['updated']} updated"
                )
    for backend, shared in report.get("shared_embeddings", {}).items():
        lines.append(
            f"{backend}: articles embedded once beforehand ({shared['texts']:,} texts in {shared['seconds']} s, "
            "not timed); build and incremental times leave embedding out"
        )
    syn = report.get("synthetic")
    if syn:
        lay = syn["layout"]
        lines.append(
            f"synthetic: {syn['n']:,} x {syn['dimension']} vectors, {lay.get('factory')} (nprobe {lay.get('nprobe', '-')}): "
            f"recall@{syn['k']} {syn['recall_at_k']:.4f}, query p50 {syn['query']['p50_ms']:.2f} ms "
            f"p95 {syn['query']['p95_ms']:.2f} ms, file {syn['file_mb']} MiB, in memory +{syn['rss_loaded_in_memory_mb']} MiB, "
            f"mapped +{syn['mmap']['rss_after_open_mb']} MiB (+{syn['mmap']['rss_after_queries_mb']} MiB after queries), "
            f"build {syn['build_s']} s"
        )
    if report.get("scale"):
        lines.extend(format_scale(report["scale"]))
    return "\n".join(lines)


# (row label, key path into one size's result)
SCALE_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("build s", ("build_s",)),
    ("articles/s", ("articles_per_s",)),
    ("build s per 1k articles", ("build_s_per_1k_articles",)),
    ("chunks", ("chunks",)),
    ("sentences", ("sentences",)),
    ("build peak RSS MiB", ("peak_rss_mb",)),
    ("process peak RSS MiB", ("max_rss_mb",)),
    ("index on disk MiB", ("disk_mb",)),
    ("KB per chunk", ("kb_per_chunk",)),
    ("query p50 ms", ("query", "p50_ms")),
    ("query p95 ms", ("query", "p95_ms")),
    ("answered fraction", ("query", "answered_fraction")),
)


def format_scale(scale: dict[str, Any]) -> list[str]:
    """The `bench_scale` result as table lines, one column per size, then the growth from each size to the next."""
    runs = scale.get("runs", [])
    if not runs:
        return []
    where = "each in a fresh process" if all(r.get("fresh_process") for r in runs) else "in this process"
    lines = [
        f"scale: {scale['source']} repeated, {runs[0].get('backend')} backend, built {where}; "
        f"query latency over {scale['rounds']} x {scale['questions']} questions"
    ]
    width = max(12, *(len(f"{r['articles']:,}") + 2 for r in runs))
    lines.append(f"{'articles':<24}" + "".join(f"{r['articles']:>{width},}" for r in runs))
    for label, path in SCALE_ROWS:
        vals = [_get(r, path) for r in runs]
        cells = ["-" if v is None else (f"{v:,.2f}" if isinstance(v, float) else f"{v:,}") for v in vals]
        lines.append(f"{label:<24}" + "".join(f"{c:>{width}}" for c in cells))
    for g in scale.get("growth", []):
        lines.append(
            f"{g['from']:,} -> {g['to']:,} articles ({g['articles_x']}x): build {g['build_s_x']}x "
            f"({g['build_s_per_1k_added']:+,} s per 1,000 added), process peak RSS {g['max_rss_mb_added']:+,} MiB "
            f"({g['max_rss_mb_per_1k_added']:+,} MiB per 1,000), disk {g['disk_mb_per_1k_added']:+,} MiB per 1,000, "
            f"query p50 {g['query_p50_x']}x, p95 {g['query_p95_x']}x"
        )
    return lines


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import platform

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        info["loadavg_start"] = round(os.getloadavg()[0], 2)
        with open("/proc/meminfo", encoding="ascii") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import faiss
        import numpy

        info["faiss"] = faiss.__version__
        info["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def run_bench(
    configs: Sequence[BenchConfig],
    source: Path | None = None,
    *,
    limit: int | None = None,
    synthetic: int = 0,
    rounds: int = 3,
    incremental: bool = True,
    cold_start_runs: int = 3,
    embed_sample: int = 512,
    work: Path | None = None,
    settings: Any = None,
    embedder: Any = None,
    tutorial_model: Any = None,
    shared_embeddings: bool = False,
    scale: Sequence[int] = (),
    scale_source: Path | None = None,
    scale_rounds: int = 2,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Run every configuration in this process and return the report (see `bench_config`, `bench_tutorial`,
    `bench_synthetic` and `bench_scale`).

    Args:
        configs: configurations in order; ratios are taken to the first. Empty with `synthetic` or `scale` runs
            only those.
        source: articles file or folder (default ../shared/data/bbc_news/articles.jsonl).
        limit: use only the first N records (a .jsonl) or files (a folder).
        synthetic: also run the FAISS scale test with this many vectors (0: no).
        work: folder for indexes (default a temporary folder, removed afterwards).
        embedder: use this embedder in every configuration and scale build (tests pass a fake one).
        tutorial_model: the model of the tutorial configuration (default: the settings' model, PyTorch; tests
            pass a fake one).
        shared_embeddings: embed the articles once per backend before the configurations (an untimed FAISS
            build) and let every build reuse those vectors; build and incremental times then leave the model out.
        scale: article counts for `bench_scale` (empty: none); each size's folder is kept only when `work` is given.
        scale_source: the .jsonl those collections are made from (default: DEFAULT_SOURCE).
        scale_rounds: passes over the question list at each size.
    """
    from rag.errors import SourceError

    report: dict[str, Any] = {"machine": machine(), "configs": []}
    tmp = tempfile.TemporaryDirectory(prefix="rag-bench-") if work is None else None
    root = Path(tmp.name if tmp else work)
    try:
        if configs:
            source = Path(source or DEFAULT_SOURCE)
            if not source.exists():
                raise SourceError(f"{source} does not exist; pass --source with a file or folder of articles")
            report["source"] = {"path": str(source), "limit": limit}
            shared = _embed_once(configs, source, root, limit, settings, log) if shared_embeddings else {}
            if shared:
                report["shared_embeddings"] = {
                    b: {"texts": len(e._vectors), "seconds": e.seconds} for b, e in shared.items()
                }
            for i, config in enumerate(configs):
                folder = root / f"{i}-{config.name.replace('/', '-')}"
                copy = _copy_source(source, folder / "source", limit)
                if config.is_tutorial:
                    report["configs"].append(
                        bench_tutorial(copy, folder, settings=settings, model=tutorial_model, log=log)
                    )
                    continue
                report["configs"].append(
                    bench_config(
                        config,
                        copy,
                        folder,
                        settings=settings,
                        rounds=rounds,
                        incremental=incremental,
                        cold_start_runs=cold_start_runs,
                        embed_sample=embed_sample,
                        embedder=shared.get(config.backend, embedder),
                        log=log,
                    )
                )
            report["ratios"] = add_ratios(report["configs"])
            if vs := build_vs_tutorial(report["configs"]):
                report["build_vs_tutorial"] = vs
        if synthetic:
            report["synthetic"] = bench_synthetic(synthetic, work=root / "synthetic", log=log)
        if scale:
            report["scale"] = bench_scale(
                scale,
                scale_source,
                work=root / "scale",
                keep=work is not None,
                settings=settings,
                rounds=scale_rounds,
                embedder=embedder,
                log=log,
            )
    finally:
        if tmp:
            tmp.cleanup()
    try:
        report["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return report


def _embed_once(
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
            _copy_source(source, folder / "source", limit),
            folder / "index",
            settings.with_(backend=backend, store="faiss"),
            embedder=emb,
            full=True,
        )
        emb.seconds = round(time.perf_counter() - t0, 1)
        shutil.rmtree(folder, ignore_errors=True)
    return shared


# -- command line -----------------------------------------------------------------------------------------------


def parse_configs(names: Sequence[str], settings: Any, store: str = "faiss") -> list[BenchConfig]:
    """`--compare` names -> configurations, each checked against the settings ("tutorial" needs no check)."""
    from rag.errors import ConfigError

    configs = [BenchConfig.parse(n, store) for n in names if n.strip()]
    for c in configs:
        if c.is_tutorial:
            continue
        try:
            settings.with_(backend=c.backend, store=c.store)
        except ConfigError as exc:
            raise ConfigError(f"--compare {c.name}: {exc}") from None
    return configs


def _sizes(text: str) -> list[int]:
    """ "2225,20000,100000" -> [2225, 20000, 100000] (for argparse)."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected article counts separated by commas, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"article counts must be at least 1, got {text!r}")
    return sizes


def cmd_bench(args: argparse.Namespace) -> int:
    from rag.config import Settings

    settings = Settings.load({"model": args.model, "chunk_size": args.chunk_size, "chunk_overlap": args.chunk_overlap})
    # --backend alone names the corpus configuration, except beside --scale, whose builds it sets.
    corpus = args.compare or args.with_corpus or (args.backend and not args.scale) or not (args.synthetic or args.scale)
    names = (args.compare or args.backend or settings.backend).split(",") if corpus else []
    configs = parse_configs(names, settings, args.store or "faiss")
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if not args.quiet else (lambda s: None)
    report = run_bench(
        configs,
        Path(args.source) if args.source else None,
        limit=args.limit,
        synthetic=args.synthetic or 0,
        rounds=args.rounds,
        incremental=not args.no_incremental,
        cold_start_runs=args.cold_start_runs,
        embed_sample=args.embed_sample,
        work=Path(args.work) if args.work else None,
        settings=settings.with_(backend=None if args.backend == TUTORIAL else args.backend),
        shared_embeddings=args.shared_embeddings,
        scale=args.scale or (),
        scale_source=Path(args.scale_source) if args.scale_source else None,
        scale_rounds=args.scale_rounds,
        log=log,
    )
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text if args.json else format_table(report))
    return 0


def register(subparsers) -> None:
    """Add `rag bench` to the command line."""
    p = subparsers.add_parser(
        "bench",
        help="measure build throughput, query latency, memory, index size, rebuild and cold start",
        description="Measure build throughput, warm query latency (p50/p95/p99), peak RSS, index size, an incremental "
        "rebuild and the cold start of `rag ask`; --compare runs several configurations in one process "
        "and gives ratios to the first (`tutorial` among them: the langchain splitter + "
        "SentenceTransformer + faiss.IndexFlatIP baseline, build figures only, with each build's speed-up "
        "over it). --scale builds synthetic collections of the given sizes, each in a fresh process, "
        "and reports how build time, memory, index size and query latency grow.",
    )
    p.add_argument("--source", help=f"articles file or folder (default {DEFAULT_SOURCE})")
    p.add_argument("--limit", type=int, help="use only the first N records or files of the source")
    p.add_argument(
        "--backend",
        help="one embedding backend: torch, onnx or onnx-int8 (default: the settings'); "
        "also the backend of the --scale builds",
    )
    p.add_argument(
        "--compare",
        help="comma-separated configurations, e.g. torch,onnx,onnx-int8, onnx-int8/milvus "
        "(Milvus Lite), onnx-int8/milvus@http://127.0.0.1:19530 (a Milvus server), or "
        "tutorial (a plain langchain + sentence-transformers + FAISS build, timed from "
        "the files to the saved index)",
    )
    p.add_argument("--store", choices=("faiss", "milvus"), help="vector store for configurations that name none")
    p.add_argument("--model", help="sentence-transformers model name or local folder")
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--chunk-overlap", type=int)
    p.add_argument("--rounds", type=int, default=3, help="passes over the latency question list (default 3)")
    p.add_argument("--embed-sample", type=int, default=512, help="chunks for the embedding-only throughput (0: skip)")
    p.add_argument(
        "--cold-start-runs", type=int, default=3, help="fresh `rag ask` processes per configuration (0: skip)"
    )
    p.add_argument("--no-incremental", action="store_true", help="skip the change-one-article rebuild")
    p.add_argument(
        "--shared-embeddings",
        action="store_true",
        help="embed the articles once, before the configurations, and reuse the vectors in every build "
        "(build times then compare the stores, not the model)",
    )
    p.add_argument("--synthetic", type=int, metavar="N", help="FAISS scale test on N synthetic 384-dim vectors")
    p.add_argument(
        "--with-corpus", action="store_true", help="with --synthetic or --scale, also run the corpus benchmark"
    )
    p.add_argument(
        "--scale",
        type=_sizes,
        metavar="N,N,...",
        help="build synthetic collections of these article counts (the source repeated with deterministic "
        "changes), each in a fresh process, and report build time, peak RSS, index size and query "
        "latency per size and how they grow",
    )
    p.add_argument("--scale-source", help=f"the .jsonl those collections are made from (default {DEFAULT_SOURCE})")
    p.add_argument("--scale-rounds", type=int, default=2, help="passes over the question list per size (default 2)")
    p.add_argument(
        "--work",
        help="keep indexes (and --scale collections) in this folder (default: a temporary "
        "folder; each --scale size's folder is removed once measured)",
    )
    p.add_argument("--out", help="also write the JSON report to this file")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_bench)
