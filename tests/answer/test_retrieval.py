"""Retrievers: BM25 against a reference formula, the saved lexical index (no pickle), fusion, and one contract for all."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rag.answer.retrieval import (
    DenseRetriever,
    HybridRetriever,
    LexicalRetriever,
    Retriever,
    fuse,
    make_retriever,
)
from rag.config import Settings
from rag.index.lexical import LexicalBuilder, LexicalIndex, terms

TEXTS = [
    "The Rhine flows north through Germany to the North Sea.",
    "Warsaw is the capital of Poland and lies on the Vistula.",
    "The Danube flows east to the Black Sea through ten countries.",
    "Lisbon was struck by an earthquake in 1755.",
    "Rivers of Germany include the Rhine, the Elbe and the Danube.",
]
IDS = [101, 102, 103, 104, 105]


def reference_bm25(query: str, docs: list[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """BM25 as Lucene scores it (idf log(1 + (N - df + 0.5) / (df + 0.5)), no (k1 + 1) factor), from the formula."""
    toks = [terms(d) for d in docs]
    n = len(docs)
    avg = sum(len(t) for t in toks) / n
    out = []
    for t in toks:
        s = 0.0
        for w in set(terms(query)):
            df = sum(1 for d in toks if w in d)
            if not df:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = t.count(w)
            s += idf * tf / (tf + k1 * (1 - b + b * len(t) / avg))
        out.append(s)
    return out


@pytest.fixture
def lexical():
    return LexicalIndex.build(IDS, TEXTS)


@pytest.mark.parametrize("step", [1, 7, 1 << 19])
def test_streamed_fit_is_bm25s_own_matrix_in_any_number_of_steps(monkeypatch, step):
    """The builder's fit fills the matrix in slices of documents; every slicing gives bm25s' arrays exactly."""
    import bm25s

    import rag.index.lexical as lexical

    monkeypatch.setattr(lexical, "_FIT_SLICE", step)
    rng = np.random.default_rng(5)
    texts = (
        TEXTS
        + [
            " ".join(rng.choice(["rhine", "sea", "north", "capital", "river", "flows"], n))
            for n in rng.integers(1, 40, 30)
        ]
        + ["the of and"]
    )
    builder = LexicalBuilder()
    for i, t in enumerate(texts):
        builder.add(i, t)
    term_ids = list(builder.term_ids)
    ours = builder.build().bm25.scores
    reference = bm25s.BM25(k1=1.2, b=0.75)
    reference.index((term_ids, dict(builder.vocab)), show_progress=False)
    for key in ("data", "indices", "indptr"):
        assert ours[key].dtype == reference.scores[key].dtype
        np.testing.assert_array_equal(ours[key], reference.scores[key])
    assert ours["num_docs"] == reference.scores["num_docs"] == len(texts)


@pytest.mark.parametrize("step", [1, 7, 1 << 18])
def test_term_ids_spilled_to_a_file_fit_the_same_matrix(tmp_path, monkeypatch, step):
    """A build appends term ids to a file in its work folder; the fit reads them back a slice at a time."""
    import rag.index.lexical as lexical

    monkeypatch.setattr(lexical, "_FIT_SLICE", step)
    rng = np.random.default_rng(9)
    texts = (
        TEXTS
        + [" ".join(rng.choice(["rhine", "sea", "north", "capital", "river"], n)) for n in rng.integers(1, 30, 25)]
        + ["the of and"]
    )
    in_memory, spilled = LexicalBuilder(), LexicalBuilder(tmp_path / "terms.tmp")
    for i, t in enumerate(texts):
        in_memory.add(100 + i, t)
        spilled.add(100 + i, t)
    assert (tmp_path / "terms.tmp").stat().st_size == 4 * sum(len(a) for a in in_memory.term_ids)
    assert [a.tolist() for a in spilled.term_ids] == [a.tolist() for a in in_memory.term_ids]
    a, b = in_memory.build(), spilled.build()
    assert not (tmp_path / "terms.tmp").exists()
    for key in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(a.bm25.scores[key], b.bm25.scores[key])
    assert a.chunk_ids.tolist() == b.chunk_ids.tolist() == list(range(100, 100 + len(texts)))
    np.testing.assert_array_equal(a.idf, b.idf)


def test_fit_slices_cover_every_document_once():
    from rag.index.lexical import _slices

    for lengths in ([1, 1, 10, 1], [10], [3] * 9, [1, 50, 1, 1, 50], []):
        for size in (1, 2, 4, 100):
            ranges = list(_slices(np.array(lengths, dtype=np.int64), size))
            covered = [i for a, z in ranges for i in range(a, z)]
            assert covered == list(range(len(lengths))), (lengths, size, ranges)
            assert all(z > a for a, z in ranges)


@pytest.mark.parametrize("query", ["Rhine Germany", "which sea does the Danube reach", "earthquake 1755", "capital"])
def test_bm25_scores_match_the_reference(lexical, query):
    assert lexical.scores(query) == pytest.approx(reference_bm25(query, TEXTS), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("query", ["Rhine Germany", "which sea does the Danube reach", "earthquake 1755", "the of"])
def test_streamed_builder_scores_like_the_reference(query):
    """A build feeds chunks one at a time as term ids; the index scores exactly as one built from the texts."""
    builder = LexicalBuilder()
    for i, t in zip(IDS, TEXTS):
        builder.add(i, t)
    builder.add(106, "and the of")  # only stop words: an empty document, as in `LexicalIndex.build`
    streamed = builder.build()
    whole = LexicalIndex.build(IDS + [106], TEXTS + ["and the of"])
    assert len(builder) == 6
    assert streamed.scores(query) == pytest.approx(whole.scores(query), abs=1e-6)
    assert streamed.idf_of("rhine") == pytest.approx(whole.idf_of("rhine"))
    assert streamed.search(query, 3)[1].tolist() == whole.search(query, 3)[1].tolist()


def test_rows_holding_a_term_are_where_it_scores(lexical, tmp_path):
    """The chunks holding a word, read from its column, are those its BM25 score is positive on (and after a save
    and load, from the mapped arrays)."""
    lexical.save(tmp_path)
    back = LexicalIndex.load(tmp_path)
    for word in terms("Rhine Danube Germany Lisbon zebra"):
        ids = lexical.term_ids([word])
        scored = np.flatnonzero(np.asarray(lexical.bm25.get_scores_from_ids(ids)) > 0) if ids else []
        assert sorted(lexical.rows_holding(word).tolist()) == list(scored)
        assert sorted(back.rows_holding(word).tolist()) == list(scored)
    assert lexical.chunk_ids[lexical.rows_holding(terms("Rhine")[0])].tolist() == [101, 105]


def test_search_orders_filters_and_drops_zero_scores(lexical):
    scores, ids = lexical.search("Danube Black Sea", 5)
    assert ids[0] == 103 and list(scores) == sorted(scores, reverse=True) and 102 not in ids
    _, only = lexical.search("Danube Black Sea", 5, allowed_ids=np.array([105]))
    assert list(only) == [105]
    assert len(lexical.search("zebra", 5)[1]) == 0


def test_saved_index_round_trips_without_pickle(lexical, tmp_path):
    files = lexical.save(tmp_path)
    assert all(f.startswith("lexical/") for f in files) and "lexical/chunk_ids.npy" in files
    for f in files:
        if f.endswith(".npy"):
            np.load(tmp_path / f, allow_pickle=False)  # raises if anything was pickled
        else:
            json.loads((tmp_path / f).read_text())
    back = LexicalIndex.load(tmp_path)
    assert back.scores("Rhine Germany") == pytest.approx(lexical.scores("Rhine Germany"))
    assert back.idf_of("rhine") == pytest.approx(lexical.idf_of("rhine")) and back.idf_of("rhine") < back.idf_of(
        "lisbon"
    )


def test_damaged_lexical_index_names_the_fix(lexical, tmp_path):
    from rag.errors import IndexCorruptError

    lexical.save(tmp_path)
    (tmp_path / "lexical" / "idf.npy").write_bytes(b"not an array")
    with pytest.raises(IndexCorruptError, match="rebuild-index"):
        LexicalIndex.load(tmp_path)


def test_fuse_weights_and_floors():
    fused = fuse({1: 0.9, 2: 0.5}, {2: 10.0, 3: 5.0}, 0.5)
    assert fused[2] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    assert fused[1] == pytest.approx(0.5 * 0.9 + 0.5 * 0.5)  # missing lexically: the lowest lexical value
    assert fused[3] == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)  # missing densely: the lowest cosine
    assert fuse({1: 0.9}, {}, 0.5) == {1: pytest.approx(0.45)}


class _Store:
    """Exact inner-product search over a small matrix (an oracle for the contract)."""

    def __init__(self, ids, vecs):
        self.ids, self.vecs, self.dimension = np.array(ids), vecs, vecs.shape[1]

    def search(self, q, k, allowed_ids=None):
        s = self.vecs @ q[0]
        if allowed_ids is not None:
            s = np.where(np.isin(self.ids, allowed_ids), s, -np.inf)
        order = np.argsort(-s)[:k]
        keep = order[np.isfinite(s[order])]
        return s[keep][None, :], self.ids[keep][None, :]


def _retrievers(fake_embedder, lexical):
    store = _Store(IDS, fake_embedder.embed_documents(TEXTS))
    return [DenseRetriever(store), LexicalRetriever(lexical), HybridRetriever(store, lexical, 0.5)]


def test_retriever_contract(fake_embedder, lexical):
    q = "Which sea does the Danube flow to?"
    v = fake_embedder.embed_query(q)
    for r in _retrievers(fake_embedder, lexical):
        assert isinstance(r, Retriever)
        hits = r.retrieve(q, v, 3)
        assert 1 <= len(hits) <= 3, type(r).__name__
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len({h.chunk_id for h in hits}) == len(hits) and hits[0].chunk_id == 103, type(r).__name__
        only = r.retrieve(q, v, 3, allowed_ids=np.array([101, 104]))
        assert {h.chunk_id for h in only} <= {101, 104}, type(r).__name__


def test_hybrid_hits_carry_both_scores(fake_embedder, lexical):
    hybrid = _retrievers(fake_embedder, lexical)[2]
    hits = hybrid.retrieve("Danube Black Sea", fake_embedder.embed_query("Danube Black Sea"), 5)
    assert all(h.dense == h.dense for h in hits) and hits[0].lexical > 0


def test_make_retriever_falls_back_to_dense_without_lexical_index(fake_embedder, lexical):
    store = _Store(IDS, fake_embedder.embed_documents(TEXTS))
    assert isinstance(make_retriever("hybrid", store, None), DenseRetriever)
    assert isinstance(make_retriever("lexical", store, lexical), LexicalRetriever)
    assert isinstance(make_retriever("hybrid", store, lexical), HybridRetriever)


def test_build_writes_lexical_index_into_the_manifest(fake_seed_index):
    from rag import open_index
    from rag.index import indexdir

    folder, emb = fake_seed_index
    version = indexdir.current_version(folder)
    manifest = indexdir.read_manifest(version)
    assert any(f.startswith("lexical/") for f in manifest["files"])
    assert not indexdir.verify_files(version, manifest, deep=True)
    for kind, cls in (("dense", DenseRetriever), ("lexical", LexicalRetriever), ("hybrid", HybridRetriever)):
        idx = open_index(folder, embedder=emb, settings=Settings.load({"retriever": kind}))
        assert isinstance(idx.retriever, cls)
        assert idx.search("intelligence sharing with Ukraine", 3)
        idx.close()


def test_hybrid_hits_carry_both_sides_signals(fake_embedder, lexical):
    store = _Store(IDS, fake_embedder.embed_documents(TEXTS))
    q = "Which river flows north through Germany?"
    hits = HybridRetriever(store, lexical, 0.5).retrieve(q, fake_embedder.embed_query(q), 5)
    lex_scores = {int(i): float(s) for s, i in zip(*lexical.search(q, 50))}
    best = max(lex_scores.values())
    for h in hits:
        assert h.lexical_share == pytest.approx(lex_scores.get(h.chunk_id, 0.0) / best)
        assert (h.lexical_rank >= 0) == (h.chunk_id in lex_scores)
        assert h.dense_rank >= 0  # five texts: the dense side returns them all
    assert max(h.lexical_share for h in hits) == pytest.approx(1.0)
