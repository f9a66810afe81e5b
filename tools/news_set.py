"""Assemble bench/news_calibration.jsonl from its hand-written parts, with each question's part (fit or report).

    .venv/bin/python tools/news_set.py PART.jsonl... --out bench/news_calibration.jsonl

A question's part follows its article (`doc_id`; an off-topic question, which has none, follows its id), by a hash,
so that no article gives questions to both parts and adding questions never moves old ones: 3 in 5 go to fit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

FIELDS = ("id", "kind", "split", "question", "doc_id", "answers", "sentence")


def part_of(q: dict) -> str:
    key = q.get("doc_id") or q["id"]
    return "fit" if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 5 < 3 else "report"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = []
    for path in args.parts:
        with open(path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f if line.strip()]
    rows = [{k: ({**q, "split": part_of(q)}).get(k) for k in FIELDS} for q in rows]
    with open(args.out, "w", encoding="utf-8") as f:
        for q in rows:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    print(Counter((q["kind"], q["split"]) for q in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
