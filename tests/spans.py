"""The engine's core invariant, checked the same way by every test: each span quotes its document exactly."""

from __future__ import annotations


def assert_spans(idx, answer) -> None:
    """Every citation and passage of `answer` equals its document's text at its offsets in `idx`."""
    for c in answer.citations:
        assert idx.document(c.doc_id).text[c.start : c.end] == c.quote, c
    for p in answer.passages:
        assert idx.document(p.doc_id).text[p.start : p.end] == p.text, p
