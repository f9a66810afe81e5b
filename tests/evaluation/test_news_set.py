"""bench/news_calibration.jsonl: the hand-written news question set the confidence is calibrated and reported on
(docs/quality.md, "The news calibration set"), checked against the BBC articles it was written over, and its report
part's floor over the full BBC index."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import BBC, require_shared

SET = Path(__file__).parents[2] / "bench" / "news_calibration.jsonl"
FLOOR = json.loads((Path(__file__).parents[1] / "quality_floor.json").read_text(encoding="utf-8"))


def _questions() -> list[dict]:
    with open(SET, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_the_set_has_the_sizes_and_parts_it_promises():
    qs = _questions()
    kinds = Counter(q["kind"] for q in qs)
    assert kinds["answerable"] >= 300 and kinds["unreported"] >= 100 and kinds["offtopic"] >= 50, kinds
    assert len({q["id"] for q in qs}) == len(qs)
    parts = Counter((q["kind"], q["split"]) for q in qs)
    for kind in kinds:
        assert parts[(kind, "fit")] > 0 and parts[(kind, "report")] > 0, (kind, parts)
    # No article gives questions to both parts.
    by_doc: dict[str, set[str]] = {}
    for q in qs:
        if q["doc_id"]:
            by_doc.setdefault(q["doc_id"], set()).add(q["split"])
    assert all(len(s) == 1 for s in by_doc.values())


def test_answerable_questions_are_answered_by_a_sentence_past_the_lead():
    require_shared(BBC)
    with open(BBC, encoding="utf-8") as f:
        texts = {a["id"]: a["text"] for a in map(json.loads, f)}
    answerable = [q for q in _questions() if q["kind"] == "answerable"]
    assert len({q["doc_id"] for q in answerable}) == len(answerable)  # one question per article
    for q in answerable:
        text = texts[q["doc_id"]]
        at = text.find(q["sentence"])
        assert at > 0, q["id"]  # in the article, and not its first sentence
        assert q["answers"] and all(a in q["sentence"] for a in q["answers"]), q["id"]
        assert not any(a.lower() in q["question"].lower() for a in q["answers"]), q["id"]
    for q in _questions():
        if q["kind"] != "answerable":
            assert q["answers"] == [] and q["sentence"] is None
            assert (q["doc_id"] is None) == (q["kind"] == "offtopic")
            assert q["doc_id"] is None or q["doc_id"] in texts


@pytest.mark.model
def test_news_floor_on_the_report_part(bbc_index_dir, model_embedder):
    """The report part over the full BBC index, default settings (docs/quality.md, "Confidence on news")."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    from news_eval import ask_all, metrics

    from rag import open_index

    floor = FLOOR["news"]
    report = [q for q in _questions() if q["split"] == "report"]
    idx = open_index(bbc_index_dir, embedder=model_embedder)
    try:
        figures = metrics(ask_all(idx, report, idx.settings.abstain_threshold))
    finally:
        idx.close()
    for name, value in floor.items():
        if name != "about":
            assert figures[name] >= value, (name, figures[name], value)
