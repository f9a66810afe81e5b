"""Latency: percentiles of timings, warm query latency of an open index, and the cold start of `rag ask`."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["cold_start", "percentiles", "query_latency"]


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


def cold_start(index_dir: Path, backend: str, runs: int) -> dict[str, Any]:
    """Wall time of `rag ask` in a fresh process, from exec to exit, median of `runs`."""
    exe = Path(sys.executable).parent / "rag"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "rag.cli"]
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


def query_latency(idx: Any, emb: Any, questions: Sequence[str], rounds: int) -> dict[str, Any]:
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
