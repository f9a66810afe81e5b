"""The data of one pass of tools/reader_pass.py: a group of windows per answerable question (the answer window first,
then negatives shaped like the engine's misses), the unanswerable questions of the SQuAD 2.0 articles in TRAIN_FOLD,
and all of them encoded once into flat arrays (`PassData`), cached in the work folder and hashed into the state."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from pathlib import Path

import numpy as np

from rag.index.lexical import content_terms

from tools.reader_encoding import encode
from tools.reader_windows import HELD_OUT, Example, _Source, load_paragraphs, window

TRAIN_FOLD = ("Huguenot", "Packet_switching", "Rhine", "Warsaw")


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
