"""`rag bench` on the command line: the --compare and --scale arguments, `cmd_bench` and `register`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.evaluation.bench.configs import DEFAULT_SOURCE, TUTORIAL, BenchConfig
from rag.evaluation.bench.report import format_table
from rag.evaluation.bench.run import run_bench

__all__ = ["cmd_bench", "parse_configs", "register"]


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


def register(subparsers: argparse._SubParsersAction) -> None:
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
