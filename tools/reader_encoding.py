"""Windows as the reader's token rows, `[CLS] question [SEP] window [SEP]`: ids, token types, and the answer's first
and last token (0, the `[CLS]` token, when the window does not answer); batches of rows grouped by length, and their
tensors."""

from __future__ import annotations

import random

from tools.reader_windows import Example


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


def split_logits(model, rows, idx, torch, parts: int = 2, device: str = "cpu"):
    """The batch's tensors (as `collate`) and the model's start and end logits over them, computed in `parts`
    forward passes over the rows sorted by length, each padded only to its own longest row.

    A pass batch padded to its longest window computes about a quarter of its tokens as padding; two sorted halves
    cut that by two fifths, and a step ran about 29% faster for it (docs/quality.md, "Faster steps"). The logits
    are those of one pass up to rounding, since attention never sees the padding; positions past a part's longest
    row come back as -1e4, and the caller masks the padding inside a part as it would for one pass."""
    ids, types, mask, s, e = (t.to(device) for t in collate(rows, idx, torch))
    idx = list(idx)
    width = ids.shape[1]
    by_length = sorted(range(len(idx)), key=lambda r: len(rows[idx[r]][0]))
    size = -(-len(idx) // max(1, parts))
    starts, ends = [], []
    for p in range(0, len(idx), size):
        chunk = by_length[p : p + size]
        n = max(len(rows[idx[r]][0]) for r in chunk)
        at = torch.tensor(chunk, device=device)
        out = model(input_ids=ids[at, :n], token_type_ids=types[at, :n], attention_mask=mask[at, :n])
        starts.append(torch.nn.functional.pad(out.start_logits.float(), (0, width - n), value=-1e4))
        ends.append(torch.nn.functional.pad(out.end_logits.float(), (0, width - n), value=-1e4))
    back = torch.empty(len(idx), dtype=torch.long, device=device)
    back[torch.tensor(by_length, device=device)] = torch.arange(len(idx), device=device)
    return ids, types, mask, s, e, torch.cat(starts)[back], torch.cat(ends)[back]
