"""Articles from the web, measured on a local server: fetch-and-index throughput, and the incremental update time
for 10 new feed items on an index of the full BBC set.

Pages are BBC articles rendered as HTML (title, section, date, outlet in their meta tags) and served with an RSS
feed by the test suite's server on 127.0.0.1 (tests/web_server.py); nothing leaves the machine. The fetcher runs
with its politeness delay at 0 (a real site gets fetch_delay_s, 1 s by default, between requests, which then
bounds the rate at about 1 page/s per host whatever this machine does).

Usage:
    .venv/bin/python bench/web_bench.py [--pages 200] [--bbc ../shared/data/bbc_news/articles.jsonl]
                                        [--skip-bbc] [--fake] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BBC = ROOT.parent / "shared" / "data" / "bbc_news" / "articles.jsonl"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def _articles(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def _serve(server, records: list[dict], prefix: str) -> list[str]:
    """Serve each record as a page under /<prefix>/<section>/<n>.html and list them in /<prefix>.xml."""
    from web_server import article_html, rss

    items = []
    for n, rec in enumerate(records):
        section = rec.get("topic") or rec.get("section") or "news"
        date = f"2024-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}T08:00:00Z"
        path = f"/{prefix}/{section}/{n}.html"
        server.set(path, article_html(rec["title"], rec["text"].replace("\n\n", ". "), date, section, "BBC News"))
        items.append((path, rec["title"], date, section))
    server.set(f"/{prefix}.xml", rss(server.url(""), items), "application/rss+xml")
    return [server.url(p) for p, *_ in items]


def _embedder(fake: bool):
    if fake:
        from fakes import FakeEmbedder

        return FakeEmbedder()
    from rag.config import Settings
    from rag.index.embedding import make_embedder

    emb = make_embedder("all-MiniLM-L6-v2", Settings().backend)
    emb.embed_query("warm up")
    return emb


def _web(index: Path, embedder, **settings):
    from rag.config import Settings
    from rag.web.fetch import Fetcher
    from rag.web.sources import WebIndex

    s = Settings.load({"index_dir": str(index), "fetch_delay_s": 0.0, "max_items_per_update": 10_000, **settings})
    return WebIndex(index, s, embedder=embedder, fetcher=Fetcher(allowed=["127.0.0.1"], delay_s=0.0, timeout_s=10))


def throughput(server, records: list[dict], embedder, work: Path) -> dict:
    """Fetch N pages into a new index (one build): pages/s for fetching + extracting, then for the whole."""
    urls = _serve(server, records, "tp")
    web = _web(work / "tp-index", embedder)
    t0 = time.perf_counter()
    report = web.add_urls(urls)
    total = time.perf_counter() - t0
    n = report.count("added")
    return {
        "pages": len(urls),
        "added": n,
        "fetch_extract_s": round(report.fetch_seconds, 2),
        "build_s": round(report.build_seconds, 2),
        "total_s": round(total, 2),
        "fetch_extract_per_s": round(n / report.fetch_seconds, 1),
        "articles_per_s": round(n / total, 2),
    }


def incremental(server, bbc: list[dict], new: list[dict], embedder, work: Path) -> dict:
    """Build the full BBC index, follow a feed, then time `sources update` with 10 new items and with none."""
    from rag import build_index

    index = work / "bbc-index"
    t0 = time.perf_counter()
    stats = build_index(BBC_PATH, index, embedder=embedder)
    build_s = time.perf_counter() - t0
    _serve(server, [], "inc")  # an empty feed first: following it adds nothing
    web = _web(index, embedder)
    web.add_source(server.url("/inc.xml"))
    _serve(server, new, "inc")
    t0 = time.perf_counter()
    report = web.update()
    update_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = web.update()
    nothing_s = time.perf_counter() - t0
    return {
        "bbc_documents": stats.documents,
        "bbc_chunks": stats.chunks,
        "bbc_build_s": round(build_s, 1),
        "new_items": report.count("added"),
        "update_s": round(update_s, 2),
        "update_fetch_s": round(report.fetch_seconds, 2),
        "update_build_s": round(report.build_seconds, 2),
        "embedded_chunks": report.build.embedded_chunks,
        "documents_after": report.build.documents,
        "no_change_update_s": round(nothing_s, 2),
        "no_change_status": again.sources[0].status,
    }


BBC_PATH = BBC


def main(argv: list[str] | None = None) -> int:
    global BBC_PATH
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=200, help="pages fetched and indexed for the throughput figure")
    p.add_argument("--bbc", default=str(BBC), help="BBC articles.jsonl (2,225 articles)")
    p.add_argument("--skip-bbc", action="store_true", help="only the throughput figure")
    p.add_argument("--fake", action="store_true", help="the tests' hashing embedder instead of the model")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    BBC_PATH = Path(args.bbc)
    from web_server import WebServer

    records = _articles(BBC_PATH)
    embedder = _embedder(args.fake)
    out: dict = {"embedder": getattr(embedder, "name", "?"), "backend": getattr(embedder, "backend", "")}
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp, WebServer(lifetime_s=7200) as server:
        work = Path(tmp)
        out["throughput"] = throughput(server, records[: args.pages], embedder, work)
        print(
            f"fetch and index {out['throughput']['added']} pages: {out['throughput']['articles_per_s']} articles/s "
            f"({out['throughput']['fetch_extract_per_s']} pages/s fetched and extracted in "
            f"{out['throughput']['fetch_extract_s']} s, index built in {out['throughput']['build_s']} s)",
            flush=True,
        )
        if not args.skip_bbc:
            new = [
                {**r, "title": f"{r['title']} (update)", "text": f"Update {i}. {r['text']}"}
                for i, r in enumerate(records[-10:])
            ]
            out["incremental"] = inc = incremental(server, records, new, embedder, work)
            print(
                f"BBC index: {inc['bbc_documents']} articles, {inc['bbc_chunks']} passages, built in "
                f"{inc['bbc_build_s']} s",
                flush=True,
            )
            print(
                f"sources update with {inc['new_items']} new items: {inc['update_s']} s (fetch {inc['update_fetch_s']} s, "
                f"build {inc['update_build_s']} s, {inc['embedded_chunks']} passages embedded) -> "
                f"{inc['documents_after']} articles",
                flush=True,
            )
            print(
                f"sources update with nothing new: {inc['no_change_update_s']} s ({inc['no_change_status']})",
                flush=True,
            )
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
