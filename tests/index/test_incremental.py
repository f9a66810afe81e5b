"""Incremental rebuilds: unchanged articles are not re-embedded, changed ones replaced, deleted ones removed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag import build_index, open_index
from rag.cli.commands import build_parser

from spans import assert_spans

TOPICS = [
    "The river burst its banks after a week of heavy rain and the valley flooded.",
    "The central bank raised interest rates for the third time this year.",
    "The home side won the cup final with a goal in extra time.",
    "The new phone has a faster chip, a brighter screen and a better camera.",
    "The film festival opened with a comedy about a travelling circus.",
    "Farmers warned that the drought would cut the wheat harvest by a third.",
]


def write_corpus(path, n: int = 12) -> list[dict]:
    records = []
    for i in range(n):
        text = " ".join(f"{TOPICS[(i + j) % len(TOPICS)]} Item {i}-{j} was reported on day {j}." for j in range(5))
        records.append({"id": f"art-{i:02d}", "title": f"Article {i}", "text": text})
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def save(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def embedded_texts(idx, doc_id: str) -> int:
    """What embedding one document costs: its sentences (a chunk's vector is the mean of its sentences')."""
    return len(idx.catalog.sentences_of([doc_id]))


def assert_citations_valid(idx, question: str) -> None:
    answer = idx.query(question, abstain_threshold=0.0)
    assert answer.passages, question
    assert_spans(idx, answer)


@pytest.fixture
def corpus(tmp_path, fake_embedder):
    src = tmp_path / "articles.jsonl"
    records = write_corpus(src)
    index = tmp_path / "index"
    build_index(src, index, embedder=fake_embedder)
    return src, index, records, fake_embedder


def test_changing_one_article_embeds_only_that_article(corpus):
    src, index, records, emb = corpus
    before = open_index(index, embedder=emb)
    old_ids = {d: [c.id for c in before.catalog.chunks_of([d])] for d in (r["id"] for r in records)}
    before.close()

    records[5]["text"] += " The harbour master said a new ferry would start in spring."
    save(src, records)
    calls = emb.calls
    stats = build_index(src, index, embedder=emb)
    after = open_index(index, embedder=emb)

    assert (stats.added, stats.updated, stats.removed) == (0, 1, 0)
    assert emb.calls - calls == embedded_texts(after, "art-05"), "only the changed article was embedded"
    assert stats.embedded_chunks == len(after.catalog.chunks_of(["art-05"]))
    for doc_id, ids in old_ids.items():
        now = [c.id for c in after.catalog.chunks_of([doc_id])]
        assert (now == ids) == (doc_id != "art-05"), doc_id
    assert "ferry" in after.document("art-05").text
    assert_citations_valid(after, "when will the new ferry start?")
    assert_citations_valid(after, "what did the central bank do to interest rates?")
    hits = after.search("harbour master new ferry spring", k=3)
    assert hits[0].doc_id == "art-05"
    after.close()


def test_unchanged_rebuild_embeds_nothing_and_full_embeds_everything(corpus):
    src, index, records, emb = corpus
    calls = emb.calls
    stats = build_index(src, index, embedder=emb)
    assert emb.calls == calls and (stats.added, stats.updated, stats.removed) == (0, 0, 0)

    idx = open_index(index, embedder=emb)
    total = sum(embedded_texts(idx, r["id"]) for r in records)
    idx.close()
    build_index(src, index, embedder=emb, full=True)
    assert emb.calls - calls == total


def test_added_and_deleted_articles(corpus):
    src, index, records, emb = corpus
    gone = records.pop(3)
    records.append(
        {
            "id": "art-new",
            "title": "New",
            "text": "A comet passed close to Earth on Tuesday night. Astronomers photographed its green tail.",
        }
    )
    save(src, records)
    calls = emb.calls
    stats = build_index(src, index, embedder=emb)
    idx = open_index(index, embedder=emb)
    assert (stats.added, stats.updated, stats.removed) == (1, 0, 1)
    assert emb.calls - calls == embedded_texts(idx, "art-new")
    assert not idx.catalog.chunks_of([gone["id"]])
    with pytest.raises(KeyError):
        idx.document(gone["id"])
    found = {p.doc_id for p in idx.search(gone["text"][:200], k=10)}
    assert gone["id"] not in found
    assert len(idx.store) == idx.manifest["counts"]["chunks"]
    assert_citations_valid(idx, "what did astronomers photograph?")
    idx.close()


def test_sentence_vectors_of_unchanged_articles_are_copied_not_recomputed(corpus):
    src, index, records, emb = corpus
    idx = open_index(index, embedder=emb)
    rows = {
        (s.doc_id, s.start, s.end): np.array(idx.sentence_matrix[s.row]) for s in idx.catalog.sentences_of(["art-01"])
    }
    idx.close()
    records[7]["text"] = records[7]["text"].replace("Item", "Entry")
    save(src, records)
    build_index(src, index, embedder=emb)
    idx = open_index(index, embedder=emb)
    for s in idx.catalog.sentences_of(["art-01"]):
        np.testing.assert_array_equal(np.array(idx.sentence_matrix[s.row]), rows[(s.doc_id, s.start, s.end)])
    idx.close()


def test_incremental_rebuild_on_an_ivf_store(tmp_path, fake_embedder, monkeypatch):
    import rag.stores.faiss

    monkeypatch.setattr(rag.stores.faiss, "EXACT_MAX", 10)
    src = tmp_path / "articles.jsonl"
    records = write_corpus(src, n=16)
    index = tmp_path / "index"
    build_index(src, index, embedder=fake_embedder)
    records[2]["text"] += " A late change about the ferry timetable."
    save(src, records)
    calls = fake_embedder.calls
    build_index(src, index, embedder=fake_embedder)
    idx = open_index(index, embedder=fake_embedder)
    assert idx.manifest["store"]["index_type"] == "ivf_sq8"
    assert fake_embedder.calls - calls == embedded_texts(idx, "art-02")
    assert len(idx.store) == idx.manifest["counts"]["chunks"]
    assert_citations_valid(idx, "what changed about the ferry timetable?")
    idx.close()


def test_full_flag_exists_on_the_command_line():
    args = build_parser().parse_args(["rebuild-index", "--full", "--source", "x", "--index", "y"])
    assert args.full is True
    assert build_parser().parse_args(["rebuild-index"]).full is False


def test_index_with_an_older_word_stemmer_is_refused_then_rebuilt_without_re_embedding(tmp_path, fake_embedder):
    from rag.errors import IndexMismatchError
    from rag.index import indexdir
    from rag.index.lexical import TOKENIZER

    src = tmp_path / "a.jsonl"
    write_corpus(src, 4)
    folder = tmp_path / "index"
    build_index(src, folder, embedder=fake_embedder)
    version = indexdir.current_version(folder)
    # What an older version wrote: the same files, but words stemmed another way (checksums kept consistent).
    meta = version / "lexical" / "lexical.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "tokenizer": "rag.lexical.terms"}))
    manifest = indexdir.read_manifest(version)
    manifest["files"].update(indexdir.checksums(version, ["lexical/lexical.json"]))
    indexdir.write_manifest(version, manifest)
    with pytest.raises(IndexMismatchError, match="rag rebuild-index"):
        open_index(folder, embedder=fake_embedder)
    stats = build_index(src, folder, embedder=fake_embedder)
    assert stats.embedded_chunks == 0 and stats.version != version.name
    idx = open_index(folder, embedder=fake_embedder)
    assert json.loads((idx.version_dir / "lexical" / "lexical.json").read_text())["tokenizer"] == TOKENIZER
    assert idx.query("Which bank raised interest rates?", abstain_threshold=0.0).citations
    idx.close()


def test_batches_and_the_reading_thread_change_nothing(tmp_path, fake_embedder, monkeypatch):
    """Articles stream through in batches; however they are cut, the index is the same, first build and rebuild."""
    import rag.index.build

    src = tmp_path / "articles.jsonl"
    records = write_corpus(src, n=9)

    def snapshot(index):
        idx = open_index(index, embedder=fake_embedder)
        try:
            chunks = sorted((c.id, c.doc_id, c.start, c.end, c.tokens) for c in idx.catalog.all_chunks())
            sents = sorted(
                (s.doc_id, s.start, s.end, idx.sentence_matrix.codes([s.row]).tobytes())
                for s in idx.catalog.sentences_of([r["id"] for r in records])
            )
            return chunks, sents, idx.search("interest rates", k=5), idx.manifest["documents"]
        finally:
            idx.close()

    build_index(src, tmp_path / "one", embedder=fake_embedder)
    monkeypatch.setattr(rag.index.build, "BATCH_DOCUMENTS", 2)
    build_index(src, tmp_path / "many", embedder=fake_embedder)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "many")

    records[4]["text"] += " A late goal settled it."
    gone = records.pop(7)
    save(src, records)
    stats = build_index(src, tmp_path / "many", embedder=fake_embedder)
    monkeypatch.setattr(rag.index.build, "BATCH_DOCUMENTS", 64)
    build_index(src, tmp_path / "one", embedder=fake_embedder)
    assert (stats.added, stats.updated, stats.removed) == (0, 1, 1)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "many")
    assert gone["id"] not in snapshot(tmp_path / "many")[3]


def test_an_error_while_reading_leaves_the_live_index(tmp_path, fake_embedder, monkeypatch):
    import rag.index.build

    src = tmp_path / "articles.jsonl"
    records = write_corpus(src, n=6)
    build_index(src, tmp_path / "ix", embedder=fake_embedder)
    records[2]["text"] += " Changed."
    save(src, records)
    monkeypatch.setattr(rag.index.build, "BATCH_DOCUMENTS", 1)
    real = rag.index.build._split
    seen = []

    def failing(docs, *a):
        seen.append(len(docs))
        raise RuntimeError("disk went away")

    monkeypatch.setattr(rag.index.build, "_split", failing)
    with pytest.raises(RuntimeError, match="disk went away"):
        build_index(src, tmp_path / "ix", embedder=fake_embedder)
    monkeypatch.setattr(rag.index.build, "_split", real)
    idx = open_index(tmp_path / "ix", embedder=fake_embedder)
    assert "Changed." not in idx.document("art-02").text and idx.manifest["counts"]["documents"] == 6
    idx.close()
    assert [p.name for p in (tmp_path / "ix").iterdir() if p.name.startswith(".tmp")] == []
