"""What the JSON API adds to a question: POST /api/ask against Index.query, on one index, in one process.

The web app and its API are served in this process on 127.0.0.1 (the same server `rag serve` runs); each of the
30 questions of `rag bench` is asked both ways in every round, the order alternating from one question to the
next, with the query-vector cache cleared before each call, so neither way profits from the other. The HTTP time
is the client's: from sending the request to the parsed JSON, over a kept-alive connection.

    python bench/api_latency.py --index /tmp/bbcidx --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="index folder")
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked each way")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args()

    import socket

    import httpx

    from rag.config import Settings
    from rag.evaluation.bench.configs import QUESTIONS
    from rag.library.library import Library
    from ui.app import create_app, launch

    settings = Settings.load({"index_dir": args.index})
    library = Library(args.index, settings)
    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    served = launch(create_app(library), library, host="127.0.0.1", port=port, block=False)
    index = library.index
    cache = getattr(index.embedder, "_cache", None)
    times: dict[str, list[float]] = {"query": [], "http": []}
    gaps: list[float] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/", timeout=120) as client:

            def by_query(q: str) -> dict:
                return json.loads(json.dumps(index.query(q).to_dict()))

            def by_http(q: str) -> dict:
                r = client.post("ask", json={"question": q})
                r.raise_for_status()
                return r.json()

            for q in QUESTIONS[:3]:  # warm both paths (the model, the reader, the connection)
                by_query(q), by_http(q)
            for rnd in range(args.rounds):
                for i, q in enumerate(QUESTIONS):
                    ways = [("query", by_query), ("http", by_http)]
                    if (i + rnd) % 2:
                        ways.reverse()
                    got, took = {}, {}
                    for name, fn in ways:
                        if cache is not None:
                            cache.clear()
                        t0 = time.perf_counter()
                        got[name] = fn(q)
                        took[name] = (time.perf_counter() - t0) * 1000
                        times[name].append(took[name])
                    if got["query"] != got["http"]:
                        raise SystemExit(f"the two answers differ for {q!r}")
                    gaps.append(took["http"] - took["query"])
    finally:
        served.close()
    info = index.info()
    report = {
        "index": {"documents": info.get("documents"), "chunks": info.get("chunks"), "version": info.get("version")},
        "questions": len(QUESTIONS),
        "rounds": args.rounds,
        "loadavg": os.getloadavg(),
        **{
            f"{name}_ms": {"p50": round(statistics.median(v), 2), "p95": round(_pct(v, 0.95), 2), "n": len(v)}
            for name, v in times.items()
        },
        "http_minus_query_ms": {"median": round(statistics.median(gaps), 2), "p95": round(_pct(gaps, 0.95), 2)},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
