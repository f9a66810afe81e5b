"""Sentence answers: features, the packaged model, exact citations, abstention, duplicates, the optional reranker."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from conftest import SEED_QUESTION, UNANSWERABLE, WALTZ
from rag.answer import (
    ABSTAIN_TEXT,
    AnswerModel,
    compose_answer,
    confidence_features,
    load_model,
    score_candidates,
)
from rag.types import Document, Passage, Sentence

TEXT = (
    "The Rhine rises in the Swiss Alps. It reaches the North Sea in the Netherlands.\n\n"
    "Lisbon was struck by an earthquake in 1755. It was rebuilt by the Marquis of Pombal."
)
DOC = Document("d", TEXT, "Places", "places.txt", "h")


def _sentences(text_parts):
    out = []
    for part in text_parts:
        s = TEXT.index(part)
        out.append(Sentence("d", s, s + len(part), part))
    return out


def _inputs(fake_embedder):
    first = _sentences(["The Rhine rises in the Swiss Alps.", "It reaches the North Sea in the Netherlands."])
    second = _sentences(["Lisbon was struck by an earthquake in 1755.", "It was rebuilt by the Marquis of Pombal."])
    passages = []
    for group in (first, second):
        s, e = group[0].start, group[-1].end
        passages.append(Passage("d", "Places", "places.txt", s, e, TEXT[s:e], 0.5))
    vecs = [fake_embedder.embed_documents([x.text for x in g]) for g in (first, second)]
    return passages, [first, second], vecs


def test_packaged_model_is_data_with_every_feature(fake_embedder):
    raw = json.loads(resources.files("rag").joinpath("data", "answer_model.json").read_text())
    model = load_model()
    passages, sents, vecs = _inputs(fake_embedder)
    q = "When was Lisbon struck by an earthquake?"
    cands = score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q))
    assert set(model.weights) == set(raw["weights"]) == set(cands[0].features)
    conf = confidence_features(cands[0], cands[1], {"lisbon"}, lambda w: 1.0, q)
    assert set(model.confidence_weights) == set(conf)


def test_best_sentence_is_cited_with_exact_offsets(fake_embedder):
    passages, sents, vecs = _inputs(fake_embedder)
    q = "When was Lisbon struck by an earthquake?"
    ans = compose_answer(q, passages, sents, vecs, fake_embedder.embed_query(q), {"d": DOC},
                         abstain_threshold=0.0, max_sentences=3)
    assert not ans.abstained
    c = ans.citations[0]
    assert c.quote == "Lisbon was struck by an earthquake in 1755." and TEXT[c.start:c.end] == c.quote
    assert 0.0 <= ans.confidence <= 1.0


def test_answer_type_feature_prefers_a_year_for_when_questions(fake_embedder):
    passages, sents, vecs = _inputs(fake_embedder)
    q = "When was Lisbon rebuilt?"
    cands = score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q))
    by_text = {c.sentence.text: c.features for c in cands}
    assert by_text["Lisbon was struck by an earthquake in 1755."]["when_year"] == 1.0
    assert by_text["It was rebuilt by the Marquis of Pombal."]["when_year"] == 0.0
    # The pronoun-led sentence borrows its predecessor's overlap with the question; others do not.
    assert by_text["It was rebuilt by the Marquis of Pombal."]["prev_overlap"] > 0
    assert by_text["Lisbon was struck by an earthquake in 1755."]["prev_overlap"] == 0


def test_abstains_below_threshold_and_keeps_passages(fake_embedder):
    passages, sents, vecs = _inputs(fake_embedder)
    q = "What is the boiling point of mercury?"
    ans = compose_answer(q, passages, sents, vecs, fake_embedder.embed_query(q), {"d": DOC},
                         abstain_threshold=0.99, max_sentences=3)
    assert ans.abstained and ans.text == ABSTAIN_TEXT and not ans.citations and len(ans.passages) == 2


def test_confidence_falls_when_question_words_are_missing(fake_embedder):
    passages, sents, vecs = _inputs(fake_embedder)
    model = load_model()
    confs = {}
    for q in ("When was Lisbon struck by an earthquake?", "When was Lisbon struck by a tsunami and famine?"):
        cands = score_candidates(q, passages, sents, vecs, fake_embedder.embed_query(q))
        from rag.lexical import content_terms

        confs[q] = model.confidence(confidence_features(cands[0], cands[1], content_terms(q), lambda w: 1.0, q))
    assert confs["When was Lisbon struck by an earthquake?"] > confs["When was Lisbon struck by a tsunami and famine?"]


def test_repeated_sentence_is_quoted_once(fake_embedder):
    passages, sents, vecs = _inputs(fake_embedder)
    q = "When was Lisbon struck by an earthquake?"
    # The same passage twice (an overlapping chunk or a syndicated copy).
    cands = score_candidates(q, passages + passages[1:], sents + sents[1:], vecs + vecs[1:], fake_embedder.embed_query(q))
    texts = [c.sentence.text for c in cands]
    assert len(texts) == len(set(texts)) == 4


def test_reranker_reorders_candidates(fake_embedder):
    class Reverse:
        def predict(self, pairs, **kwargs):
            return [1.0 if "Pombal" in text else 0.0 for _, text in pairs]

    passages, sents, vecs = _inputs(fake_embedder)
    q = "When was Lisbon struck by an earthquake?"
    ans = compose_answer(q, passages, sents, vecs, fake_embedder.embed_query(q), {"d": DOC},
                         abstain_threshold=0.0, max_sentences=1, reranker=Reverse())
    assert "Pombal" in ans.citations[0].quote


def test_missing_reranker_folder_names_the_flag(tmp_path):
    from rag.answer import load_reranker
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="--reranker"):
        load_reranker(str(tmp_path / "nope"))


def test_additional_sentences_stay_within_the_margin(fake_embedder):
    passages, sents, vecs = _inputs(fake_embedder)
    q = "When was Lisbon struck by an earthquake?"
    tight = AnswerModel(load_model().weights, load_model().confidence_weights, 0.0)
    ans = compose_answer(q, passages, sents, vecs, fake_embedder.embed_query(q), {"d": DOC},
                         abstain_threshold=0.0, max_sentences=3, model=tight)
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
