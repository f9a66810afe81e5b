"""Retrieval hit@5 on the SQuAD 2.0 dev articles for each embedding backend, in one process.

A question counts as a hit when one of the 5 passages retrieved for it comes from the question's own paragraph
and contains one of its gold answers. Only answerable questions count. Every backend builds its own index of
the 690 paragraphs (one document each), so the figure covers document and query vectors alike.

Usage:
    .venv/bin/python bench/squad_hit5.py [--backends torch,onnx,onnx-int8] [--limit N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "data" / "squad2_dev"


def paragraphs_jsonl(folder: Path, out: Path) -> None:
    """One JSON line per paragraph, id "<article_index>/<paragraph_index>"."""
    with open(out, "w", encoding="utf-8") as f:
        for line in open(folder / "articles.jsonl", encoding="utf-8"):
            art = json.loads(line)
            for i, text in enumerate(art["paragraphs"]):
                rec = {"id": f"{art['article_index']}/{i}", "title": f"{art['title']} ¶{i}", "text": text}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def questions(folder: Path, limit: int | None) -> list[dict]:
    qs = [json.loads(line) for line in open(folder / "questions.jsonl", encoding="utf-8")]
    qs = [q for q in qs if not q["is_impossible"]]
    if limit:
        step = max(1, len(qs) // limit)  # spread over every article rather than the first few
        qs = qs[::step][:limit]
    return qs


def hit_at_k(backend: str, source: Path, qs: list[dict], k: int = 5, retriever: str = "dense") -> dict:
    from rag import build_index, open_index
    from rag.config import Settings
    from rag.index.embedding import make_embedder

    # Dense retrieval alone by default: BM25 in a hybrid would mask differences between the embeddings.
    settings = Settings.load({"backend": backend, "sentence_vectors": False, "retriever": retriever})
    embedder = make_embedder(settings.model, backend)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_index(source, Path(tmp) / "index", settings, embedder=embedder, full=True)
        built = time.perf_counter() - t0
        idx = open_index(Path(tmp) / "index", settings=settings, embedder=embedder)
        hits = 0
        t0 = time.perf_counter()
        for q in qs:
            gold = f"{q['article_index']}/{q['paragraph_index']}"
            answers = {a["text"] for a in q["answers"]}
            passages = idx.search(q["question"], k)
            hits += any(p.doc_id == gold and any(a in p.text for a in answers) for p in passages)
        asked = time.perf_counter() - t0
        idx.close()
    return {
        "backend": backend,
        "retriever": retriever,
        "chunk_size": settings.chunk_size,
        "questions": len(qs),
        "hit_at_5": round(100.0 * hits / len(qs), 2),
        "build_s": round(built, 1),
        "query_s": round(asked, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--limit", type=int, default=None, help="answerable questions to ask (default all 3,200)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--retriever", default="dense", choices=("dense", "lexical", "hybrid"))
    args = parser.parse_args(argv)
    if not SQUAD.exists():
        print(f"{SQUAD} is absent (the shared data set sits beside the repo as ../shared)", file=sys.stderr)
        return 1
    qs = questions(SQUAD, args.limit)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "squad_paragraphs.jsonl"
        paragraphs_jsonl(SQUAD, source)
        for backend in args.backends.split(","):
            results.append(hit_at_k(backend.strip(), source, qs, retriever=args.retriever))
            print(json.dumps(results[-1]), flush=True)
    base = results[0]["hit_at_5"]
    for r in results:
        r["delta_points"] = round(r["hit_at_5"] - base, 2)
    print(f"{'backend':<10} {'hit@5':>7} {'vs ' + results[0]['backend']:>10}")
    for r in results:
        print(f"{r['backend']:<10} {r['hit_at_5']:>7.2f} {r['delta_points']:>+10.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
