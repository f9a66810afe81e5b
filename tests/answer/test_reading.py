"""The reader in the answer path: which windows are read, how margins re-score candidates, the reader's features."""

from __future__ import annotations

from rag.answer.ranking import Candidate, score_candidates
from rag.answer.reader import Reading
from rag.answer.reading import Blend, read_candidates, reader_features, rescore, windows_for

from fakes import FakeReader
from places import TEXT, pool


def _scored(fake_embedder, q):
    passages, sents, vecs = pool(fake_embedder)
    return sents, score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q))


def test_windows_hold_each_candidate_with_its_neighbours(fake_embedder):
    sents, cands = _scored(fake_embedder, "When was Lisbon struck by an earthquake?")
    windows = windows_for(cands, sents, 3)
    assert len(windows) == 3
    for w, c in zip(windows, [c for c in cands][:3]):
        assert w.sentences[w.focus] == c.sentence
        group = sents[c.passage]
        i = group.index(c.sentence)
        assert list(w.sentences) == group[max(0, i - 1) : i + 2]


def test_windows_skip_repeated_sentences(fake_embedder):
    sents, cands = _scored(fake_embedder, "Where does the Rhine rise?")
    doubled = list(cands) + list(cands)
    assert len(windows_for(doubled, sents, 10)) == len({(c.sentence.doc_id, c.sentence.start) for c in cands})


def test_read_candidates_keeps_each_sentences_best_reading(fake_embedder):
    sents, cands = _scored(fake_embedder, "When was Lisbon struck by an earthquake?")
    reader = FakeReader()
    readings = read_candidates("When was Lisbon struck by an earthquake?", cands, sents, reader, {"d": TEXT}, 2)
    assert reader.windows_read == 2
    lisbon = next(r for r in readings.values() if r.sentence.text.startswith("Lisbon"))
    assert TEXT[lisbon.answer_start : lisbon.answer_end] == "1755"


def test_an_unsure_reader_reads_more_windows_and_a_sure_one_does_not(fake_embedder):
    """With `more`, the next candidates' windows are read only when no reading of the first ones reaches the bar;
    the extra windows are the ones a larger count would have read, and nothing is read twice."""
    q = "When was Lisbon struck by an earthquake?"
    sents, cands = _scored(fake_embedder, q)
    best = max(r.score for r in read_candidates(q, cands, sents, FakeReader(), {"d": TEXT}, 2).values())
    sure = FakeReader()
    read_candidates(q, cands, sents, sure, {"d": TEXT}, 2, more=2, more_below=best)
    assert sure.windows_read == 2
    unsure = FakeReader()
    readings = read_candidates(q, cands, sents, unsure, {"d": TEXT}, 2, more=2, more_below=best + 0.5)
    assert unsure.windows_read == 4
    assert readings == read_candidates(q, cands, sents, FakeReader(), {"d": TEXT}, 4)


def test_rescore_lifts_what_the_reader_prefers(fake_embedder):
    sents, cands = _scored(fake_embedder, "Who rebuilt it?")
    target = next(c for c in cands if "Pombal" in c.sentence.text)
    readings = {
        (c.sentence.doc_id, c.sentence.start): Reading(
            c.sentence, 9.0 if c is target else -9.0, c.sentence.start, c.sentence.end
        )
        for c in cands[:3]
    }
    if (target.sentence.doc_id, target.sentence.start) not in readings:
        readings[(target.sentence.doc_id, target.sentence.start)] = Reading(
            target.sentence, 9.0, target.sentence.start, target.sentence.end
        )
    out = rescore(cands, readings, Blend(linear=1.0, reader=1.0, candidates=3))
    assert out[0].sentence == target.sentence
    assert [c.score for c in out] == sorted((c.score for c in out), reverse=True)
    unread = [c for c in out if (c.sentence.doc_id, c.sentence.start) not in readings]
    originals = {(c.sentence.start, c.passage): c.score for c in cands}
    # An unread sentence gets the lowest margin read: reading never lowers it below a read one with a worse margin.
    assert all(c.score == originals[(c.sentence.start, c.passage)] - 9.0 for c in unread)


def test_rescore_without_readings_keeps_the_order(fake_embedder):
    _, cands = _scored(fake_embedder, "Where does the Rhine rise?")
    assert rescore(cands, {}, Blend()) == list(cands)


def test_reader_features_read_the_quoted_sentence(fake_embedder):
    _, cands = _scored(fake_embedder, "Where does the Rhine rise?")
    best = cands[0]
    other = cands[1]
    readings = {
        (best.sentence.doc_id, best.sentence.start): Reading(
            best.sentence, 4.0, best.sentence.start, best.sentence.end
        ),
        (other.sentence.doc_id, other.sentence.start): Reading(
            other.sentence, -2.0, other.sentence.start, other.sentence.end
        ),
    }
    f = reader_features(best, readings)
    assert f["reader_top"] == f["reader_max"] > 0 and f["reader_lead"] > 0 and f["reader_positive"] == 1.0
    g = reader_features(Candidate(other.sentence, other.passage, other.features, 0.0), readings)
    assert g["reader_top"] < 0 < g["reader_max"]
    assert reader_features(best, {})["reader_positive"] == 0.0


def test_whole_passage_windows_read_each_passage_once():
    from rag.answer.ranking import Candidate
    from rag.answer.reading import windows_for
    from rag.types import Sentence

    a = [Sentence("d", i * 10, i * 10 + 9, f"Sentence{i}.") for i in range(5)]
    b = [Sentence("e", i * 10, i * 10 + 9, f"Other{i}.") for i in range(3)]
    cands = [Candidate(a[3], 0, {}, 3.0), Candidate(b[1], 1, {}, 2.0), Candidate(a[0], 0, {}, 1.0)]
    windows = windows_for(cands, [a, b], 3)
    assert [w.sentences for w in windows] == [tuple(a[2:5]), tuple(b[0:3]), tuple(a[0:2])]
    whole = windows_for(cands, [a, b], 3, whole=True)
    assert [(w.sentences, w.focus) for w in whole] == [(tuple(a), 3), (tuple(b), 1)]
