"""Filters on dates, sections, outlets and articles: validated, applied inside the search, k results after filtering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.answer.filters import Filters, make_filters
from rag.errors import FilterError

from fakes import FakeEmbedder

NEWS = Path(__file__).parents[1] / "fixtures" / "news"
QUESTION = "What did the Chancellor say about the Budget?"


@pytest.fixture(scope="module")
def news_index(tmp_path_factory):
    from rag import build_index, open_index

    folder = tmp_path_factory.mktemp("news") / "index"
    emb = FakeEmbedder()
    build_index(NEWS, folder, embedder=emb)
    return open_index(folder, embedder=emb)


def test_make_filters_reads_dates_and_lists():
    f = make_filters(since="2024-03", until="2024", section="politics, business", outlet=["Reuters"], doc_ids="a,b")
    assert f == Filters("2024-03-01", "2024-12-31", ("politics", "business"), ("Reuters",), ("a", "b"), ())
    assert make_filters().empty and not f.empty


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"since": "last week"}, "--since 'last week' is not a date"),
        ({"until": "2024-02-30"}, "--until"),
        ({"since": "2024-05-01", "until": "2024-04-01"}, "after --until"),
    ],
)
def test_malformed_or_crossed_dates_are_clear_errors(kwargs, match):
    with pytest.raises(FilterError, match=match):
        make_filters(**kwargs)


def test_every_result_passes_the_filter(news_index):
    idx = news_index
    assert {p.doc_id for p in idx.search(QUESTION, 10, section="politics")} == {"budget-2024.html", "wire/002"}
    assert {p.doc_id for p in idx.search(QUESTION, 10, section="POLITICS", since="2024")} == {"budget-2024.html"}
    assert {p.doc_id for p in idx.search(QUESTION, 10, outlet="northwind wire")} == {"wire/001", "wire/002"}
    assert {p.doc_id for p in idx.search(QUESTION, 10, until="2023-12-31")} == {"harbour-ferry.md", "wire/002"}
    assert {p.doc_id for p in idx.search(QUESTION, 10, doc_ids=["wire/003"])} == {"wire/003"}
    # Dateless articles never pass a date bound.
    dated = idx.search(QUESTION, 10, since="1900")
    assert dated and all(p.date for p in dated)
    answer = idx.query(QUESTION, 5, section="business")
    assert answer.passages and all(p.section == "business" for p in answer.passages)
    assert all(c.section == "business" for c in answer.citations)


def test_k_results_come_back_after_filtering(news_index):
    # Two business articles: both come back at k=2 although others rank above them unfiltered.
    got = news_index.search("harbour museum lighthouse ferry", 2, section="business")
    assert len(got) == 2 and {p.section for p in got} == {"business"}


def test_the_store_receives_the_allowed_ids(news_index, monkeypatch):
    seen = []
    real = news_index.store.search

    def spy(queries, k, allowed_ids=None):
        seen.append(None if allowed_ids is None else set(np.asarray(allowed_ids).tolist()))
        return real(queries, k, allowed_ids)

    monkeypatch.setattr(news_index.store, "search", spy)
    news_index.search(QUESTION, 3, section="culture")
    wanted = set(news_index.catalog.chunk_ids_matching(sections=["culture"]))
    assert seen and seen[-1] == wanted


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"section": "sport"}, r"unknown section 'sport'; the index has: business, culture, Politics, Transport"),
        ({"outlet": "Daily Planet"}, "unknown outlet 'Daily Planet'"),
        ({"doc_ids": ["nope"]}, "no article with id 'nope'"),
        (
            {"section": "business", "until": "2023-01-01"},
            r"no indexed article matches the filter \(section business, until 2023-01-01\)",
        ),
        ({"sort": "oldest"}, "unknown sort 'oldest'"),
    ],
)
def test_unknown_values_are_clear_errors(news_index, kwargs, match):
    with pytest.raises(FilterError, match=match):
        news_index.search(QUESTION, 3, **kwargs)


def test_error_does_not_show_the_index_folder(news_index):
    with pytest.raises(FilterError) as err:
        news_index.search(QUESTION, 3, doc_ids=["nope"])
    assert str(news_index.index_dir) not in str(err.value)


def test_newest_sort_and_metadata_on_results(news_index):
    got = news_index.search(QUESTION, 6, sort="newest")
    dates = [p.date for p in got if p.date]
    assert dates == sorted(dates, reverse=True) and len(dates) == 4
    assert not any(p.date for p in got[len(dates) :])  # dateless last
    first = news_index.search(QUESTION, 1)[0]
    assert first.to_dict()["date"] and first.to_dict()["section"] and "outlet" in first.to_dict()


def test_citations_carry_date_section_outlet(news_index):
    answer = news_index.query(QUESTION, 5, abstain_threshold=0.0)
    assert answer.citations
    for c in answer.citations:
        doc = news_index.document(c.doc_id)
        d = c.to_dict()
        assert (d["date"], d["section"], d["outlet"]) == (doc.date, doc.section, doc.outlet)


def test_sources_filter_takes_the_path_shown_or_the_absolute_one(news_index):
    shown = {p.doc_id for p in news_index.search(QUESTION, 10, sources=["harbour-ferry.md"])}
    absolute = {p.doc_id for p in news_index.search(QUESTION, 10, sources=[str(NEWS.resolve() / "harbour-ferry.md")])}
    assert shown == absolute == {"harbour-ferry.md"}


def test_sections_and_outlets_merge_spellings(news_index):
    assert news_index.sections() == {"business": 2, "culture": 1, "Politics": 2, "Transport": 1}
    assert news_index.outlets()["Northwind Wire"] == 2


def test_time_cue_nudges_articles_of_that_time(news_index, monkeypatch):
    from rag.answer import engine as pipeline
    from rag.answer.recency import CUE_BONUS, TimeCue

    plain = {p.doc_id: p.score for p in news_index.search(QUESTION, 6)}
    monkeypatch.setattr(pipeline, "time_cue", lambda q: TimeCue(year=2023))
    cued = {p.doc_id: p.score for p in news_index.search(QUESTION, 6)}
    for doc_id, score in plain.items():
        in_2023 = (news_index.document(doc_id).date or "").startswith("2023")
        assert cued[doc_id] == pytest.approx(score + (CUE_BONUS if in_2023 else 0.0), abs=1e-3), doc_id
