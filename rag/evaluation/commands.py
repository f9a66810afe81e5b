"""`rag eval squad|beir|conversations PATH`: the command line of the evaluations."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from rag.errors import ConfigError
from rag.evaluation.beir import run_beir
from rag.evaluation.squad import format_report, run_squad

if TYPE_CHECKING:
    from rag.config import Settings


def _settings_from(args: argparse.Namespace) -> Settings:
    from rag.config import Settings

    return Settings.load(
        {
            "retriever": args.retriever,
            "chunk_size": args.chunk_size,
            "chunk_overlap": args.chunk_overlap,
            "k": args.k,
            "abstain_threshold": args.threshold,
            "reranker": args.reranker,
            "reader": args.reader,
            "reader_candidates": args.reader_candidates,
        }
    )


def cmd_eval(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    show = not args.json and sys.stderr.isatty()
    if args.format == "conversations":
        from rag.evaluation.conversations import check_args, cmd_eval_conversations

        check_args(args)
        return cmd_eval_conversations(args, settings)
    if args.split == "report" and args.format != "conversations":
        raise ConfigError("--split report applies to conversation sets; a SQuAD set splits into fit and holdout")
    if args.format == "squad":
        articles = [a for a in (args.articles or "").split(",") if a] or None
        report = run_squad(
            args.path,
            settings,
            baseline=args.baseline,
            limit=args.limit,
            articles=articles,
            split=args.split,
            work=args.work,
            show_progress=show,
            without_reader=args.without_reader,
        )
    else:
        report = run_beir(args.path, settings, limit=args.limit, work=args.work, show_progress=show)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `rag eval squad|beir|conversations PATH` to the command line."""
    p = subparsers.add_parser(
        "eval",
        help="measure answer and retrieval quality on SQuAD- or BEIR-format data, "
        "or follow-up questions on a conversation set",
    )
    p.add_argument("format", choices=("squad", "beir", "conversations"), help="data format")
    p.add_argument("path", help="the data folder (squad, beir) or conversation file (conversations)")
    p.add_argument("--index", help="the index to ask (conversations; default: the configured index)")
    p.add_argument("--details", action="store_true", help="with --json, each asked turn too (conversations)")
    p.add_argument("--baseline", action="store_true", help="also run the plain baseline, side by side (squad)")
    p.add_argument("--limit", type=int, help="ask at most this many questions (spread over the set)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--articles", help="comma-separated titles to index and ask about (squad)")
    p.add_argument(
        "--split",
        choices=("all", "fit", "holdout", "report"),
        default="all",
        help="ask only the questions of the articles that fit the answer model, or of the others (squad: "
        "fit/holdout; conversations: fit/report)",
    )
    p.add_argument("--work", help="folder for the built index (kept and reused; default a temporary folder)")
    p.add_argument("--retriever", choices=("dense", "lexical", "hybrid"))
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--chunk-overlap", type=int)
    p.add_argument("--k", type=int, help="passages per question")
    p.add_argument("--threshold", type=float, help="abstention threshold to evaluate")
    p.add_argument("--reranker", help="local folder of a sentence-transformers CrossEncoder")
    p.add_argument("--reader", help="default (the shipped reader), none, or a reader folder")
    p.add_argument(
        "--reader-candidates", type=int, help="candidate sentences the reader reads (0: its calibrated number)"
    )
    p.add_argument(
        "--without-reader", action="store_true", help="also ask every question with --reader none, side by side (squad)"
    )
    p.set_defaults(func=cmd_eval)
