"""How many windows the reader reads, against what that finds and what it costs, on a news question set.

Each rule is asked over the same questions, the rules taking turns round after round (the query-vector cache emptied
before each), and the table gives per rule: windows read per question, the share that read more, the first quote
holding the answer, short-answer F1, abstention AUROC and the latency p50 / p95 (the median over rounds).

A rule is `C` (read the windows of the best C candidates), `C+M<BAR` (and M more when the reader's best margin over
those is under BAR: `rag.answer.reading.read_candidates`), optionally followed by `@LINEAR/READER`, the blend's two
coefficients (default: the reader folder's calibration). The confidence model is the reader folder's for every rule.

Usage:
    .venv/bin/python bench/reading_trade.py --index DIR [--reader default|FOLDER] \
        [--questions bench/news_calibration.jsonl --split fit] --rule 4 --rule 8@0.40/0.31 --rule '4+4<2.5' [--rounds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

_RULE = re.compile(r"^(\d+)(?:\+(\d+)<(-?[\d.]+))?(?:@(-?[\d.]+)/(-?[\d.]+))?$")


def parse_rule(text: str) -> dict:
    m = _RULE.match(text.strip())
    if not m:
        raise SystemExit(f"--rule {text!r}: expected C, C+M<BAR, optionally @LINEAR/READER (e.g. 4+4<2.5@0.4/0.3)")
    count, more, bar, linear, reader = m.groups()
    return {
        "name": text,
        "candidates": int(count),
        "more": int(more or 0),
        "more_below": float(bar or 0.0),
        **({"linear": float(linear), "reader": float(reader)} if linear is not None else {}),
    }


class _Counting:
    """The reader, counting the windows it is given."""

    def __init__(self, reader):
        self.reader, self.windows, self.calls = reader, 0, 0
        self.folder = reader.folder

    def read(self, question, windows, texts=None):
        self.windows += len(windows)
        self.calls += 1
        return self.reader.read(question, windows, texts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--reader", default="default")
    p.add_argument("--questions", type=Path, default=ROOT / "bench" / "news_calibration.jsonl")
    p.add_argument("--split", choices=("fit", "report", "all"), default="fit")
    p.add_argument("--rule", action="append", required=True)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="ask only the first N questions (a quick check)")
    p.add_argument("--json", help="also write the table here")
    args = p.parse_args(argv)

    from news_eval import ask_all, load_questions, metrics

    import rag
    from rag.config import Settings

    rules = [parse_rule(r) for r in args.rule]
    idx = rag.open_index(args.index, settings=Settings.load({"reader": args.reader}))
    if idx.reader is None or idx.blend is None:
        raise SystemExit("the index has no reader to measure (--reader none?)")
    calibrated = idx.blend
    counting = _Counting(idx.reader)
    idx.reader = counting
    questions = [q for q in load_questions(args.questions) if args.split == "all" or q.get("split") == args.split]
    questions = questions[: args.limit]
    rows: dict[str, dict] = {r["name"]: {"p50": [], "p95": []} for r in rules}
    try:
        for round_no in range(args.rounds):
            for rule in rules if round_no % 2 == 0 else list(reversed(rules)):
                fields = {k: v for k, v in rule.items() if k != "name"}
                idx.blend = dataclasses.replace(calibrated, **fields)
                idx.embedder._cache.clear()
                counting.windows = counting.calls = 0
                outcomes = ask_all(idx, questions, idx.settings.abstain_threshold)
                m = metrics(outcomes)
                row = rows[rule["name"]]
                row["p50"].append(m["latency_p50_ms"])
                row["p95"].append(m["latency_p95_ms"])
                n = max(1, len(outcomes))
                row.update(
                    {
                        "questions": len(outcomes),
                        "windows_per_question": counting.windows / n,
                        # every question is read once; a second call is a question that read more
                        "read_more": max(0, counting.calls - len(outcomes)) / n,
                        "first_quote": m["first_quote_answers"],
                        "short_f1": m["short_f1"],
                        "auroc": m["auroc"],
                        "answered": m["answered"],
                        "abstain_unanswerable": m["abstain_unanswerable"],
                    }
                )
    finally:
        idx.close()
    print(
        f"{'rule':>16s}  windows  read more  first quote  short F1  AUROC  answered  p50 ms  p95 ms  "
        f"({len(questions)} questions, {args.rounds} rounds)"
    )
    table = []
    for rule in rules:
        row = rows[rule["name"]]
        row["p50_ms"], row["p95_ms"] = statistics.median(row.pop("p50")), statistics.median(row.pop("p95"))
        table.append({"rule": rule["name"], **row})
        print(
            f"{rule['name']:>16s}  {row['windows_per_question']:7.2f}  {row['read_more']:9.2f}  "
            f"{row['first_quote']:11.3f}  {row['short_f1']:8.3f}  {row['auroc']:5.3f}  {row['answered']:8.3f}  "
            f"{row['p50_ms']:6.1f}  {row['p95_ms']:6.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
