"""Command line: parses arguments and calls the library; expected errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.answer.engine import Index
    from rag.config import Settings
    from rag.types import Answer, Passage

__all__ = ["main", "rebuild_main"]


def _settings(args: argparse.Namespace) -> Settings:
    from rag.config import Settings

    overrides = {
        "index_dir": getattr(args, "index", None),
        "source": getattr(args, "source", None),
        "model": getattr(args, "model", None),
        "backend": getattr(args, "backend", None),
        "chunk_size": getattr(args, "chunk_size", None),
        "chunk_overlap": getattr(args, "chunk_overlap", None),
        "k": getattr(args, "k", None),
        "abstain_threshold": getattr(args, "threshold", None),
        "retriever": getattr(args, "retriever", None),
        "store": getattr(args, "store", None),
        "milvus_uri": getattr(args, "milvus_uri", None),
        "reader": getattr(args, "reader", None),
        "device": getattr(args, "device", None),
    }
    return Settings.load(overrides)


def _progress_bar(enabled: bool) -> Callable[[str, int, int], None] | None:
    if not enabled:
        return None
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage != "embed" or total <= 0:
            return
        bar = bars.get(stage)
        if bar is None:
            # Articles, not texts: the rate reads as articles/s and the time left as the rest of the collection.
            bar = bars[stage] = tqdm(total=total, desc="indexing", unit="article", file=sys.stderr, leave=False)
        bar.total = max(bar.total or 0, total)
        bar.n = done
        bar.refresh()
        if done >= total and stage in bars:
            bar.close()
            del bars[stage]

    return update


def cmd_rebuild(args: argparse.Namespace) -> int:
    from rag.index.build import build_index
    from rag.ingest.uploads import uploaded_files, uploads_folder

    settings = _settings(args)
    show = not args.quiet and not args.json and sys.stderr.isatty()
    # Articles added through the web app live in the index's uploads folder; a rebuild keeps them indexed.
    uploads = uploads_folder(settings)
    uploaded = uploaded_files(uploads)
    sources: str | list[str | Path] = [settings.source, uploads] if uploaded else settings.source
    if uploaded and not args.json:
        print(f"including {len(uploaded)} uploaded file(s) from {uploads}", file=sys.stderr)
    # Articles fetched from the web (rag add, rag sources) are kept beside the index; a rebuild needs no network.
    from rag.web.store import ArticleFiles, web_folder

    web = ArticleFiles(web_folder(settings))
    if web.has_articles():
        sources = [*([sources] if isinstance(sources, str) else sources), web.articles]
        if not args.json:
            print(f"including the web articles in {web.articles}", file=sys.stderr)
    stats = build_index(sources, settings.index_dir, settings, full=args.full, progress=_progress_bar(show))
    from rag.cli.watch import print_new_answers, report_dict
    from rag.watch.asking import after_build

    watched = after_build(settings.index_dir, settings)  # the saved questions, against the new and changed articles
    if args.json:
        print(json.dumps({**stats.to_dict(), "watched": report_dict(watched)}, indent=2, ensure_ascii=False))
        return 0
    for s in stats.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    print(
        f"indexed {stats.documents} documents ({stats.added} added, {stats.updated} updated, {stats.removed} removed), "
        f"{stats.chunks} chunks, {stats.sentences} sentences in {stats.seconds:.1f} s -> {settings.index_dir}"
    )
    print_new_answers(watched)
    return 0


def _open(args: argparse.Namespace) -> Index:
    from rag.answer.engine import open_index

    settings = _settings(args)
    return open_index(settings.index_dir, settings=settings)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "doc_ids": args.doc or None,
        "sources": args.source_filter or None,
        "since": args.since,
        "until": args.until,
        "section": args.section or None,
        "outlet": args.outlet or None,
        "sort": args.sort,
    }


def _about(item: Any) -> str:
    """ "2024-03-06 · politics · Reuters" for a citation or passage: whichever of the three it has."""
    return " · ".join(x for x in ((item.date or "")[:10], item.section, item.outlet) if x)


def _read_history(path: str | None) -> list | None:
    """The `--history` file: a JSON list of earlier turns (questions, or objects with "question" and "answer")."""
    if not path:
        return None
    from rag.errors import QuestionError

    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        return json.loads(text)
    except OSError as exc:
        raise QuestionError(
            f"cannot read the history file {path} ({exc.strerror}); pass a JSON file of earlier turns"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QuestionError(
            f"the history file {path} is not JSON ({exc}); pass a JSON list of earlier turns, each a "
            'question or an object with "question" and "answer" (rag ask --json output)'
        ) from None


def cmd_ask(args: argparse.Namespace) -> int:
    idx = _open(args)
    answer = idx.query(args.question, args.k, history=_read_history(args.history), **_filters(args))
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return 0
    _print_answer(answer, min(100, max(60, _term_width())))
    return 0


def _print_answer(answer: Answer, width: int, passages: bool = True) -> None:
    """An answer as `rag ask` and `rag chat` show it: how a follow-up was read, the short answer, the quotes, the
    citations, and the passages (only when it abstained, when `passages` is False)."""
    if answer.read_as:
        print(f"Read as: {answer.read_as}  (following question {answer.follows})")
    label = "No answer" if answer.abstained else "Answer"
    print(f"{label} (confidence {answer.confidence:.2f})")
    if answer.short_answer:
        print(f"  {_bold(answer.short_answer)}")
    print(_answer_text(answer, width))
    if answer.citations:
        print("\nCitations")
        for c in answer.citations:
            about = " · ".join(x for x in (c.author, _about(c)) if x)
            print(f"  [{c.number}] {c.title}{f' ({about})' if about else ''}")
            where = c.doc_id if c.source == c.doc_id else f"{c.doc_id}  {c.source}"
            print(f"      {where}  characters {c.start}-{c.end}")
    if passages or answer.abstained:
        print("\nPassages" if not answer.abstained else "\nNearest passages")
        _print_passages(answer.passages, width)


CHAT_HELP = "Ask about the indexed articles. /new starts a new conversation, /quit (or Ctrl-D) ends."


def cmd_chat(args: argparse.Namespace) -> int:
    """A conversation in the terminal: each question is read in the light of the earlier ones (never saved)."""
    from rag.errors import FilterError, QuestionError

    idx = _open(args)
    try:
        import readline  # noqa: F401  (line editing and recall within the session; nothing is written to disk)
    except ImportError:
        pass
    interactive = sys.stdin.isatty()
    print(CHAT_HELP)
    turns: list = []
    while True:
        try:
            line = input("\nyou> " if interactive else "")
        except EOFError:
            return 0
        except KeyboardInterrupt:
            print()
            return 0
        question = line.strip()
        if not question:
            continue
        if not interactive:
            print(f"\nyou> {question}")
        if question in ("/quit", "/exit", "/q"):
            return 0
        if question in ("/new", "/reset"):
            turns.clear()
            print("(new conversation)")
            continue
        if question.startswith("/"):
            print(f"unknown command {question.split()[0]}; {CHAT_HELP}")
            continue
        try:
            answer = idx.query(question, args.k, history=turns, **_filters(args))
        except (QuestionError, FilterError) as exc:
            print(f"error: {exc}")
            continue
        print()
        _print_answer(answer, min(100, max(60, _term_width())), passages=False)
        turns.append(answer)


_OPEN_MARK, _CLOSE_MARK = "\x01", "\x02"


def _bold(text: str) -> str:
    """Bold on a terminal; `**text**` when the output goes to a file or a pipe."""
    return f"\033[1m{text}\033[0m" if sys.stdout.isatty() else f"**{text}**"


def _answer_text(answer: Answer, width: int) -> str:
    """The quoted sentences wrapped to `width`, each citation's short answer in bold."""
    if answer.abstained:
        return textwrap.fill(answer.text, width, initial_indent="  ", subsequent_indent="  ")
    parts = []
    for c in answer.citations:
        quote = c.quote
        if c.answer_start is not None and c.answer_end is not None:
            a, b = c.answer_start - c.start, c.answer_end - c.start
            quote = f"{quote[:a]}{_OPEN_MARK}{quote[a:b]}{_CLOSE_MARK}{quote[b:]}"
        parts.append(f"{quote} [{c.number}]")
    wrapped = textwrap.fill(" ".join(parts), width, initial_indent="  ", subsequent_indent="  ")
    on, off = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("**", "**")
    return wrapped.replace(_OPEN_MARK, on).replace(_CLOSE_MARK, off)


