"""Write, for a sample of training questions, the windows the engine itself would read besides the answer: the
negatives `tools/train_reader.py --group K --engine-groups FILE` trains the reader against.

    .venv/bin/python tools/engine_groups.py ../shared/data/qa_train/train.json --work /tmp/engine-groups \
        [--paragraphs 8000] [--top 6] [--seed 13]

A seeded sample of the training file's paragraphs (the held-out source left out) is written as a SQuAD-format
folder, one article per paragraph (tools/source_folder.py), and indexed with the default settings. Every question
is then asked as the engine asks it with the reader off: the pool is retrieved from all the sampled articles and
scored by the shipped linear model, and the windows of its best `--top` sentences (each with a neighbour a side,
`rag.answer.reading.windows_for`) are the windows the reader would be given. Those that overlap a gold answer, or hold
its text, are dropped; the rest, best first, are the question's negatives. Written to WORK/engine_groups.jsonl,
one line per question: `{"id", "question", "negatives": [text, ...], "answer_rank": r}`, where `answer_rank` is the
position of the first window holding a gold answer (-1: none of the `--top`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.config import Settings  # noqa: E402
from rag.evaluation.metrics import contains_answer, normalize_answer  # noqa: E402
from rag.evaluation.runs import build_collection  # noqa: E402
from rag.evaluation.squad import load_squad  # noqa: E402
from rag.index.embedding import make_embedder  # noqa: E402

from tools.calibrate_reader import pool_windows  # noqa: E402
from tools.reader_windows import HELD_OUT  # noqa: E402
from tools.source_folder import write_folder  # noqa: E402


def question_windows(idx, question: str, qvec, k: int, top: int):
    """The engine's windows for a question (reader off), best first, as (doc_id, start, end, text)."""
    _, _, windows, docs = pool_windows(idx, question, qvec, k, top)
    return [(w.doc_id, w.start, w.end, docs[w.doc_id].text[w.start : w.end]) for w in windows]


def split_windows(windows, doc_id: str, answers, golds):
    """(negatives, answer_rank): windows that neither overlap a gold span nor hold a gold text, and the position of
    the first window that overlaps one (-1 when none does)."""
    negatives, rank = [], -1
    for n, (d, s, e, text) in enumerate(windows):
        overlaps = d == doc_id and any(s < ae and as_ < e for as_, ae in answers)
        if overlaps and rank < 0:
            rank = n
        if not overlaps and not (golds and contains_answer(text, golds)):
            negatives.append(text)
    return negatives, rank


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--paragraphs", type=int, default=8000)
    ap.add_argument("--top", type=int, default=6, help="windows the engine would read per question")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)

    data = json.loads(args.train.read_text(encoding="utf-8"))["data"]
    paragraphs = [p for a in data if a.get("source") != HELD_OUT for p in a["paragraphs"] if p["qas"]]
    picked = random.Random(args.seed).sample(paragraphs, min(args.paragraphs, len(paragraphs)))
    folder = args.work / "folder"
    n = write_folder(picked, "p", folder)
    print(f"{folder}: {len(picked)} paragraphs as articles, {n} questions", flush=True)

    settings = Settings.load({"reader": "none"})
    emb = make_embedder(settings.model, settings.backend)
    squad = load_squad(folder)
    t0 = time.time()
    idx = build_collection(squad.articles, args.work, settings, emb, None)
    print(f"indexed in {time.time() - t0:.0f} s", flush=True)
    questions = [q for q in squad.questions if q.answerable]
    qvecs = emb.embed_documents([q.question for q in questions], 64)
    t0 = time.time()
    ranks = []
    out = args.work / "engine_groups.jsonl"
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i, (q, v) in enumerate(zip(questions, qvecs)):
            windows = question_windows(idx, q.question, v, settings.k, args.top)
            negatives, rank = split_windows(windows, q.doc_id, q.answers, [normalize_answer(t) for t in q.answer_texts])
            ranks.append(rank)
            f.write(
                json.dumps(
                    {"id": q.id, "question": q.question, "negatives": negatives, "answer_rank": rank},
                    ensure_ascii=False,
                )
                + "\n"
            )
            if i % 2000 == 0:
                print(f"  {i}/{len(questions)} in {time.time() - t0:.0f} s", flush=True)
    tmp.replace(out)
    idx.close()
    first = sum(r == 0 for r in ranks) / max(1, len(ranks))
    within = sum(r >= 0 for r in ranks) / max(1, len(ranks))
    print(
        f"{out}: {len(ranks)} questions; the answer's window is the engine's first for {first:.3f}, "
        f"among its {args.top} for {within:.3f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
