"""The order of a pass of tools/reader_pass.py: every group scored once by the shipped int8 reader (`score_groups`),
those it misreads or barely gets first (HARD_SHARE of each stretch), and batches of whole groups that keep that
order."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np

from tools.pass_data import PassData
from tools.reader_scoring import best_span, int8_session

HARD_SHARE = 0.75
CHUNK_BATCHES = 50


def score_groups(
    data: PassData, reader_dir: Path, batch: int = 64, threads: int = 0, per_group: int = 2, partial: Path | None = None
) -> np.ndarray:
    """Per group: [answer window read best of the group's first `per_group` windows (0/1), span F1 of the answer
    window, its margin, the best margin of those windows], by the int8 ONNX reader in `reader_dir`; F1 and margin
    are nan for an unanswerable group. The first negative is the paragraph's window most like the question, so two
    windows a group ask the question that matters (does the answer beat its strongest neighbour?) at half the cost."""
    sess, names = int8_session(reader_dir, threads)
    n = len(data.a["lengths"])
    chosen = np.array([r for g in range(data.groups) for r in list(data.group_rows(g))[:per_group]], dtype=np.int64)
    margins = np.full(n, -np.inf, dtype=np.float32)
    spans = np.zeros((n, 2), dtype=np.int32)
    order = chosen[np.argsort(data.a["lengths"][chosen], kind="stable")]
    t0 = time.time()
    begin, digest = 0, data.digest()
    # Scoring takes most of an hour on two cores: a killed run picks up from its last partial save.
    if partial is not None and partial.exists():
        with np.load(partial, allow_pickle=False) as saved:
            if int(saved["windows"]) == n and str(saved["digest"]) == digest:
                margins, spans, begin = saved["margins"].copy(), saved["spans"].copy(), int(saved["done"])
                print(f"resumed scoring at {begin}/{len(order)} windows", flush=True)
    for b in range(begin, len(order), batch):
        idx = order[b : b + batch]
        rows = [data.row(int(r)) for r in idx]
        width = max(len(r[0]) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for k, (i_, t_, _, _) in enumerate(rows):
            ids[k, : len(i_)], types[k, : len(t_)], mask[k, : len(i_)] = i_, t_, 1
        feed = {
            k: v for k, v in {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}.items() if k in names
        }
        sl, el = sess.run(None, feed)
        for k, r in enumerate(idx):
            i_, t_ = rows[k][0], rows[k][1]
            i0, j0, score = best_span(sl[k], el[k], t_.index(1), len(i_) - 2)
            margins[r] = score - (sl[k, 0] + el[k, 0])
            spans[r] = (i0, j0)
        if (b // batch) % 500 == 0:
            print(f"scored {b + len(idx)}/{len(order)} windows, {time.time() - t0:.0f} s", flush=True)
        if partial is not None and (b // batch) % 100 == 99:
            tmp = partial.with_name(partial.name + ".tmp.npz")
            np.savez(tmp, margins=margins, spans=spans, done=b + len(idx), windows=n, digest=digest)
            os.replace(tmp, partial)
    out = np.full((data.groups, 4), np.nan, dtype=np.float32)
    for g in range(data.groups):
        rows = data.group_rows(g)
        head = rows.start
        best = float(margins[rows.start : rows.stop].max())
        s, e = int(data.a["starts"][head]), int(data.a["ends"][head])
        if s > 0:
            pred = set(range(spans[head][0], spans[head][1] + 1))
            gold = set(range(s, e + 1))
            common = len(pred & gold)
            f1 = 0.0 if not common else 2 * common / (len(pred) + len(gold))
            out[g] = (float(margins[head] >= best), f1, margins[head], best)
        else:
            out[g, 3] = best
    return out


def hard_mask(scores: np.ndarray) -> np.ndarray:
    """Groups the shipped reader misreads or barely gets (see the module docstring)."""
    answerable = ~np.isnan(scores[:, 1])
    low = np.nanpercentile(scores[answerable, 2], 25) if answerable.any() else 0.0
    hard = np.zeros(len(scores), dtype=bool)
    a = scores[answerable]
    hard[answerable] = (a[:, 0] < 1) | (a[:, 1] < 0.5) | (a[:, 2] < low)
    hard[~answerable] = scores[~answerable, 3] > 0
    return hard


def pass_order(hard: np.ndarray, seed: int, hard_first: bool = True) -> np.ndarray:
    """The groups in the order the pass reads them: hard ones HARD_SHARE of each stretch while they last (or all
    shuffled together when not `hard_first`)."""
    rng = np.random.default_rng(seed)
    if not hard_first:
        return rng.permutation(len(hard)).astype(np.int64)
    h = rng.permutation(np.nonzero(hard)[0])
    r = rng.permutation(np.nonzero(~hard)[0])
    out, i, j, stretch = [], 0, 0, 400
    take_h = int(stretch * HARD_SHARE)
    while i < len(h) or j < len(r):
        out.extend(h[i : i + take_h])
        i += take_h
        rest = stretch - take_h if i < len(h) else stretch
        out.extend(r[j : j + rest])
        j += rest
    return np.array(out, dtype=np.int64)


def pass_batches(data: PassData, order: np.ndarray, batch_size: int, seed: int) -> list[list[int]]:
    """Batches of whole groups (about `batch_size` windows) following `order`: within each stretch of
    CHUNK_BATCHES batches the groups are sorted by length (less padding) and the batches shuffled, so the pass
    keeps its hard-first shape."""
    rng = random.Random(seed)
    longest = data.a["lengths"]
    per_group = max(1, batch_size // 4)
    chunk = per_group * CHUNK_BATCHES
    out: list[list[int]] = []
    for c in range(0, len(order), chunk):
        part = sorted(order[c : c + chunk].tolist(), key=lambda g: int(longest[data.group_rows(g)].max()))
        stretch: list[list[int]] = []
        batch: list[int] = []
        for g in part:
            batch.extend(data.group_rows(g))
            if len(batch) >= batch_size:
                stretch.append(batch)
                batch = []
        if batch:
            stretch.append(batch)
        rng.shuffle(stretch)
        out.extend(stretch)
    return out
