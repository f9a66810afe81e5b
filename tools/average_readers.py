"""Average the weights of readers fitted from one starting point, then report and export the average like a fit.

    .venv/bin/python tools/average_readers.py ../shared/data/qa_train/train.json --work /tmp/reader-avg \
        /tmp/reader2 /tmp/reader3 /tmp/reader6 --export rag/data/reader

Each positional folder after the training file is a `tools/train_reader.py --work` folder (its `model/` and
`fit.json`). Fits that start from the same weights and differ in their data draw and loss stay close enough in
weight space for their mean to be a reader of its own (a "model soup"), at the cost of one. The average is written
to `WORK/model`, measured on the same held-out windows as a fit (span F1, no-answer AUROC, group choice), and with
`--export` written as int8 ONNX with a manifest that holds every component's own record (settings, figures, and the
fit it started from), so each can be rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.reader_export import init_record, save_fit  # noqa: E402
from tools.reader_scoring import evaluate, group_choice, held_out_rows  # noqa: E402
from tools.reader_windows import HELD_OUT, load_paragraphs  # noqa: E402


def average_state(models) -> dict:
    """The element-wise mean of several state dicts with the same names and shapes.

    Raises:
        SystemExit: the models differ in a tensor's name or shape (they are not the same architecture).
    """
    states = [m.state_dict() for m in models]
    names = list(states[0])
    for n, state in enumerate(states[1:], 1):
        if list(state) != names or any(state[k].shape != states[0][k].shape for k in names):
            raise SystemExit(
                f"reader {n + 1} is not the same model as the first (names or shapes differ); "
                "average only fits of one architecture"
            )
    return {k: (sum(s[k].double() for s in states) / len(states)).to(states[0][k].dtype) for k in names}


def component_record(work: Path) -> dict:
    """A fit's own record (fit.json) and that of the fit it started from, when there is one."""
    fit = json.loads((work / "fit.json").read_text(encoding="utf-8"))
    return {"work": str(work), **fit, **init_record(fit.get("settings", {}).get("init"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train", type=Path, help="the training file the fits read (its hash goes in the manifest)")
    ap.add_argument("fits", type=Path, nargs="+", help="tools/train_reader.py --work folders")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--export", type=Path, default=None, help="write the int8 ONNX reader here")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if len(args.fits) < 2:
        raise SystemExit("give at least two fit folders to average")
    for work in args.fits:
        if not (work / "model").is_dir() or not (work / "fit.json").is_file():
            raise SystemExit(f"{work} holds no model/ and fit.json; pass folders that tools/train_reader.py fitted")

    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    records = [component_record(w) for w in args.fits]
    first = records[0]["settings"]
    keys = ("seed", "max_length", "max_question", "eval_questions")
    for rec in records[1:]:
        if any(rec["settings"].get(k) != first.get(k) for k in keys):
            raise SystemExit(
                f"{rec['work']} was fitted with other {', '.join(keys)} than {records[0]['work']}; "
                "its held-out windows and inputs differ"
            )

    models = [AutoModelForQuestionAnswering.from_pretrained(w / "model") for w in args.fits]
    model = models[0]
    model.load_state_dict(average_state(models))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(args.fits[0] / "model")

    eval_rows, group_rows, ranges = held_out_rows(
        tokenizer,
        load_paragraphs(args.train),
        first["seed"],
        first["eval_questions"],
        first["max_length"],
        first["max_question"],
    )
    f1, auc = evaluate(model, tokenizer, eval_rows, None, torch)
    choice = group_choice(model, group_rows, ranges, torch)
    report = {
        "average_of": [r["work"] for r in records],
        "held_out": {
            "source": HELD_OUT,
            "windows": len(eval_rows),
            "span_f1": round(f1, 4),
            "auroc": round(auc, 4),
            "groups": len(ranges),
            "choice_at_1": round(choice, 4),
        },
        "components": {r["work"]: r["report"]["held_out"] for r in records},
    }
    print(json.dumps(report, indent=2), flush=True)

    settings = {k: first.get(k) for k in keys}
    save_fit(
        args.work,
        model,
        tokenizer,
        {"report": report, "settings": settings},
        args.train,
        args.export,
        {"components": records},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
