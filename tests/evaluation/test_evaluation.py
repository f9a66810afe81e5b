"""rag eval: loaders, metrics on hand-made results with known answers, both commands end to end, the quality floor."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from rag.evaluation.beir import load_beir, run_beir
from rag.evaluation.metrics import auroc, ndcg_at, normalize_answer
from rag.evaluation.squad import QuestionResult, format_report, load_squad, run_squad, squad_metrics

from conftest import SQUAD, require_shared

FIXTURES = Path(__file__).parents[1] / "fixtures"
TINY = FIXTURES / "squad_tiny"
BEIR = FIXTURES / "beir_tiny"
FLOOR = Path(__file__).parents[1] / "quality_floor.json"


def test_load_squad_maps_answers_to_document_offsets():
    data = load_squad(TINY)
    assert set(data.articles) == {"Rivers", "Cities"}
    text = data.articles["Cities"][1]
    assert "\n\nLisbon is the capital" in text  # paragraphs joined by a blank line
    q4 = next(q for q in data.questions if q.id == "q4")
    ((s, e),) = q4.answers
    assert text[s:e] == "1755" and s > text.index("Lisbon")
    assert [q.answerable for q in data.questions] == [True, True, True, True, False, False]


def test_load_squad_split_limit_and_articles():
    assert {q.doc_id for q in load_squad(TINY, split="fit").questions} == {"Rivers"}
    assert {q.doc_id for q in load_squad(TINY, split="holdout").questions} == {"Cities"}
    assert len(load_squad(TINY, limit=3).questions) == 3
    only = load_squad(TINY, articles=["Cities"])
    assert set(only.articles) == {"Cities"} and all(q.doc_id == "Cities" for q in only.questions)


def test_load_squad_rejects_a_wrong_gold_offset(tmp_path):
    from rag.errors import SourceError

    (tmp_path / "articles.jsonl").write_text((TINY / "articles.jsonl").read_text())
    rows = [json.loads(x) for x in (TINY / "questions.jsonl").read_text().splitlines()]
    rows[0]["answers"][0]["answer_start"] += 1
    (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(SourceError, match="does not match"):
        load_squad(tmp_path)


def test_normalize_answer_follows_squad():
    assert normalize_answer("The  Swiss Alps!") == "swiss alps"
    assert normalize_answer("an Apple, a day") == "apple day"


def test_auroc_matches_pair_counting():
    rng = random.Random(3)
    pos = [rng.choice([0.1, 0.2, 0.5, 0.7, 0.9]) for _ in range(30)]
    neg = [rng.choice([0.1, 0.3, 0.5, 0.6]) for _ in range(25)]
    pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    assert auroc(pos, neg) == pytest.approx(pairs / (len(pos) * len(neg)))
    assert auroc([1, 2], [0]) == 1.0 and auroc([0], [1, 2]) == 0.0


def test_ndcg_known_values():
    assert ndcg_at(["a", "b"], {"a": 1}) == 1.0
    assert ndcg_at(["b", "a"], {"a": 1}) == pytest.approx(1 / 1.5849625)  # 1/log2(3)
    assert ndcg_at(["x"], {"a": 2}) == 0.0


def _result(q, passages, quote, span, conf, abstained):
    return QuestionResult(q, passages, quote, [quote] if quote else [], span, conf, abstained, 0.01)


def test_squad_metrics_on_hand_results():
    data = load_squad(TINY)
    q = {x.id: x for x in data.questions}
    cities = data.articles["Cities"][1]
    s4 = cities.index("The city was struck")
    e4 = cities.index("1755.") + 5
    results = [
        # q1: answer in the 2nd passage; the quote contains it but the span is elsewhere -> answer yes, span no.
        _result(q["q1"], ["The Danube...", "It rises in the Swiss Alps."], "in the Swiss Alps", (0, 5), 0.9, False),
        # q2: answer in the 1st passage, no quote (abstained) -> hit@1, answer no.
        _result(q["q2"], ["It ends at the Black Sea."], None, None, 0.2, True),
        # q3: never retrieved; the number in the quote differs.
        _result(q["q3"], ["Lisbon", "x", "y", "z", "w", "v"], "About 1.9 million people", (0, 10), 0.6, False),
        # q4: span covers the gold offsets exactly.
        _result(q["q4"], ["The city was struck by an earthquake in 1755."], cities[s4:e4], (s4, e4), 0.8, False),
        _result(q["q5"], ["Lisbon"], "x", (0, 1), 0.7, False),
        _result(q["q6"], ["Rhine"], None, None, 0.1, True),
    ]
    m = squad_metrics(results)
    assert (m["answerable"], m["unanswerable"]) == (3 + 1, 2)
    assert m["hit@1"] == 2 / 4 and m["hit@5"] == 3 / 4 and m["hit@10"] == 3 / 4
    assert m["mrr@10"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert m["answer@1"] == 2 / 4 and m["span@1"] == 1 / 4
    assert m["answered"] == 3 / 4 and m["abstain_answerable"] == 1 / 4
    assert m["abstain_unanswerable"] == 1 / 2
    # answerable confidences 0.9, 0.2, 0.6, 0.8 against 0.7, 0.1: 6 of 8 pairs ranked right.
    assert m["abstain_auroc"] == pytest.approx(6 / 8)
    assert "abstain_absent" not in m  # nobody asked with the article left out


def test_absent_article_metrics_on_hand_results():
    from dataclasses import replace

    data = load_squad(TINY)
    q = {x.id: x for x in data.questions}
    results = [
        replace(_result(q["q1"], ["x"], None, None, 0.9, False), absent_confidence=0.1, absent_abstained=True),
        replace(_result(q["q2"], ["x"], None, None, 0.4, False), absent_confidence=0.5, absent_abstained=False),
        replace(_result(q["q4"], ["x"], None, None, 0.8, False), absent_confidence=0.2, absent_abstained=True),
        _result(q["q6"], ["x"], None, None, 0.1, True),
    ]
    m = squad_metrics(results)
    assert m["abstain_absent"] == 2 / 3
    # present 0.9, 0.4, 0.8 against absent 0.1, 0.5, 0.2: 8 of 9 pairs ranked right.
    assert m["absent_auroc"] == pytest.approx(8 / 9)


def test_answer_match_is_by_whole_words():
    data = load_squad(TINY)
    q3 = next(x for x in data.questions if x.id == "q3")
    m = squad_metrics([_result(q3, ["about 11.8 millions"], "11.8 millions", None, 0.5, False)])
    assert m["hit@1"] == 0.0 and m["answer@1"] == 0.0


def test_run_squad_end_to_end_with_fake_embedder(fake_embedder, tmp_path):
    report = run_squad(TINY, baseline=True, embedder=_BaselineReady(fake_embedder), work=tmp_path / "w")
    ours, base = report["ours"], report["baseline"]
    assert report["data"]["questions"] == 6 and report["data"]["articles"] == 2
    assert report["data"]["folder"] == str(TINY)  # the data folder, not the work folder
    for m in (ours, base):
        assert 0.0 <= m["answer@1"] <= m["answer@any"] <= 1.0
        assert m["hit@1"] <= m["hit@5"] <= m["hit@10"]
        assert m["latency_p50_ms"] > 0
    # Every question's answer sits in its own short paragraph, so retrieval finds all of them.
    assert ours["hit@5"] == 1.0 and base["hit@5"] == 1.0
    # Two articles: each answerable question is also asked with its article left out, by both systems.
    assert 0.0 <= ours["abstain_absent"] <= 1.0 and 0.0 <= base["abstain_absent"] <= 1.0
    assert "abstain_absent" in format_report(report) and "absent_auroc" in format_report(report)
    # Reusing the work folder does not rebuild and gives the same figures.
    again = run_squad(TINY, embedder=fake_embedder, work=tmp_path / "w")
    assert again["ours"]["answer@1"] == ours["answer@1"]


class _BaselineReady:
    """The fake embedder with the `.model.encode` the baseline calls, like a sentence-transformers model."""

    def __init__(self, fake):
        self._fake = fake
        self.model = self

    def __getattr__(self, name):
        return getattr(self._fake, name)

    def encode(self, texts, **kwargs):
        import numpy as np

        return np.stack([self._fake.embed_query(t) for t in texts])


def test_run_beir_on_tiny_fixture(fake_embedder, tmp_path):
    corpus, queries, qrels = load_beir(BEIR)
    assert len(corpus) == 4 and set(queries) == {"q1", "q2", "q3"}  # q9 has no judgement
    assert qrels["q3"] == {"d4": 2, "d1": 1}
    report = run_beir(BEIR, embedder=fake_embedder, work=tmp_path / "b")
    assert report["data"]["folder"] == str(BEIR)
    assert report["ours"]["recall@100"] == 1.0  # four documents: all are retrieved
    assert 0.5 < report["ours"]["ndcg@10"] <= 1.0


def test_cli_eval_json(fake_embedder, tmp_path, monkeypatch, capsys):
    from rag.cli import commands as cli
    from rag.index import embedding

    monkeypatch.setattr(embedding, "make_embedder", lambda *a, **k: fake_embedder)
    assert cli.main(["eval", "squad", str(TINY), "--json", "--limit", "4", "--work", str(tmp_path / "c")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["questions"] == 4 and "hit@5" in report["ours"]
    assert cli.main(["eval", "beir", str(BEIR), "--work", str(tmp_path / "d")]) == 0
    assert "ndcg@10" in capsys.readouterr().out


@pytest.mark.shared
@pytest.mark.model
@pytest.mark.slow
def test_quality_floor_on_two_articles(model_embedder, tmp_path):
    """answer@1 and hit@5 on two fixed SQuAD articles stay above the recorded floor."""
    require_shared(SQUAD)
    floor = json.loads(FLOOR.read_text())
    report = run_squad(SQUAD, articles=floor["articles"], embedder=model_embedder, work=tmp_path / "q")
    for metric, minimum in floor["floor"].items():
        assert report["ours"][metric] >= minimum, f"{metric} fell to {report['ours'][metric]:.3f} (floor {minimum})"


def test_short_answer_scores_follow_the_official_squad_rules():
    from rag.evaluation.metrics import short_answer_scores

    assert short_answer_scores("the Normans", ["Normans"]) == (1.0, 1.0)
    em, f1 = short_answer_scores("in the 10th century", ["10th century", "the 10th and 11th centuries"])
    assert em == 0.0 and f1 == pytest.approx(2 * (2 / 3) * 1.0 / (2 / 3 + 1.0))
    assert short_answer_scores(None, ["x"]) == (0.0, 0.0)
    assert short_answer_scores("Paris", []) == (0.0, 0.0)
    assert short_answer_scores("a b b", ["b"])[1] == pytest.approx(2 * (1 / 2) * 1 / (1 / 2 + 1))
