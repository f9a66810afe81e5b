"""Write the reader's training set: SQuAD 1.1 train and qa_train in one SQuAD-format file.

    .venv/bin/python tools/training_set.py ../shared/data/squad1_train/train.json ../shared/data/qa_train/train.json \
        --out /tmp/v2/train.json

SQuAD 1.1 train's articles are marked with the source "squad1_train"; qa_train's keep their own sources (its
`squadshifts_reddit` stays in the file and `tools/train_reader.py` holds it out). The 15 questions of the three train
paragraphs that nearly copy paragraphs of the SQuAD 2.0 dev articles (named in squad1_train/SOURCES.md) are dropped.
The output is byte-for-byte the same for the same inputs, so its sha256 in a reader's manifest names it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

NEAR_COPIES = ("s11tr_111_014_", "s11tr_111_013_", "s11tr_343_001_")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("squad1", type=Path)
    ap.add_argument("qa_train", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    squad1 = json.loads(args.squad1.read_text(encoding="utf-8"))
    other = json.loads(args.qa_train.read_text(encoding="utf-8"))
    data, kept, dropped = [], 0, 0
    for article in squad1["data"]:
        paragraphs = []
        for p in article["paragraphs"]:
            qas = [q for q in p["qas"] if not q["id"].startswith(NEAR_COPIES)]
            dropped += len(p["qas"]) - len(qas)
            if qas:
                paragraphs.append({"context": p["context"], "qas": qas})
                kept += len(qas)
        data.append({"title": article["title"], "source": "squad1_train", "paragraphs": paragraphs})
    sources = Counter()
    for article in other["data"]:
        for p in article["paragraphs"]:
            sources[article.get("source", "")] += len(p["qas"])
    with open(args.out, "w") as f:
        json.dump({"version": "merged", "data": data + other["data"]}, f)
    print(f"squad1_train: {kept} questions ({dropped} dropped); qa_train: {dict(sources)} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
