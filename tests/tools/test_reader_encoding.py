"""Windows as token rows (tools/reader_encoding.py), with the bundled MiniLM tokenizer: the answer's token span maps
back to the answer's exact characters, a window too long keeps the answer in view, and an answer that cannot fit
drops its row (and its group) rather than teaching a wrong span."""

from __future__ import annotations

import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_bert import tokenizer

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # tools/ is a package at the repository root

from tools.pass_data import PassData, encode_pass  # noqa: E402
from tools.reader_encoding import encode, encode_groups  # noqa: E402
from tools.reader_windows import Example  # noqa: E402

# Word shapes that the WordPiece tokenizer cuts in several ways: plain, accented, possessive, numbers with commas,
# hyphens, brackets and sentence ends.
SHAPES = ("word{}", "Café{}", "Corvo{}'s", "{},{}00", "x-{}", "({})", "end{}.", "naïve{}", "U.S.{}")


@st.composite
def windows(draw):
    """A window of distinct words, an answer of whole words in it (or none), and the model's length limits."""
    n = draw(st.integers(1, 90))
    words = [draw(st.sampled_from(SHAPES)).format(i, i) for i in range(n)]
    text = " ".join(words)
    starts = [sum(len(w) + 1 for w in words[:i]) for i in range(n)]
    question = " ".join(f"ask{i}" for i in range(draw(st.integers(1, 50))))
    if draw(st.booleans()):
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(i, min(n - 1, i + draw(st.integers(0, 12)))))
        start, end = starts[i], starts[j] + len(words[j])
    else:
        start = end = -1
    # (Limits that leave room for the window: a question cut at 40 tokens needs a max length of more than 43.)
    return Example(question, text, start, end), *draw(st.sampled_from([(24, 4), (48, 4), (48, 40), (128, 40)]))


def _context_offsets(example: Example, row) -> list[tuple[int, int]]:
    """The character offsets in `example.context` of the row's context tokens (the row keeps a run of the window's
    tokens: find where it starts)."""
    ids = row[0]
    first = row[1].index(1)
    kept = ids[first:-1]
    enc = tokenizer()(example.context, add_special_tokens=False, return_offsets_mapping=True)
    all_ids, offsets = enc["input_ids"], enc["offset_mapping"]
    starts = [lo for lo in range(len(all_ids) - len(kept) + 1) if all_ids[lo : lo + len(kept)] == kept]
    assert starts, "the row's context is not a run of the window's tokens"
    return offsets[starts[0] : starts[0] + len(kept)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows())
def test_the_answer_token_span_maps_back_to_the_answer_characters(drawn):
    example, max_length, max_question = drawn
    tok = tokenizer()
    rows = encode(tok, [example], max_length, max_question)
    q_ids = tok(example.question, add_special_tokens=False)["input_ids"][:max_question]
    room = max_length - len(q_ids) - 3
    if example.start >= 0:
        enc = tok(example.context, add_special_tokens=False, return_offsets_mapping=True)
        answer_tokens = [t for t, (s, e) in enumerate(enc["offset_mapping"]) if s < example.end and e > example.start]
        if len(answer_tokens) > room:  # the answer alone does not fit: no row, rather than a cut answer
            assert rows == []
            return
    (row,) = rows
    ids, types, s, e = row
    # [CLS] question [SEP] window [SEP], as the engine's reader lays it out, within the model's length.
    assert len(ids) == len(types) <= max_length
    assert ids[0] == tok.cls_token_id and ids[len(q_ids) + 1] == tok.sep_token_id and ids[-1] == tok.sep_token_id
    assert ids[1 : len(q_ids) + 1] == q_ids and len(q_ids) <= max_question
    assert types == [0] * (len(q_ids) + 2) + [1] * (len(ids) - len(q_ids) - 2)
    if example.start < 0:
        assert (s, e) == (0, 0)
        return
    first = len(q_ids) + 2
    assert first <= s <= e < len(ids) - 1
    offsets = _context_offsets(example, row)
    assert (
        example.context[offsets[s - first][0] : offsets[e - first][1]] == example.context[example.start : example.end]
    )


