"""`rag add`, `rag sources add|list|remove|update` and `rag watch`: parse, call rag.web.sources.WebIndex, print."""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from rag.cli.watch import print_new_answers, report_dict
from rag.errors import ConfigError, RagError

if TYPE_CHECKING:
    from rag.web.sources import UpdateReport, WebIndex

__all__ = ["register", "parse_every"]

_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)


def parse_every(text: str) -> float:
    """ "30s", "30m", "2h", "1d" or plain seconds -> seconds.

    Raises:
        ConfigError: not a duration, or under 1 second.
    """
    m = _EVERY.match(text or "")
    if not m:
        raise ConfigError(f"--every {text!r} is not a duration; write it as 30s, 30m, 2h or 1d")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2).lower()]
    if seconds < 1:
        raise ConfigError(f"--every {text!r} is under a second; pick 30s or more")
    return seconds


def _web(args: argparse.Namespace) -> WebIndex:
    from rag.config import Settings
    from rag.web.sources import WebIndex

    overrides: dict[str, Any] = {"index_dir": getattr(args, "index", None)}
    if getattr(args, "allow_private_urls", False):
        overrides["allow_private_urls"] = True
    settings = Settings.load(overrides)
    quiet = getattr(args, "json", False)
    return WebIndex(settings.index_dir, settings, log=None if quiet else (lambda msg: print(msg, file=sys.stderr)))


def _summary(report: UpdateReport) -> str:
    b = report.build
    built = (
        (
            f"; index {b.version}: {b.documents} documents ({b.added} added, {b.updated} updated), "
            f"built in {b.seconds:.1f} s"
        )
        if b
        else "; nothing published"
    )
    return (
        f"{report.count('added')} added, {report.count('changed')} changed, {report.count('unchanged')} unchanged, "
        f"{report.count('duplicate')} duplicates, {report.count('failed')} failed in {report.fetch_seconds:.1f} s "
        f"of fetching{built}"
    )


def _report_dict(report: UpdateReport) -> dict[str, Any]:
    return {
        "sources": [
            {
                "url": s.url,
                "status": s.status,
                "error": s.error,
                "listed": s.listed,
                "waiting": s.waiting,
                "pages": [p.__dict__ for p in s.pages],
            }
            for s in report.sources
        ],
        "build": report.build.to_dict() if report.build else None,
        "fetch_seconds": round(report.fetch_seconds, 3),
        "build_seconds": round(report.build_seconds, 3),
        "errors": report.errors,
        "watched": report_dict(report.watched),
    }


def cmd_add(args: argparse.Namespace) -> int:
    report = _web(args).add_urls(args.urls)
    if args.json:
        print(json.dumps(_report_dict(report), indent=2, ensure_ascii=False))
        return 0
    for s in report.sources:
        for p in s.pages:
            line = f"{p.status:>9}  {p.url}"
            print(line + (f"  ({p.error})" if p.error else f"  {p.title}" if p.title else ""))
    print(_summary(report))
    print_new_answers(report.watched)
    return 0 if not report.count("failed") else 9


def cmd_sources_add(args: argparse.Namespace) -> int:
    source = _web(args).add_source(args.url)
    via = f" (feed {source.feed_url})" if source.feed_url and source.feed_url != source.url else ""
    print(
        f"following {source.url}{via}: {source.kind}, {source.items} entries listed; `rag sources update` fetches them"
    )
    return 0


def cmd_sources_list(args: argparse.Namespace) -> int:
    sources = _web(args).sources()
    if args.json:
        print(json.dumps([s.__dict__ for s in sources], indent=2, ensure_ascii=False))
        return 0
    if not sources:
        print("no sources followed; add one with `rag sources add URL`")
        return 0
    for s in sources:
        print(
            f"{s.url}  [{s.kind}]  last check {s.last_check or 'never'}  status {s.status}  "
            f"new items {s.new_items}" + (f"\n    last error: {s.last_error}" if s.last_error else "")
        )
    return 0


def cmd_sources_remove(args: argparse.Namespace) -> int:
    source = _web(args).remove_source(args.url)
    print(f"no longer following {source.url}; its articles stay in the index")
    return 0


def cmd_sources_update(args: argparse.Namespace) -> int:
    report = _web(args).update(args.urls or None)
    if args.json:
        print(json.dumps(_report_dict(report), indent=2, ensure_ascii=False))
        return 0
    print(_summary(report))
    print_new_answers(report.watched)
    failed = [s for s in report.sources if s.status == "error"]
    return 9 if failed and len(failed) == len(report.sources) else 0


def cmd_watch(args: argparse.Namespace) -> int:
    every = parse_every(args.every)

    def on_term(signum, frame):  # SIGTERM stops like Ctrl-C: the update in progress publishes nothing
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    rounds = 0
    try:
        while True:
            started = time.monotonic()
            try:
                report = _web(args).update()  # a fresh fetcher each round: robots.txt is read again
                print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {_summary(report)}", flush=True)
                print_new_answers(report.watched)
            except RagError as exc:  # one bad round (a build running elsewhere, a missing folder) is reported
                print(f"error: {exc}", file=sys.stderr, flush=True)
            rounds += 1
            if args.max_updates and rounds >= args.max_updates:
                return 0
            time.sleep(max(0.0, every - (time.monotonic() - started)))
    except KeyboardInterrupt:
        print("watch stopped; the index keeps its last published version", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(sub: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--index", help="index folder (default: index/ or RAG_INDEX_DIR)")
        p.add_argument(
            "--allow-private-urls",
            action="store_true",
            help="also fetch loopback and private addresses (RAG_ALLOW_PRIVATE_URLS); off by default",
        )
        p.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help="show the libraries' debug logging"
        )

    p = sub.add_parser("add", help="fetch web pages by URL and add them to the index")
    p.add_argument("urls", nargs="+", metavar="URL", help="http:// or https:// address of an article page or PDF")
    common(p)
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("sources", help="feeds and sitemaps the index follows: add, list, remove, update")
    ssub = p.add_subparsers(dest="sources_command", required=True)
    q = ssub.add_parser("add", help="follow a feed, a sitemap, or a site whose page links to its feed")
    q.add_argument("url", metavar="URL")
    common(q)
    q.set_defaults(func=cmd_sources_add)
    q = ssub.add_parser("list", help="the sources with their last check, new items and last error")
    common(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_sources_list)
    q = ssub.add_parser("remove", help="stop following a source (its articles stay)")
    q.add_argument("url", metavar="URL")
    common(q)
    q.set_defaults(func=cmd_sources_remove)
    q = ssub.add_parser("update", help="fetch what is new in the sources and publish it as a new index version")
    q.add_argument("urls", nargs="*", metavar="URL", help="only these sources (default: all)")
    common(q)
    q.add_argument("--json", action="store_true", help="print the outcome as JSON")
    q.set_defaults(func=cmd_sources_update)

    p = sub.add_parser("watch", help="update the sources on a schedule until Ctrl-C or SIGTERM")
    p.add_argument("--every", default="30m", help="time between updates: 30s, 30m, 2h, 1d (default 30m)")
    p.add_argument("--max-updates", type=int, default=0, help="stop after this many updates (default: never)")
    common(p)
    p.set_defaults(func=cmd_watch)