def _print_passages(passages: Sequence[Passage], width: int) -> None:
    for i, p in enumerate(passages, start=1):
        also = f"  (also in {len(p.also_in)} more)" if p.also_in else ""
        about = f" ({_about(p)})" if _about(p) else ""
        print(f"  {i}. {p.score:.3f}  {p.title}{about} — {p.doc_id} [{p.start}:{p.end}]{also}")
        snippet = " ".join(p.text.split())
        snippet = snippet if len(snippet) <= 300 else snippet[:297] + "..."
        print(textwrap.fill(snippet, width, initial_indent="      ", subsequent_indent="      "))


def cmd_search(args: argparse.Namespace) -> int:
    idx = _open(args)
    passages = idx.search(args.question, args.k, **_filters(args))
    if args.json:
        print(json.dumps([p.to_dict() for p in passages], indent=2, ensure_ascii=False))
        return 0
    if not passages:
        print("no passages")
    _print_passages(passages, min(100, max(60, _term_width())))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rag.index import indexdir

    settings = _settings(args)
    version = indexdir.require_index(Path(settings.index_dir))
    manifest = indexdir.read_manifest(version)
    problems = indexdir.verify_files(version, manifest, deep=True)
    if problems:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        print(
            f"{settings.index_dir} is damaged: run `rag rebuild-index --index {settings.index_dir} --full`",
            file=sys.stderr,
        )
        return 6
    idx = _open(args)
    info = idx.info()
    print(
        f"ok: {settings.index_dir} ({info['version']}): {info.get('documents')} documents, {info.get('chunks')} chunks, "
        f"model {info['model']}, built {info['built_at']}; {len(manifest['files'])} files match their checksums"
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    idx = _open(args)
    info = idx.info()
    if args.json:
        info["documents_list"] = [d.__dict__ for d in idx.documents()]
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    for key in ("index_dir", "version", "model", "built_at", "documents", "chunks", "sentences"):
        print(f"{key:>10}: {info.get(key)}")
    for d in idx.documents():
        about = " · ".join(x for x in ((d.date or "")[:10], d.section, d.outlet) if x)
        print(f"  {d.chunks:4d} chunks  {d.id}  {d.title[:60]}{f'  ({about})' if about else ''}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from ui.app import serve
    except ImportError as exc:
        raise RagError(f"the web UI is not available ({exc}); run `make install`") from None
    settings = _settings(args)
    return serve(settings, host=args.host, port=args.port, share=args.share, mcp=args.mcp, auth=args.auth) or 0


def _term_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


def _add_index_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", help="index folder (default: index/ or RAG_INDEX_DIR)")
    # SUPPRESS: without the flag here, `rag --verbose <command>` keeps the value given before the command.
    p.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help="show the libraries' debug logging"
    )


def _add_build_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", help="file or folder of articles (default: seeds/ or RAG_SOURCE)")
    _add_index_flags(p)
    p.add_argument(
        "--model", help="sentence-transformers model name or local folder (default: all-MiniLM-L6-v2, bundled)"
    )
    p.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), help="embedding backend (default onnx-int8)")
    p.add_argument("--chunk-size", type=int, help="passage size in model tokens")
    p.add_argument("--chunk-overlap", type=int, help="overlap between passages in model tokens")
    p.add_argument("--store", choices=("faiss", "milvus"), help="vector store (default faiss)")
    p.add_argument("--milvus-uri", help="Milvus Lite file or server URI when --store milvus")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        help="run the embedding model on cpu (default), cuda (refused when PyTorch sees no GPU) or auto; "
        "the index is the same",
    )
    p.add_argument("--full", action="store_true", help="re-embed everything instead of reusing unchanged articles")
    p.add_argument("--json", action="store_true", help="print build statistics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_query_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", help="the question, in quotes")
    _add_filter_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON (Answer.to_dict())")


