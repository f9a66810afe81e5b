"""`rag questions add|list|remove|answers`, and the "New answers" lines a command prints after a build."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.watch.asking import WatchReport
    from rag.watch.store import SavedQuestion, WatchedAnswer

__all__ = ["register", "print_new_answers", "answer_line"]


def _settings(args: argparse.Namespace) -> Settings:
    from rag.config import Settings

    return Settings.load({"index_dir": getattr(args, "index", None)})


def answer_line(a: WatchedAnswer) -> str:
    """ "[3] When will the ferry resume? -> 9 December (Little Skerry ferry to resume..., 2026-11-30)"."""
    title = a.title if len(a.title) <= 60 else a.title[:57].rstrip() + "..."
    about = ", ".join(x for x in (title, (a.date or "")[:10]) if x)
    said = a.short_answer or a.quote
    said = said if len(said) <= 120 else said[:117].rstrip() + "..."
    return f"[{a.question_id}] {a.question} -> {said} ({about})"


def _print_answer(a: WatchedAnswer, out: TextIO, width: int = 100) -> None:
    c = a.citation
    print(f"  {answer_line(a)}", file=out)
    quote = textwrap.fill(f"\u201c{a.quote}\u201d", width, initial_indent="      ", subsequent_indent="       ")
    print(quote, file=out)
    where = a.url or c.get("source") or a.doc_id
    print(
        f"      {where}  characters {c.get('start')}-{c.get('end')}  (confidence {a.confidence:.2f}, answer "
        f"{a.id}, {a.recorded_at})",
        file=out,
    )


def print_new_answers(report: WatchReport | None, out: TextIO | None = None) -> None:
    """What a build's step found, after the command's summary: nothing when it found nothing."""
    out = out or sys.stdout
    if report is None:
        return
    if report.error:
        print(
            f"warning: the saved questions were not asked ({report.error}); `rag questions answers` asks them",
            file=sys.stderr,
        )
        return
    if report.answers:
        print("New answers:", file=out)
        for a in report.answers:
            _print_answer(a, out)
    out.flush()


def _baseline(index_dir: Path) -> tuple[str, dict[str, str]]:
    from rag.index import indexdir

    version = indexdir.require_index(index_dir)
    return version.name, indexdir.read_manifest(version).get("documents") or {}


def _unknown_values(index_dir: Path, question: SavedQuestion) -> list[str]:
    """Sections and outlets the question names that no indexed article has yet."""
    from rag.index import indexdir
    from rag.index.catalog import Catalog

    if not (question.sections or question.outlets):
        return []
    catalog = Catalog(indexdir.require_index(index_dir))
    try:
        out = []
        for name, given in (("section", question.sections), ("outlet", question.outlets)):
            known = {v.casefold() for v in catalog.values(name)}
            out += [f"{name} {v!r}" for v in given if v.casefold() not in known]
        return out
    finally:
        catalog.close()


def cmd_add(args: argparse.Namespace) -> int:
    from rag.watch.store import WatchStore

    settings = _settings(args)
    index_dir = Path(settings.index_dir)
    q = WatchStore(index_dir).add(
        args.question,
        min_confidence=args.min_confidence,
        section=args.section,
        outlet=args.outlet,
        max_chars=settings.max_question_chars,
        baseline=_baseline(index_dir),
    )
    extra = [f"section {', '.join(q.sections)}"] if q.sections else []
    extra += [f"outlet {', '.join(q.outlets)}"] if q.outlets else []
    extra += [f"min confidence {q.min_confidence:g}"] if q.min_confidence is not None else []
    filters = f" ({'; '.join(extra)})" if extra else ""
    print(f"saved [{q.id}] {q.question}{filters}; every build asks it against the articles it adds or changes")
    for value in _unknown_values(index_dir, q):
        print(f"note: no indexed article has {value} yet; the question waits for one", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rag.watch.store import WatchStore

    store = WatchStore(_settings(args).index_dir)
    questions = store.questions()
    if args.json:
        print(json.dumps([q.to_dict() for q in questions], indent=2, ensure_ascii=False))
        return 0
    if not questions:
        print('no saved questions; save one with `rag questions add "QUESTION"`')
        return 0
    counts: dict[int, int] = {}
    for a in store.answers():
        counts[a.question_id] = counts.get(a.question_id, 0) + 1
    for q in questions:
        about = [f"section {', '.join(q.sections)}"] if q.sections else []
        about += [f"outlet {', '.join(q.outlets)}"] if q.outlets else []
        about += [f"min confidence {q.min_confidence:g}"] if q.min_confidence is not None else []
        about.append(f"{counts.get(q.id, 0)} answer(s)")
        print(f"[{q.id}] {q.question}  ({'; '.join(about)}; saved {q.added_at})")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from rag.watch.store import WatchStore

    q = WatchStore(_settings(args).index_dir).remove(args.id)
    print(f"removed [{q.id}] {q.question} and its recorded answers")
    return 0


def cmd_answers(args: argparse.Namespace) -> int:
    from rag.watch.asking import ask_new_articles, pending
    from rag.watch.store import WatchStore

    settings = _settings(args)
    store = WatchStore(settings.index_dir)
    if pending(settings.index_dir):
        # A build whose process stopped before its step (killed, or crashed) left these to ask.
        if not args.json:
            print("asking the saved questions against the articles of the last build (not asked yet)", file=sys.stderr)
        report = ask_new_articles(settings.index_dir, settings)
        if report.skipped and not args.json:
            print(f"note: {report.skipped}", file=sys.stderr)
    answers = store.answers(unseen=args.new)
    if args.new and answers:
        store.mark_seen(answers[-1].id)
    if args.json:
        print(json.dumps([a.to_dict() for a in answers], indent=2, ensure_ascii=False))
        return 0
    if not answers:
        print("no new answers" if args.new else "no answers recorded yet")
        return 0
    for a in answers:
        _print_answer(a, sys.stdout)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--index", help="index folder (default: index/ or RAG_INDEX_DIR)")
        p.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help="show the libraries' debug logging"
        )

    p = sub.add_parser("questions", help="watched questions: asked again whenever a build adds or changes articles")
    qsub = p.add_subparsers(dest="questions_command", required=True)
    q = qsub.add_parser("add", help="save a question; each later build asks it against its new and changed articles")
    q.add_argument("question", help="the question, in quotes")
    q.add_argument(
        "--min-confidence",
        help="record answers of at least this confidence (0-1; default: the index's abstain threshold)",
    )
    q.add_argument("--section", action="append", help="only articles of this section (repeatable)")
    q.add_argument("--outlet", action="append", help="only articles from this outlet (repeatable)")
    common(q)
    q.set_defaults(func=cmd_add)
    q = qsub.add_parser("list", help="the saved questions with their filters and answer counts")
    common(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)
    q = qsub.add_parser("remove", help="forget a saved question and its answers")
    q.add_argument("id", metavar="ID", help="the question's number, as `rag questions list` shows it")
    common(q)
    q.set_defaults(func=cmd_remove)
    q = qsub.add_parser(
        "answers",
        help="the answers new articles gave the saved questions (asks first what a stopped build left unasked)",
    )
    q.add_argument(
        "--new", action="store_true", help="only those not shown by --new (or the web app) before, then mark them seen"
    )
    q.add_argument("--json", action="store_true", help="print them as JSON")
    common(q)
    q.set_defaults(func=cmd_answers)


def report_dict(report: WatchReport | None) -> dict[str, Any] | None:
    """A build step's answers for a command's --json output."""
    if report is None:
        return None
    return {
        "answers": [a.to_dict() for a in report.answers],
        "error": report.error,
        "version": report.version,
        "articles": report.articles,
        "questions": report.questions,
        "screened": report.screened,
        "asked": report.asked,
        "seconds": round(report.seconds, 3),
    }
