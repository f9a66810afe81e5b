"""A build runs the model once over the text: sentences are embedded, and a chunk's vector is the mean of its
sentences' vectors (`chunk_vectors="sentences"`); `chunk_vectors="model"` embeds chunks on their own as well."""

from __future__ import annotations

import numpy as np

from rag.config import Settings
from rag.index.build import _embed, _split
from rag.types import Document

from fakes import FakeEmbedder


def _doc(text: str) -> Document:
    return Document(id="d", text=text, title="t", source="d.txt", content_hash="h")


def test_split_maps_each_chunk_to_the_sentences_it_holds():
    emb = FakeEmbedder()
    text = " ".join(f"Sentence number {i} talks about topic {i} at some length here." for i in range(40))
    batch = _split([_doc(text)], Settings(chunk_size=60, chunk_overlap=10), emb, None)
    assert len(batch.chunks) > 3 and len(batch.sentences) == 40
    for chunk, rows in zip(batch.chunks, batch.chunk_sentences):
        assert rows == sorted(rows) and rows
        for r in rows:
            _, start, end = batch.sentences[r]
            assert start < chunk.end and end > chunk.start, "every listed sentence overlaps its chunk"
        outside = set(range(40)) - set(rows)
        assert all(not (batch.sentences[r][1] < chunk.end and batch.sentences[r][2] > chunk.start) for r in outside)
    assert {r for rows in batch.chunk_sentences for r in rows} == set(range(40))


def test_chunk_vectors_are_the_mean_of_their_sentences_and_cost_no_model_call():
    emb = FakeEmbedder()
    text = " ".join(f"The river number {i} flows north past town {i}." for i in range(30))
    settings = Settings(chunk_size=50, chunk_overlap=10)
    batch = _split([_doc(text)], settings, emb, None)
    calls = emb.calls
    chunk_vecs, sent_vecs = _embed(batch, settings, emb)
    assert emb.calls - calls == len(batch.sentences), "the model reads each sentence once, and nothing else"
    np.testing.assert_allclose(sent_vecs, emb.embed_documents(batch.sentence_texts), atol=1e-6)
    for vec, rows in zip(chunk_vecs, batch.chunk_sentences):
        mean = sent_vecs[rows].mean(axis=0)
        np.testing.assert_allclose(vec, mean / np.linalg.norm(mean), atol=1e-5)

    calls = emb.calls
    chunk_vecs, _ = _embed(batch, settings.with_(chunk_vectors="model"), emb)
    assert emb.calls - calls == len(batch.sentences) + len(batch.chunks)
    np.testing.assert_allclose(chunk_vecs, emb.embed_documents(batch.chunk_texts), atol=1e-6)


def test_without_sentence_vectors_chunks_are_embedded_themselves():
    emb = FakeEmbedder()
    settings = Settings(sentence_vectors=False)
    batch = _split([_doc("One sentence. Another sentence.")], settings, emb, None)
    chunk_vecs, sent_vecs = _embed(batch, settings, emb)
    assert sent_vecs.shape == (0, emb.dimension) and chunk_vecs.shape == (1, emb.dimension)