def _add_filter_flags(p: argparse.ArgumentParser) -> None:
    """The index, k, filters, retriever and reader: what `ask`, `search` and `chat` share."""
    _add_index_flags(p)
    p.add_argument("--k", type=int, help="passages to retrieve (default 5)")
    p.add_argument("--doc", action="append", help="only search this document id (repeatable)")
    p.add_argument("--source-filter", action="append", help="only search documents from this source path (repeatable)")
    p.add_argument("--since", help="only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY)")
    p.add_argument("--until", help="only articles published on or before this date (YYYY-MM-DD, YYYY-MM or YYYY)")
    p.add_argument("--section", action="append", help="only articles of this section, e.g. politics (repeatable)")
    p.add_argument("--outlet", action="append", help="only articles from this outlet (repeatable)")
    p.add_argument(
        "--sort",
        choices=("relevance", "newest"),
        default="relevance",
        help="order passages by relevance (default) or newest article first",
    )
    p.add_argument("--retriever", choices=("dense", "lexical", "hybrid"), help="retrieval method")
    p.add_argument(
        "--reader", help="default (the shipped reader), none (linear sentence model only), or a reader folder"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Search your articles and get quoted, cited answers.")
    parser.add_argument("--verbose", action="store_true", help="show the libraries' debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("rebuild-index", help="build or update the index from a folder of articles")
    _add_build_flags(p)
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("ask", help="answer a question with quoted sentences and citations")
    _add_query_flags(p)
    p.add_argument("--threshold", type=float, help="abstain below this confidence (0-1)")
    p.add_argument(
        "--history",
        help="JSON file ('-': standard input) of the conversation's earlier turns, oldest "
        'first: questions, or objects with "question" and "answer" (rag ask --json)',
    )
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="a conversation in the terminal: follow-up questions read with the earlier ones")
    _add_filter_flags(p)
    p.add_argument("--threshold", type=float, help="abstain below this confidence (0-1)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("search", help="list the passages that best match a query, with scores")
    _add_query_flags(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("check-index", help="verify the index files against their checksums")
    _add_index_flags(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("info", help="show the index status and its documents")
    _add_index_flags(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("serve", help="start the web chat UI")
    _add_index_flags(p)
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="create a public share link (off by default)")
    p.add_argument("--mcp", action="store_true", help="also expose ask and search as MCP tools")
    p.add_argument("--auth", default=None, help="user:password to require a login (or RAG_AUTH / RAG_AUTH_FILE)")
    p.add_argument("--reader", help="default (the shipped reader), none, or a reader folder")
    p.set_defaults(func=cmd_serve)

    # Commands that live beside their subject (evaluation, benchmarks) register themselves; their modules keep
    # heavy imports inside functions so that parsing stays fast.
    from importlib import import_module

    for name in COMMAND_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


COMMAND_MODULES = ("rag.evaluation.commands", "rag.evaluation.bench", "rag.cli.sources", "rag.cli.watch")


def configure_logging(verbose: bool) -> None:
    """Warnings only, unless --verbose: some libraries log at DEBUG level on their own.

    bm25s sets its logger to DEBUG when it is imported, and an import elsewhere (pymilvus) installs a root handler,
    so without this every BM25 build prints "DEBUG:bm25s:..." among the progress and counts a person wants to see.
    The level is set on the root handlers, which a library's own logger level cannot override.
    """
    import logging

    level = logging.DEBUG if verbose else logging.WARNING
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(levelname)s:%(name)s:%(message)s")
    root.setLevel(level)
    for handler in root.handlers:
        handler.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def rebuild_main(argv: Sequence[str] | None = None) -> int:
    """The `rebuild-index` console script: same as `rag rebuild-index`."""
    return main(["rebuild-index", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
