from __future__ import annotations

import pytest

from rag.errors import ConfigError
from rag.ingest.chunking import chunk_document, locate_spans
from rag.ingest.formats import content_hash
from rag.types import Document

from fakes import FakeEmbedder


def _doc(text: str) -> Document:
    return Document(id="d", text=text, title="t", source="s", content_hash=content_hash(text))


PARA = "The pause on intelligence sharing could be lifted once talks are set. Officials said so on Tuesday."


def test_repeated_paragraphs_get_their_own_offsets():
    # The same paragraph three times: a splitter's start_index points every copy at the first one.
    text = "\n\n".join([PARA, "A different paragraph in between.", PARA, PARA])
    emb = FakeEmbedder()
    chunks = chunk_document(_doc(text), chunk_size=20, chunk_overlap=0, token_len=emb.count_tokens)
    assert len(chunks) >= 4
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for c in chunks:
        assert text[c.start : c.end] == c.text
    copies = [c for c in chunks if c.text == PARA]
    assert len(copies) == 3
    assert [text.find(PARA, i) for i in (0, copies[0].end, copies[1].end)] == [c.start for c in copies]


def test_overlap_and_limits_hold_on_long_text():
    words = [f"word{i}" for i in range(2000)]
    text = " ".join(words[:700]) + ".\n\n" + " ".join(words[700:])
    emb = FakeEmbedder()
    chunks = chunk_document(_doc(text), chunk_size=50, chunk_overlap=10, token_len=emb.count_tokens, max_tokens=50)
    assert all(emb.count_tokens(c.text) <= 50 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    # consecutive chunks overlap (overlap > 0) and together cover every word
    assert any(b.start < a.end for a, b in zip(chunks, chunks[1:]))
    covered = "".join(text[c.start : c.end] for c in chunks)
    assert all(w in covered for w in words[::97])


def test_a_chunk_the_splitter_cannot_shrink_is_cut_to_the_model_limit():
    text = "x" * 5000  # one "word" far over any limit
    emb = FakeEmbedder()
    token_len = lambda s: len(s) // 10  # noqa: E731 - 1 token per 10 characters
    chunks = chunk_document(_doc(text), chunk_size=40, chunk_overlap=0, token_len=token_len, max_tokens=40)
    assert chunks and all(token_len(c.text) <= 40 for c in chunks)
    assert "".join(c.text for c in chunks) == text
    del emb


def test_chunk_size_over_the_model_limit_is_refused():
    with pytest.raises(ConfigError, match="exceeds the model's limit"):
        chunk_document(_doc(PARA), chunk_size=300, chunk_overlap=0, token_len=len, max_tokens=254)


def test_locate_spans_reports_text_the_splitter_changed():
    with pytest.raises(ValueError):
        locate_spans("abc", ["abd"])


@pytest.mark.model
def test_real_tokenizer_keeps_chunks_under_the_model_limit(model_embedder):
    text = ("Ukraine relied on US intelligence for tracking Russian troops. " * 80).strip()
    chunks = chunk_document(_doc(text), 128, 24, model_embedder.count_tokens, model_embedder.max_tokens)
    assert len(chunks) > 5
    assert all(model_embedder.count_tokens(c.text) <= 128 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)
