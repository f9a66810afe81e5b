"""The reader's training windows: the paragraphs of a SQuAD-style file, the window around each question's answer and
windows without it, one by one (`make_examples`) or as a question's group (`make_groups`); see tools/train_reader.py
for what the reader is shown.

A window is one or more consecutive sentences of a paragraph; an `Example` holds its text and the answer's character
offsets in it, or -1 when it does not hold the answer."""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from rag.index.lexical import content_terms
from rag.ingest.sentences import split_sentences

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
