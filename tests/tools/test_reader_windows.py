"""The reader's training windows (tools/reader_windows.py and the pass's groups in tools/pass_data.py) on generated
paragraphs: every answer lands in exactly one window of its question, whole and at its offsets, and no window drawn
as a negative holds it.

The paragraphs are made of words that occur once each (`w0007`), so a window holds the answer's text exactly when it
overlaps the answer's place in the paragraph."""

from __future__ import annotations

import itertools
import random
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # tools/ is a package at the repository root

from tools.pass_data import pass_groups  # noqa: E402
from tools.reader_windows import make_examples, make_groups  # noqa: E402


@st.composite
def paragraphs(draw):
    """Articles of paragraphs of sentences, each question answered inside one sentence, across two, or not at all
    (no answer, or an answer of blanks: neither yields a window)."""
    counter = itertools.count()
    out = []
    for article in range(draw(st.integers(1, 3))):
        for _ in range(draw(st.integers(1, 2))):
            text, words, sentences = "", [], []  # words: (start, end, sentence)
            for k, n in enumerate(draw(st.lists(st.integers(1, 5), min_size=1, max_size=6))):
                if text:
                    text += " "
                first = len(words)
                for i in range(n):
                    word = f"{'W' if i == 0 else 'w'}{next(counter):04d}"
                    text += word if i == 0 else " " + word
                    words.append((len(text) - len(word), len(text), k))
                text += "."
                sentences.append((first, len(words) - 1))
            qas = []
            for _ in range(draw(st.integers(1, 3))):
                kinds = ["inside", "none", "blank"] + (["across"] if len(sentences) > 1 else [])
                kind = draw(st.sampled_from(kinds))
                if kind == "inside":
                    lo, hi = sentences[draw(st.integers(0, len(sentences) - 1))]
                    i = draw(st.integers(lo, hi))
                    j = draw(st.integers(i, hi))
                    a_s, a_e = words[i][0], words[j][1]
                elif kind == "across":
                    k = draw(st.integers(0, len(sentences) - 2))
                    a_s, a_e = words[sentences[k][1]][0], words[sentences[k + 1][0]][1]
                asked = draw(st.lists(st.sampled_from([text[a:b] for a, b, _ in words]), max_size=3))
                qa = {"id": f"q{next(counter)}", "question": f"Q{next(counter)} {' '.join(asked)}?"}
                if kind in ("inside", "across"):
                    qa["answers"] = [{"text": text[a_s:a_e], "answer_start": a_s}]
                elif kind == "blank":
                    qa["answers"] = [{"text": " ", "answer_start": words[0][1]}]
                else:
                    qa["answers"] = []
                qas.append(qa)
            out.append((f"source{article % 2}", article, text, qas))
    return out


def _answered(paragraphs):
    """(paragraph text, question, answer text, answer start) of every question with a usable answer, in order."""
    return [
        (context, qa["question"], qa["answers"][0]["text"], qa["answers"][0]["answer_start"])
        for _, _, context, qas in paragraphs
        for qa in qas
        if qa["answers"] and qa["answers"][0]["text"].strip()
    ]


def _check_group(group, context, question, answer, a_s, size):
    head = group[0]
    assert head.question == question and head.context[head.start : head.end] == answer
    # The answer window is the paragraph's own text around the answer, at the answer's offsets.
    assert context[a_s - head.start : a_s - head.start + len(head.context)] == head.context
    assert 1 <= len(group) <= size
    for negative in group[1:]:
        assert negative.question == question and (negative.start, negative.end) == (-1, -1)
        assert negative.context and answer not in negative.context


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(paragraphs(), st.integers(0, 2**16), st.integers(2, 5), st.sampled_from([0.0, 0.5, 1.0]))
def test_a_group_holds_its_answer_once_in_its_first_window(paras, seed, size, cross):
    groups = make_groups(paras, random.Random(seed), cross, size, {})
    answered = _answered(paras)
    assert len(groups) == len(answered)
    for group, (context, question, answer, a_s) in zip(groups, answered):
        _check_group(group, context, question, answer, a_s, size)
    # The same seed draws the same windows (the cached training rows and a pass's data hash rely on it).
    assert make_groups(paras, random.Random(seed), cross, size, {}) == groups


@SETTINGS
@given(paragraphs(), st.integers(0, 2**16), st.sampled_from([0.0, 0.5, 1.0]))
def test_single_windows_hold_each_answer_once(paras, seed, cross):
    examples = make_examples(paras, random.Random(seed), cross, {})
    answered = _answered(paras)
    by_question: dict[str, list] = {}
    for ex in examples:
        by_question.setdefault(ex.question, []).append(ex)
    assert set(by_question) == {question for _, question, _, _ in answered}
    for context, question, answer, a_s in answered:
        drawn = by_question[question]
        positives = [ex for ex in drawn if ex.start >= 0]
        assert len(positives) == 1 and drawn[0] is positives[0]
        _check_group(drawn, context, question, answer, a_s, size=3)


@SETTINGS
@given(paragraphs(), st.integers(0, 2**16), st.integers(2, 5), st.sampled_from([0.0, 0.5, 1.0]))
def test_a_pass_group_holds_its_answer_once_in_its_first_window(paras, seed, size, cross):
    groups, ids = pass_groups(paras, random.Random(seed), size, cross)
    answered = _answered(paras)
    assert len(groups) == len(answered)
    assert ids == [
        qa["id"] for _, _, _, qas in paras for qa in qas if qa["answers"] and qa["answers"][0]["text"].strip()
    ]
    for group, (context, question, answer, a_s) in zip(groups, answered):
        _check_group(group, context, question, answer, a_s, size)
    assert pass_groups(paras, random.Random(seed), size, cross) == (groups, ids)