def test_a_group_whose_answer_cannot_fit_is_dropped_whole():
    tok = tokenizer()
    long_answer = " ".join(f"word{i}" for i in range(60))
    fits = [Example("Where?", "It is in Porto Vell today.", 9, 19), Example("Where?", "Boats leave at dawn.", -1, -1)]
    too_long = [Example("What?", long_answer, 0, len(long_answer)), Example("What?", "Fish swim.", -1, -1)]
    no_answer = [Example("Who?", "Bread is baked daily.", -1, -1)]
    rows, ranges = encode_groups(tok, [fits, too_long, no_answer], 32, 8)
    # The second group's answer window cannot fit in 32 tokens: the group goes, its negative with it.
    assert ranges == [(0, 2), (2, 3)] and len(rows) == 3
    assert rows[0][2] > 0 and rows[1][2:] == (0, 0) and rows[2][2:] == (0, 0)
    ids, _, s, e = rows[0]
    assert tok.decode(ids[s : e + 1]) == "porto vell"
    # The pass encodes the same way, into flat arrays that keep each kept group's rows and question id.
    data = PassData(encode_pass(tok, [fits, too_long, no_answer], ["a", "b", "c"], 32, 8))
    assert data.a["ids"].tolist() == ["a", "c"] and [list(data.group_rows(g)) for g in range(data.groups)] == [
        [0, 1],
        [2],
    ]
    assert [data.row(r) for r in range(3)] == [tuple(r) for r in rows]


def test_a_long_window_keeps_the_answer_in_view():
    tok = tokenizer()
    text = " ".join(f"word{i}" for i in range(200)) + " The answer is Mount Corvo."
    start = text.index("Mount Corvo")
    example = Example("Where does the Lenna rise?", text, start, start + len("Mount Corvo"))
    (row,) = encode(tok, [example], 64, 40)
    ids, types, s, e = row
    assert len(ids) <= 64 and tok.decode(ids[s : e + 1]) == "mount corvo"
    # The kept run is centred on the answer: as many of the room's spare tokens before it as the window can give.
    first, room = types.index(1), 64 - (types.index(1) - 2) - 3
    assert s - first == (room - (e - s + 1)) // 2
    # Read from the start, the window would end long before the answer; a window without one is cut at the end.
    (negative,) = encode(tok, [Example(example.question, text, -1, -1)], 64, 40)
    assert tok.decode(negative[0][negative[1].index(1) : -1]).startswith("word0 word1")


def test_sorted_parts_give_the_logits_and_gradients_of_one_padded_batch():
    """Splitting a batch by length changes how much padding is computed, never what is learnt."""
    import random

    import torch
    from tiny_bert import tiny_model

    from tools.reader_encoding import collate, split_logits

    rng = random.Random(3)
    rows = []
    for n in (9, 30, 14, 22, 5, 30, 11):
        ids = [101, *(rng.randrange(1000, 2000) for _ in range(n - 2)), 102]
        rows.append((ids, [0] * 4 + [1] * (n - 4), rng.randrange(4, n), n - 2))
    grads = []
    for parts in (1, 3):
        model = tiny_model(seed=5)
        ids, types, mask, s, e, sl, el = split_logits(model, rows, range(len(rows)), torch, parts)
        whole = model(
            **dict(zip(("input_ids", "token_type_ids", "attention_mask"), collate(rows, range(len(rows)), torch)))
        )
        assert torch.allclose(sl[mask == 1], whole.start_logits[mask == 1], atol=1e-5)
        assert torch.allclose(el[mask == 1], whole.end_logits[mask == 1], atol=1e-5)
        loss = torch.nn.functional.cross_entropy(sl.masked_fill(mask == 0, -1e4), s)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
