"""Write one source of a SQuAD-schema training file as a folder `rag eval squad` and the calibration tools read:
every paragraph becomes an article of its own (a Reddit post, a review), so the index has to find it among the
others.

    .venv/bin/python tools/source_folder.py ../shared/data/qa_train/train.json squadshifts_reddit /tmp/reddit \
        [--paragraphs 400] [--seed 13]

The paragraphs are a seeded sample; articles at even positions form the fit half and odd ones the holdout, as for
SQuAD 2.0 dev (`rag.evaluation.squad.split_of`). The source named should be one the reader was not fitted on
(tools/train_reader.py holds `squadshifts_reddit` out).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def write_folder(paragraphs: list[dict], prefix: str, out: Path) -> int:
    """Write SQuAD-schema paragraphs as articles `{prefix}_{n:04d}` with their questions (answers checked against
    the text); returns the number of questions written."""
    out.mkdir(parents=True, exist_ok=True)
    n_questions = 0
    with (
        open(out / "articles.jsonl", "w", encoding="utf-8") as fa,
        open(out / "questions.jsonl", "w", encoding="utf-8") as fq,
    ):
        for i, p in enumerate(paragraphs):
            title, context = f"{prefix}_{i:04d}", p["context"]
            fa.write(json.dumps({"title": title, "article_index": i, "paragraphs": [context]}) + "\n")
            for qa in p["qas"]:
                answers = [
                    a
                    for a in qa["answers"]
                    if context[a["answer_start"] : a["answer_start"] + len(a["text"])] == a["text"]
                ]
                if not answers:
                    continue
                fq.write(
                    json.dumps(
                        {
                            "id": qa["id"],
                            "title": title,
                            "article_index": i,
                            "paragraph_index": 0,
                            "question": qa["question"],
                            "answers": answers,
                            "is_impossible": False,
                        }
                    )
                    + "\n"
                )
                n_questions += 1
    return n_questions


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train", type=Path)
    ap.add_argument("source")
    ap.add_argument("out", type=Path)
    ap.add_argument("--paragraphs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)

    data = json.loads(args.train.read_text(encoding="utf-8"))["data"]
    paragraphs = [p for a in data if a.get("source") == args.source for p in a["paragraphs"] if p["qas"]]
    if not paragraphs:
        raise SystemExit(f"{args.train} has no paragraph of source {args.source!r}")
    picked = random.Random(args.seed).sample(paragraphs, min(args.paragraphs, len(paragraphs)))
    n_questions = write_folder(picked, args.source, args.out)
    print(f"{args.out}: {len(picked)} {args.source} paragraphs as articles, {n_questions} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
