"""Whole passages or windows: the reader reading each of the best candidates' passages whole, against the
sentence-plus-neighbours windows the engine reads, on a news question set over an index of its articles.

    .venv/bin/python tools/passage_reading.py --index DIR --questions bench/news_calibration.jsonl [--split fit]

For each way the same questions are asked through `Index.query` (default settings, the shipped reader and its
calibration), and the script prints, per way: how often the first quote holds a gold answer, the short answer's
F1, how many model inputs were read per question and their mean length in tokens, and the latency p50/p95 (each
question timed once per way, the two ways alternating question by question so that load on the machine falls on
both alike). Whole passages are read with the model's input widened to 384 tokens (a 240-token passage, the
question and the markers), so that no passage is cut to its focus sentence.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WHOLE_LENGTH = 384


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--questions", default=str(ROOT / "bench" / "news_calibration.jsonl"))
    ap.add_argument("--split", choices=("fit", "report", "all"), default="fit")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--reader", default="default", help="default, or a calibrated reader folder")
    args = ap.parse_args()

    import rag.answer.engine as pipeline
    from rag import open_index
    from rag.answer.reading import read_candidates
    from rag.config import Settings
    from rag.evaluation.metrics import contains_answer, normalize_answer, percentile, short_answer_scores

    with open(args.questions, encoding="utf-8") as f:
        questions = [json.loads(line) for line in f if line.strip()]
    questions = [q for q in questions if q["answers"] and (args.split == "all" or q.get("split") == args.split)]
    if args.limit:
        questions = questions[: args.limit]
    idx = open_index(args.index, settings=Settings.load({"reader": args.reader}))
    reader = idx.reader
    if reader is None:
        print("the index's settings name no reader", file=sys.stderr)
        return 1
    windowed = reader.max_length
    inputs = {"windows": [], "whole passages": []}
    read_original = reader.read

    def counting(name, question, windows, texts=None):
        inputs[name].append([sum(len(s.text) for s in w.sentences) for w in windows])
        return read_original(question, windows, texts)

    def ask(name: str, question: str):
        whole = name == "whole passages"
        pipeline.read_candidates = partial(read_candidates, whole=whole)
        reader.max_length = WHOLE_LENGTH if whole else windowed
        reader.read = partial(counting, name)
        t0 = time.perf_counter()
        answer = idx.query(question, abstain_threshold=0.0)
        return answer, (time.perf_counter() - t0) * 1000

    idx.query(questions[0]["question"])  # warm
    results: dict[str, list] = {"windows": [], "whole passages": []}
    for n, q in enumerate(questions):
        order = ("windows", "whole passages") if n % 2 == 0 else ("whole passages", "windows")
        for name in order:
            answer, ms = ask(name, q["question"])
            first = answer.citations[0] if answer.citations else None
            golds = [normalize_answer(a) for a in q["answers"]]
            hit = bool(first and contains_answer(first.quote, golds))
            _, f1 = short_answer_scores(first.answer if first else None, q["answers"])
            results[name].append((hit, f1, ms))
    pipeline.read_candidates = read_candidates
    reader.max_length, reader.read = windowed, read_original
    idx.close()

    print(f"questions: {len(questions)} answerable of {args.questions} ({args.split})")
    print(f"{'':16s} {'answers':>8s} {'short F1':>9s} {'inputs':>7s} {'chars':>7s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for name, rows in results.items():
        hits, f1s, ms = zip(*rows)
        per_q = inputs[name]
        print(
            f"{name:16s} {np.mean(hits):8.3f} {np.mean(f1s):9.3f} {np.mean([len(x) for x in per_q]):7.1f} "
            f"{np.mean([np.mean(x) for x in per_q if x]):7.0f} {percentile(list(ms), 50):8.1f} "
            f"{percentile(list(ms), 95):8.1f}"
        )
    print(
        "chars: mean characters per model input; whole passages are read at up to "
        f"{WHOLE_LENGTH} tokens, windows at {windowed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
