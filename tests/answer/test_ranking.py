"""Ranking by best sentence: features, the packaged model, passage order, and how the pool is re-indexed."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from rag.answer.ranking import (
    AnswerModel,
    Candidate,
    Signals,
    confidence_features,
    load_model,
    passage_order,
    rank_pool,
    score_candidates,
)
from rag.types import Passage, Sentence

from places import pool


def test_packaged_model_is_data_with_every_feature(fake_embedder):
    raw = json.loads(resources.files("rag").joinpath("data", "answer_model.json").read_text())
    model = load_model()
    passages, sents, vecs = pool(fake_embedder)
    q = "When was Lisbon struck by an earthquake?"
    cands = score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q))
    assert set(model.weights) == set(raw["weights"]) == set(cands[0].features)
    assert set(model.confidence_weights) == set(confidence_features(q, cands))
    assert set(model.presence_weights) == set(model.confidence_weights)
    assert raw["fitted_on"]["pool"] >= 10


def test_every_pair_is_scored_best_first_with_finite_features(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    q = "When was Lisbon struck by an earthquake?"
    cands = score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q))
    assert len(cands) == 4
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    assert all(v == v and abs(v) < 1e6 for c in cands for v in c.features.values())
    assert cands[0].sentence.text == "Lisbon was struck by an earthquake in 1755."


def test_neighbour_features(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    q = "When was Lisbon rebuilt?"
    cands = score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q))
    by_text = {c.sentence.text: c.features for c in cands}
    quake, pombal = (
        by_text["Lisbon was struck by an earthquake in 1755."],
        by_text["It was rebuilt by the Marquis of Pombal."],
    )
    assert pombal["anaphor"] == 1.0 and quake["anaphor"] == 0.0
    # The pronoun-led sentence sees its predecessor's overlap with the question; the first sentence has none.
    assert pombal["prev_overlap"] > 0 and quake["prev_overlap"] == 0
    # "Lisbon" is only in the predecessor: the window around the Pombal sentence covers the whole question.
    assert pombal["window_overlap"] == pytest.approx(1.0) and pombal["overlap"] < 1.0


def test_missing_question_words_lower_the_window_coverage(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    feats = {}
    for q in ("When was Lisbon struck by an earthquake?", "When was Lisbon struck by a tsunami and famine?"):
        cands = score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q))
        feats[q] = confidence_features(q, cands)
    full, partial = feats.values()
    assert full["window_missing_count"] == 0 and partial["window_missing_count"] > 0
    assert load_model().confidence(full) > load_model().confidence(partial)


def test_passage_order_follows_the_best_sentence():
    s = Sentence("d", 0, 1, "x")
    cands = [Candidate(s, 2, {}, 3.0), Candidate(s, 0, {}, 2.0), Candidate(s, 2, {}, 1.0)]
    # Passage 1 has no sentence: it goes last, retrieval order kept among such passages.
    assert passage_order(cands, 4) == [2, 0, 1, 3]


def test_rank_pool_reindexes_candidates_into_the_new_order(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    q = "When was Lisbon struck by an earthquake?"
    # The retriever put the Rhine passage first; the Lisbon sentence moves its passage up.
    signals = [Signals(0.9, 0.9, 1.0, 0, 0, 0), Signals(0.1, 0.1, 0.0, 1, 1, -1)]
    ranked, cands = rank_pool(
        passages, score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q), signals)
    )
    assert ranked[0].text.startswith("Lisbon")
    assert ranked[0].score == pytest.approx(cands[0].score, abs=1e-4)
    for c in cands:
        p = ranked[c.passage]
        assert p.start <= c.sentence.start and c.sentence.end <= p.end


def test_signals_change_the_scores(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    q = "Where does the Rhine rise?"
    qv = fake_embedder.embed_query(q)
    strong = score_candidates(
        q, passages, sents, vecs, qv, [Signals(0.9, 0.9, 1.0, 0, 0, 0), Signals(0.1, 0.1, 0.0, 1, 1, -1)]
    )
    weak = score_candidates(
        q, passages, sents, vecs, qv, [Signals(0.1, 0.1, 0.0, 1, 1, -1), Signals(0.9, 0.9, 1.0, 0, 0, 0)]
    )
    rhine = "The Rhine rises in the Swiss Alps."
    assert next(c.score for c in strong if c.sentence.text == rhine) > next(
        c.score for c in weak if c.sentence.text == rhine
    )


def test_zero_model_scores_zero(fake_embedder):
    passages, sents, vecs = pool(fake_embedder)
    q = "Where does the Rhine rise?"
    cands = score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q), model=AnswerModel({}, {}))
    assert all(c.score == 0.0 for c in cands)


def test_swapped_word_between_the_same_neighbours_counts_as_a_substitution():
    from rag.answer.ranking import _substitutions
    from rag.index.lexical import terms

    q = tuple(terms("What name comes from the English words Normans?"))
    assert _substitutions(q, tuple(terms("The name comes from the French words Normans."))) == 1
    assert _substitutions(q, tuple(terms("The name comes from the English words Normans."))) == 0
    # A missing word with no stand-in between the same neighbours is not a swap.
    assert _substitutions(q, tuple(terms("The name Normans is old."))) == 0


def test_antonym_swap_and_negation_mismatch_reach_the_confidence(fake_embedder):
    from rag.answer.ranking import _antonym_swap

    assert _antonym_swap("Which is the least important question?", "It is the most important question.")
    assert not _antonym_swap("Which is the most important question?", "It is the most important question.")
    # Both words of the pair in the question: nothing was swapped.
    assert not _antonym_swap("Is it the most or the least important?", "It is the most important question.")
    text = "It is the most important open question."
    passages = [Passage("d", "T", "t.txt", 0, len(text), text, 0.5)]
    sents = [[Sentence("d", 0, len(text), text)]]
    vecs = [fake_embedder.embed_documents([text])]
    feats = {}
    for q in ("What is the most important open question?", "What is not the least important open question?"):
        feats[q] = confidence_features(q, score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q)))
    plain, twisted = feats.values()
    assert plain["antonym_swap"] == 0 and twisted["antonym_swap"] == 1
    assert plain["negation_mismatch"] == 0 and twisted["negation_mismatch"] == 1
    assert load_model().confidence(plain) > load_model().confidence(twisted)


def test_confidence_is_the_product_of_the_two_models():
    feats = {"a": 1.0, "bias": 1.0}
    answers = AnswerModel({}, {"a": 2.0, "bias": -1.0})
    both = AnswerModel({}, {"a": 2.0, "bias": -1.0}, 1.0, {"a": -1.0, "bias": 0.0})
    p = 1 / (1 + np.exp(-1.0))
    assert answers.confidence(feats) == pytest.approx(p)
    assert both.confidence(feats) == pytest.approx(p * 1 / (1 + np.exp(1.0)))
