"""What a reader in training reads and how it is scored: the best span of a window, every row read in eval mode, the
shared loss over a question's windows, and the held-out figures every fit reports."""

from __future__ import annotations

import random

import numpy as np

from tools.reader_encoding import collate, encode, encode_groups
from tools.reader_windows import HELD_OUT, make_examples, make_groups


def shared_loss(start_logits, end_logits, types, mask, s, e, torch, heads=None):
    """Cross-entropy of the gold start and end over the context tokens of all windows of each group in the batch.

    A group is a run of rows from one of `heads` (the rows that start a group; default: every row with an answer,
    as make_groups puts the answer window first) to the next; a group whose first row has no answer (an unanswerable
    question) has no gold span to normalize and adds nothing."""
    ctx = (types == 1) & (mask == 1)
    sl = start_logits.masked_fill(~ctx, -1e4)
    el = end_logits.masked_fill(~ctx, -1e4)
    if heads is None:
        heads = [r for r in range(len(s)) if int(s[r]) > 0]
    bounds = [*heads, len(s)]
    losses = []
    for a, b in zip(bounds, bounds[1:]):
        if int(s[a]) == 0:
            continue
        gold_s = torch.tensor([int(s[a])])
        gold_e = torch.tensor([int(e[a])])
        losses.append(
            torch.nn.functional.cross_entropy(sl[a:b].reshape(1, -1), gold_s)
            + torch.nn.functional.cross_entropy(el[a:b].reshape(1, -1), gold_e)
        )
    return torch.stack(losses).mean() / 2 if losses else start_logits.sum() * 0.0


def group_choice(model, rows, ranges, torch, batch_size=64) -> float:
    """Share of groups whose answer window has the highest margin (best span minus no-answer) of the group."""
    margins = [m for _, _, m in read_rows(model, rows, torch, batch_size)]
    return float(np.mean([int(np.argmax(margins[a:b]) == 0) for a, b in ranges])) if ranges else float("nan")


def read_rows(model, rows, torch, batch_size=64, null: bool = False):
    """(best start, best end, best span's score minus the no-answer score) of every row, in eval mode; with `null`,
    the no-answer score itself as a fourth item."""
    model.eval()
    out: list = [None] * len(rows)
    # Batches of rows of like length, so that little of what is computed is padding; the answers keep row order.
    by_length = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            idx = by_length[b : b + batch_size]
            ids, types, mask, _, _ = collate(rows, idx, torch)
            logits = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
            sl, el = logits.start_logits.float().numpy(), logits.end_logits.float().numpy()
            for r, i in enumerate(idx):
                i0, j0, score = best_span(sl[r], el[r], rows[i][1].index(1), len(rows[i][0]) - 2)
                no_answer = float(sl[r, 0] + el[r, 0])
                out[i] = (i0, j0, score - no_answer, no_answer) if null else (i0, j0, score - no_answer)
    model.train()
    return out


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, first: int, last: int, max_len: int = 30):
    """Best (i, j, score) with first <= i <= j <= last, j - i < max_len; score = start_i + end_j."""
    s = start_logits[first : last + 1]
    e = end_logits[first : last + 1]
    n = len(s)
    grid = s[:, None] + e[None, :]
    tri = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), max_len)
    grid = np.where(tri, grid, -np.inf)
    k = int(np.argmax(grid))
    i, j = divmod(k, n)
    return first + i, first + j, float(grid[i, j])


def evaluate(model, tokenizer, rows, examples_text, torch, batch_size=64):
    """Span F1 on answer windows (token overlap of the predicted and gold spans) and AUROC of span-minus-null."""
    f1s, scores, labels = [], [], []
    for row, (i0, j0, margin) in zip(rows, read_rows(model, rows, torch, batch_size)):
        scores.append(margin)
        pos = row[2] > 0
        labels.append(1 if pos else 0)
        if pos:
            gold = set(range(row[2], row[3] + 1))
            pred = set(range(i0, j0 + 1))
            common = len(gold & pred)
            f1s.append(0.0 if common == 0 else 2 * common / (len(gold) + len(pred)))
    return float(np.mean(f1s)), _auroc(np.array(scores), np.array(labels))


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def held_out_rows(tokenizer, paragraphs, seed: int, questions: int, max_length: int, max_question: int):
    """The held-out windows every fit reports on (the HELD_OUT source's paragraphs, drawn from `seed` alone): single
    windows, and groups of 4 on the same paragraphs whichever way the fit runs, so that fits compare on them."""
    held = [p for p in paragraphs if p[0] == HELD_OUT]
    held_rng = random.Random(seed + 1)
    held_sample = held_rng.sample(held, min(len(held), max(1, questions // 2)))
    eval_rows = encode(tokenizer, make_examples(held_sample, held_rng, 0.5, {}), max_length, max_question)
    eval_group_rows, eval_ranges = encode_groups(
        tokenizer, make_groups(held_sample, random.Random(seed + 3), 0.3, 4, {}), max_length, max_question
    )
    return eval_rows, eval_group_rows, eval_ranges


def int8_session(reader_dir, threads: int = 0):
    """The onnxruntime session of a reader folder's `reader_int8.onnx` and the names of the inputs it takes."""
    import os

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(reader_dir / "reader_int8.onnx"), opts, providers=["CPUExecutionProvider"])
    return session, {i.name for i in session.get_inputs()}


class OnnxRows:
    """An int8 ONNX reader folder behind the call `read_rows` makes of a PyTorch model, so that the held-out windows
    are read as the engine reads them (activations quantized at run time), not by the full-precision weights."""

    def __init__(self, reader_dir, threads: int = 0):
        self.session, self.inputs = int8_session(reader_dir, threads)

    def eval(self) -> None:
        pass

    def train(self) -> None:
        pass

    def __call__(self, input_ids, token_type_ids, attention_mask):
        import types

        import torch

        given = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
        feed = {k: v.numpy().astype(np.int64) for k, v in given.items() if k in self.inputs}
        sl, el = self.session.run(None, feed)
        return types.SimpleNamespace(start_logits=torch.from_numpy(sl), end_logits=torch.from_numpy(el))
