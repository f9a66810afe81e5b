"""The FAISS store alone on N synthetic unit vectors: recall@k against exact search, query latency, and the memory
of the saved store, loaded and memory-mapped (`rag bench --synthetic N`)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.evaluation.bench.latency import percentiles
from rag.evaluation.bench.memory import RssSampler

if TYPE_CHECKING:
    import numpy as np

__all__ = ["bench_synthetic"]


def _centres(clusters: int, dim: int, seed: int = 0) -> np.ndarray:
    import numpy as np

    c = np.random.default_rng(seed).standard_normal((clusters, dim)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _synthetic_blocks(
    n: int, centres: np.ndarray, block: int, seed: int, spread: float
) -> Iterator[tuple[int, np.ndarray]]:
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
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-bench-synth-")
        folder = Path(tmp.name)
    else:
        folder = Path(work)
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
from rag.evaluation.bench.memory import rss_mb
from rag.stores.faiss import FaissStore
folder, params, mmap = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1"
before = rss_mb()
store = FaissStore.load(folder, params, mmap=mmap)
opened = rss_mb() - before
q = np.random.default_rng(1).standard_normal((200, store.dimension)).astype(np.float32)
for i in range(len(q)):
    store.search(q[i : i + 1], 10)
print(json.dumps({"after_open_mb": round(opened, 1), "after_queries_mb": round(rss_mb() - before, 1)}))
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
