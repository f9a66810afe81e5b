"""A second phase after the reader's pass: the no-answer score trained window by window, from the pass's complete
full-precision state (tools/reader_state/), into a state folder of its own (tools/reader_phase_state/).

    .venv/bin/python tools/reader_phase.py fit /tmp/pass/train.json --squad2 ../shared/data/squad2_dev \
        --work /tmp/phase --minutes 60 [--threads 2]
    # its int8 reader, and the held-out figures beside the shipped reader's
    .venv/bin/python tools/reader_pass.py export /tmp/pass/train.json --squad2 ../shared/data/squad2_dev \
        --work /tmp/phase --state tools/reader_phase_state --out /tmp/reader-phase
    .venv/bin/python tools/reader_pass.py held-out /tmp/pass/train.json --squad2 ../shared/data/squad2_dev \
        --work /tmp/phase --reader /tmp/reader-phase --reader rag/data/reader

Why: the pass's reader finds the answer window within a question's group better than the shipped one, but its
no-answer score alone ranks the held-out windows the wrong way (AUROC 0.36 against the shipped reader's 0.89), so its
margin says less about whether a window holds an answer at all, which is what the engine asks of it across passages
of different articles. The pass trained each window with its own answer-or-[CLS] loss, but beside a loss shared
across the group's context tokens and with negatives that never touch the answer's sentences; the shipped reader's
best part was fitted on single windows alone. This phase trains on single windows (`make_examples`: the answer's
window, a window of the same paragraph clear of the answer, neighbours included, and one of another article) and the
TRAIN_FOLD unanswerable windows of the pass, each with its own loss only, at a low learning rate that decays to 0.

The data is drawn from the seed alone (paragraphs shuffled, then taken until `--windows` are drawn; the held-out
source left out) and its hash is checked at every resume. The state folder is laid out as the pass's
(tools/pass_state.py) and its state.json names the pass state it started from, so `reader_pass.py export --state`
reads it; the optimizer's moments stay in the work folder, and a run that resumes without them warms up again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.pass_data import TRAIN_FOLD, unanswerable_groups  # noqa: E402
from tools.pass_state import FROZEN, load_state  # noqa: E402
from tools.reader_encoding import batches, encode, split_logits  # noqa: E402
from tools.reader_pass import (  # noqa: E402
    STATE_DIR,
    _model,
    adamw,
    fit_arguments,
    held_out_report,
    keep,
    lock_state,
    resume_optimizer,
    run_steps,
)
from tools.reader_scoring import held_out_rows  # noqa: E402
from tools.reader_windows import HELD_OUT, load_paragraphs, make_examples, sha256  # noqa: E402

PHASE_DIR = ROOT / "tools" / "reader_phase_state"


def phase_rows(
    paragraphs, squad2: Path, tokenizer, seed: int, windows: int, cross: float, max_length: int, max_question: int
):
    """The phase's encoded windows: `make_examples` over the training paragraphs (the held-out source left out) in
    an order drawn from `seed`, until `windows` are drawn, then every window of the TRAIN_FOLD unanswerable groups."""
    train = [p for p in paragraphs if p[0] != HELD_OUT]
    rng = random.Random(seed)
    order = list(range(len(train)))
    rng.shuffle(order)
    examples, cache = [], {}
    for start in range(0, len(order), 200):
        if len(examples) >= windows:
            break
        examples.extend(make_examples([train[i] for i in order[start : start + 200]], rng, cross, cache))
    examples = examples[:windows]
    u_groups, _ = unanswerable_groups(squad2, 4)
    examples.extend(ex for group in u_groups for ex in group)
    return encode(tokenizer, examples, max_length, max_question)


def rows_digest(rows) -> str:
    h = hashlib.sha256()
    for ids, types, s, e in rows:
        h.update(json.dumps([ids, types, s, e]).encode())
    return h.hexdigest()


def fit(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    random.seed(args.seed)
    model, tokenizer = _model(torch, args.seed, device)
    folder = args.state
    folder.mkdir(parents=True, exist_ok=True)
    lock = lock_state(folder)  # held for the whole fit
    t0 = time.time()
    paragraphs = load_paragraphs(args.train)
    rows = phase_rows(
        paragraphs, args.squad2, tokenizer, args.seed, args.windows, args.cross, args.max_length, args.max_question
    )
    digest = rows_digest(rows)
    steps = batches(rows, args.batch_size, random.Random(args.seed + 2))
    answers = sum(1 for r in rows if r[2] > 0)
    print(
        f"phase data: {len(rows)} windows ({answers} with the answer), {len(steps)} steps, "
        f"{sum(len(r[0]) for r in rows) / len(rows):.0f} tokens mean, in {time.time() - t0:.0f} s",
        flush=True,
    )
    opt = adamw(model, args.lr, torch)
    ckpt = args.work / f"checkpoint-{folder.name}.pt"
    warm_from = 0
    if (folder / "state.json").exists():
        state = load_state(folder, model)
        if state["data_sha256"] != digest or state["train_sha256"] != sha256(args.train):
            raise SystemExit(
                f"the phase data built here differs from the one {folder} was fitted on: same train file, "
                "code and settings?"
            )
        warm_from = resume_optimizer(ckpt, model, opt, state, torch, device)
        args.lr = state["schedule"]["lr"]
        print(f"resumed at step {state['step']} of {state['schedule']['steps']}", flush=True)
    else:
        start = load_state(args.start, model)
        if not start.get("complete"):
            raise SystemExit(f"{args.start} is not a complete pass (state.json `complete`): finish the pass first")
        state = {
            "about": "state of the second phase of the reader's fit; see tools/reader_phase.py",
            "phase": "no-answer, window by window",
            "from": {
                "state": str(args.start.relative_to(ROOT)) if args.start.is_relative_to(ROOT) else str(args.start),
                "step": start["step"],
                "weights_sha256": start["weights_sha256"],
            },
            "train_file": args.train.name,
            "train_sha256": sha256(args.train),
            "data_sha256": digest,
            "settings": {
                "seed": args.seed,
                "windows": len(rows),
                "cross": args.cross,
                "max_length": args.max_length,
                "max_question": args.max_question,
                "batch_size": args.batch_size,
                "frozen": list(FROZEN),
                "train_fold": list(TRAIN_FOLD),
                "loss": "each window's own answer-or-[CLS] cross-entropy",
            },
            "schedule": {
                "steps": len(steps),
                "lr": args.lr,
                "warmup": max(1, int(0.03 * len(steps))),
                "decay": "linear to 0 at the end of the phase",
            },
            "step": 0,
            "windows_seen": 0,
            "tokens_seen": 0,
            "seconds": 0.0,
            "runs": [],
            "saves": [],
        }
    eval_rows, eval_group_rows, eval_ranges = held_out_rows(
        tokenizer, paragraphs, 13, 600, args.max_length, args.max_question
    )
    del paragraphs
    if "held_out_start" not in state:
        state["held_out_start"] = held_out_report(
            model, eval_rows, eval_group_rows, eval_ranges, torch, 400, parts=True
        )
        print(f"held out at the start: {state['held_out_start']}", flush=True)
    planned = state["schedule"]["steps"]
    run = {
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "from_step": state["step"],
        "device": device,
        "threads": torch.get_num_threads(),
    }

    def save(final: bool) -> None:
        report = held_out_report(
            model, eval_rows, eval_group_rows, eval_ranges, torch, 0 if final else 400, parts=final
        )
        loss_avg = state.get("loss_avg")
        state["saves"].append(
            {
                "step": state["step"],
                "loss": None if loss_avg is None else round(loss_avg, 4),
                "held_out": report,
                "full": final,
            }
        )
        keep(ckpt, folder, model, opt, state, torch)
        print(f"\nsaved at step {state['step']}/{planned}: loss {loss_avg}, held out {report}", flush=True)

    def step_loss(step: int):
        idx = steps[step]
        ids, types, mask, s, e, sl, el = split_logits(model, rows, idx, torch, args.parts, device)
        sl = sl.masked_fill(mask == 0, -1e4)
        el = el.masked_fill(mask == 0, -1e4)
        state["windows_seen"] += len(idx)
        loss = (torch.nn.functional.cross_entropy(sl, s) + torch.nn.functional.cross_entropy(el, e)) / 2
        return loss, int(mask.sum())

    run_steps(model, opt, state, run, step_loss, save, torch, args, warm_from, planned)
    lock.close()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("fit",))
    ap.add_argument("train", type=Path, help="the training file written by tools/training_set.py")
    ap.add_argument(
        "--squad2", type=Path, required=True, help="the SQuAD 2.0 dev folder (its TRAIN_FOLD unanswerables)"
    )
    ap.add_argument("--work", type=Path, required=True, help="a scratch folder: the optimizer's checkpoint")
    ap.add_argument("--start", type=Path, default=STATE_DIR, help="the complete pass's state folder it starts from")
    ap.add_argument("--state", type=Path, default=PHASE_DIR, help="the phase's state folder")
    ap.add_argument("--seed", type=int, default=37)
    ap.add_argument("--windows", type=int, default=44000, help="single windows drawn (besides the unanswerables)")
    ap.add_argument("--cross", type=float, default=0.5, help="share of questions given another article's window")
    fit_arguments(ap, lr=3e-5, minutes=60.0)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    return fit(args)


if __name__ == "__main__":
    raise SystemExit(main())
