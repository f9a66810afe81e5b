"""Scale: synthetic collections of growing size, each built and queried in a fresh process, and how build time,
peak memory, index size and query latency grow with it (`rag bench --scale`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag.evaluation.bench.collections import write_synthetic_collection
from rag.evaluation.bench.configs import DEFAULT_SOURCE, QUESTIONS
from rag.evaluation.bench.latency import query_latency
from rag.evaluation.bench.memory import RssSampler, folder_mb, max_rss_mb

__all__ = ["bench_scale", "bench_scale_one", "scale_growth"]


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
    started = time.perf_counter()
    last: list[Any] = ["", 0.0]  # the stage and the time of the last progress line

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
        disk_mb = folder_mb(idx.version_dir)
        query = query_latency(idx, emb, questions, rounds)
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
        "max_rss_mb": round(max_rss_mb(), 1),
        "disk_mb": disk_mb,
        "kb_per_chunk": round(disk_mb * 1024 / max(1, stats.chunks), 2),
        "query": query,
        "model_load_s": round(model_load_s, 3),
        "backend": settings.backend,
    }


_SCALE_ONE = (
    "import sys; from rag.evaluation.bench.scale import _scale_one_main; sys.exit(_scale_one_main(sys.argv[1]))"
)


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
        assert proc.stderr is not None  # stderr=PIPE
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
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-bench-scale-")
        root = Path(tmp.name)
    else:
        root = Path(work)
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
