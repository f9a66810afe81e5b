"""Composing answers: exact citations, abstention, duplicates quoted once, the margin, the optional reranker."""

from __future__ import annotations

import pytest

from rag.answer.compose import ABSTAIN_TEXT, compose_answer
from rag.answer.ranking import AnswerModel, load_model, rank_pool, score_candidates

from conftest import SEED_QUESTION, UNANSWERABLE, WALTZ
from places import DOC, TEXT, pool


def _answer(fake_embedder, q, passages, sents, vecs, **kwargs):
    ranked, cands = rank_pool(passages, score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q)))
    opts = {"k": len(passages), "abstain_threshold": 0.0, "max_sentences": 3, **kwargs}
    return compose_answer(q, ranked, cands, {"d": DOC}, **opts)


def test_best_sentence_is_cited_with_exact_offsets(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    ans = _answer(fake_embedder, "When was Lisbon struck by an earthquake?", passages, sents, vecs)
    assert not ans.abstained
    c = ans.citations[0]
    assert c.quote == "Lisbon was struck by an earthquake in 1755." and TEXT[c.start : c.end] == c.quote
    assert 0.0 <= ans.confidence <= 1.0
    assert c.score == pytest.approx(ans.confidence, abs=1e-4)
    assert all(later.score <= c.score for later in ans.citations[1:])


def test_answer_shows_the_ranked_passages_best_first(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    ans = _answer(fake_embedder, "When was Lisbon struck by an earthquake?", passages, sents, vecs)
    assert ans.passages[0].text.startswith("Lisbon")
    assert [p.score for p in ans.passages] == sorted((p.score for p in ans.passages), reverse=True)


def test_quotes_only_from_the_first_k_passages(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    ans = _answer(fake_embedder, "When was Lisbon struck by an earthquake?", passages, sents, vecs, k=1)
    assert len(ans.passages) == 1
    assert all(ans.passages[0].start <= c.start and c.end <= ans.passages[0].end for c in ans.citations)


def test_abstains_below_threshold_and_keeps_passages(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    ans = _answer(fake_embedder, "What is the boiling point of mercury?", passages, sents, vecs, abstain_threshold=0.99)
    assert ans.abstained and ans.text == ABSTAIN_TEXT and not ans.citations and len(ans.passages) == 2


def test_no_sentences_abstains_with_zero_confidence(fake_embedder):
    passages, _, _ = pool(fake_embedder)
    ans = compose_answer("Where is Lisbon?", passages, [], {"d": DOC}, k=2, abstain_threshold=0.0, max_sentences=3)
    assert ans.abstained and ans.confidence == 0.0 and len(ans.passages) == 2


def test_repeated_sentence_is_quoted_once(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    # The same passage twice (an overlapping chunk or a syndicated copy).
    ans = _answer(
        fake_embedder,
        "When was Lisbon struck by an earthquake?",
        passages + passages[1:],
        sents + sents[1:],
        vecs + vecs[1:],
        max_sentences=4,
        model=AnswerModel(load_model().weights, load_model().confidence_weights, 100.0),
    )
    quotes = [c.quote for c in ans.citations]
    assert len(quotes) == len(set(quotes)) == 4


def test_reranker_reorders_candidates(fake_embedder):
    class Reverse:
        def predict(self, pairs, **kwargs):
            return [1.0 if "Pombal" in text else 0.0 for _, text in pairs]

    passages, sents, vecs = pool(fake_embedder)
    ans = _answer(
        fake_embedder,
        "When was Lisbon struck by an earthquake?",
        passages,
        sents,
        vecs,
        max_sentences=1,
        reranker=Reverse(),
    )
    assert "Pombal" in ans.citations[0].quote


def test_missing_reranker_folder_names_the_flag(tmp_path):
    from rag.answer.compose import load_reranker
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="--reranker"):
        load_reranker(str(tmp_path / "nope"))


def test_additional_sentences_stay_within_the_margin(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    tight = AnswerModel(load_model().weights, load_model().confidence_weights, 0.0)
    ans = _answer(fake_embedder, "When was Lisbon struck by an earthquake?", passages, sents, vecs, model=tight)
    assert len(ans.citations) == 1


@pytest.mark.model
def test_seed_question_is_answered_by_the_waltz_sentence(seed_index):
    answer = seed_index.query(SEED_QUESTION)
    assert not answer.abstained
    assert WALTZ in answer.citations[0].quote
    doc = seed_index.document(answer.citations[0].doc_id)
    assert doc.text[answer.citations[0].start : answer.citations[0].end] == answer.citations[0].quote


@pytest.mark.model
def test_unanswerable_seed_question_abstains(seed_index):
    answer = seed_index.query(UNANSWERABLE)
    assert answer.abstained and not answer.citations


@pytest.mark.model
@pytest.mark.parametrize("question", ["What is the capital of Australia?", "Who won the 2004 FA Cup final?"])
def test_questions_about_subjects_the_seed_never_mentions_abstain(seed_index, question):
    answer = seed_index.query(question)
    assert answer.abstained and not answer.citations and answer.confidence < seed_index.settings.abstain_threshold


def test_short_answers_come_from_the_readings_with_exact_offsets(fake_embedder):
    from rag.answer.reading import read_candidates

    from fakes import FakeReader

    passages, sents, vecs = pool(fake_embedder)
    q = "When was Lisbon struck by an earthquake?"
    ranked, cands = rank_pool(passages, score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q)))
    readings = read_candidates(q, cands, [[s for s in group] for group in sents], FakeReader(), {"d": TEXT}, 4)
    ans = compose_answer(q, ranked, cands, {"d": DOC}, k=2, abstain_threshold=0.0, max_sentences=3, readings=readings)
    first = ans.citations[0]
    assert first.answer == "1755" and TEXT[first.answer_start : first.answer_end] == first.answer
    assert ans.short_answer == "1755" and ans.to_dict()["short_answer"] == "1755"
    assert ans.to_dict()["citations"][0]["answer_start"] == first.answer_start
    # A later quote shows a short answer only when the reader preferred its span to "no answer".
    for c in ans.citations[1:]:
        r = readings.get((c.doc_id, c.start))
        assert (c.answer is not None) == (r is not None and r.score > 0)


def test_no_readings_no_short_answer(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    ans = _answer(fake_embedder, "When was Lisbon struck by an earthquake?", passages, sents, vecs)
    assert all(c.answer is None and c.answer_start is None for c in ans.citations) and ans.short_answer is None


def _counting_reader(idx, calls: list[int]):
    """`idx` with its reader wrapped so that each call appends how many windows it was given to `calls`."""
    read = idx.reader.read

    def counting(question, windows, texts=None):
        calls.append(len(windows))
        return read(question, windows, texts)

    idx.reader = type("Counting", (), {"read": staticmethod(counting), "folder": idx.reader.folder})()
    return idx


@pytest.mark.model
def test_the_engine_reads_more_only_when_its_calibration_says_so(seed_index_dir, model_embedder):
    """The calibrated `more` reads a second batch for an unsure question; a count set in the settings is read as
    set, without the calibration's extra windows."""
    import dataclasses

    from rag import open_index
    from rag.config import Settings

    calls: list[int] = []
    idx = _counting_reader(open_index(seed_index_dir, embedder=model_embedder), calls)
    try:
        idx.blend = dataclasses.replace(idx.blend, candidates=2, more=2, more_below=float("inf"))
        idx.query(SEED_QUESTION)
        assert calls == [2, 2]
        calls.clear()
        idx.blend = dataclasses.replace(idx.blend, more_below=float("-inf"))
        idx.query(SEED_QUESTION)
        assert calls == [2]
    finally:
        idx.close()
    calls.clear()
    settings = Settings.load({"reader_candidates": 3})
    fixed = _counting_reader(open_index(seed_index_dir, embedder=model_embedder, settings=settings), calls)
    try:
        fixed.blend = dataclasses.replace(fixed.blend, more=2, more_below=float("inf"))
        fixed.query(SEED_QUESTION)
        assert calls == [3]
    finally:
        fixed.close()


@pytest.mark.model
def test_a_screening_read_never_reads_the_extra_windows(seed_index_dir, model_embedder):
    """`read=<floor>` (the watched questions' screen) reads the calibrated count only, however unsure."""
    import dataclasses

    from rag import open_index

    calls: list[int] = []
    idx = _counting_reader(open_index(seed_index_dir, embedder=model_embedder), calls)
    try:
        idx.blend = dataclasses.replace(idx.blend, candidates=2, more=2, more_below=float("inf"))
        idx.query(SEED_QUESTION, read=0.0)
        assert calls == [2]
    finally:
        idx.close()
