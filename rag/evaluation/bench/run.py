"""`run_bench`: every measurement asked for, run in this process and gathered into one report."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag.evaluation.bench.builds import bench_config, copy_source, embed_once
from rag.evaluation.bench.configs import DEFAULT_SOURCE, BenchConfig
from rag.evaluation.bench.report import add_ratios, machine
from rag.evaluation.bench.scale import bench_scale
from rag.evaluation.bench.synthetic import bench_synthetic
from rag.evaluation.bench.tutorial import bench_tutorial, build_vs_tutorial

__all__ = ["run_bench"]


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
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-bench-")
        root = Path(tmp.name)
    else:
        root = Path(work)
    try:
        if configs:
            source = Path(source or DEFAULT_SOURCE)
            if not source.exists():
                raise SourceError(f"{source} does not exist; pass --source with a file or folder of articles")
            report["source"] = {"path": str(source), "limit": limit}
            shared = embed_once(configs, source, root, limit, settings, log) if shared_embeddings else {}
            if shared:
                report["shared_embeddings"] = {
                    b: {"texts": len(e._vectors), "seconds": e.seconds} for b, e in shared.items()
                }
            for i, config in enumerate(configs):
                folder = root / f"{i}-{config.name.replace('/', '-')}"
                copy = copy_source(source, folder / "source", limit)
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
