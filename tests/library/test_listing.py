"""The Library listing: search, filters, natural sort, pages, counts."""

from __future__ import annotations

import pytest

from rag.errors import FilterError
from rag.index.catalog import DocumentInfo
from rag.library.listing import list_documents, natural_key


def _info(
    i: str, title: str, section: str | None = None, date: str | None = None, outlet: str | None = None, chunks: int = 1
) -> DocumentInfo:
    return DocumentInfo(i, title, f"a.jsonl#{i}", None, outlet, None, date, "h", chunks, section=section)


DOCS = [
    _info("business/10", "Oil prices fall", "business", "2024-02-01", chunks=3),
    _info("business/2", "Time Warner profit rises", "business", "2024-03-05"),
    _info("business/1", "Ad sales boost Time Warner profit", "Business", None),
    _info("sport/100", "Cup final tonight", "sport", "2023-12-31", outlet="Wire"),
    _info("sport/9", "Runner breaks record", "sport", "2024-03-20", chunks=2),
]


def test_natural_key_orders_numbers_by_value():
    assert sorted(["a#10", "a#9", "a#100", "a#1"], key=natural_key) == ["a#1", "a#9", "a#10", "a#100"]
    assert sorted(["business/10", "business/2", "Business/1"], key=natural_key) == [
        "Business/1",
        "business/2",
        "business/10",
    ]


def test_search_words_any_case_in_title_id_or_section():
    assert [d.id for d in list_documents(DOCS, query="time warner").rows] == ["business/1", "business/2"]
    assert [d.id for d in list_documents(DOCS, query="SPORT/9").rows] == ["sport/9"]
    assert list_documents(DOCS, query="nothing like this").total == 0


def test_filters_sorts_and_pages():
    biz = list_documents(DOCS, section="business")
    assert biz.total == 3 and biz.by_section == {"business": 3}
    by_date = list_documents(DOCS, sort="date", descending=True)
    assert [d.id for d in by_date.rows] == ["sport/9", "business/2", "business/10", "sport/100", "business/1"]
    assert [d.id for d in list_documents(DOCS, sort="passages", descending=True).rows][:2] == ["business/10", "sport/9"]
    assert [d.id for d in list_documents(DOCS, outlet="wire").rows] == ["sport/100"]
    pages = [list_documents(DOCS, per_page=2, page=p) for p in (1, 2, 3, 9)]
    assert [[d.id for d in p.rows] for p in pages] == [
        ["business/1", "business/2"],
        ["business/10", "sport/9"],
        ["sport/100"],
        ["sport/100"],
    ]
    assert pages[-1].page == pages[-1].pages == 3


def test_counts_by_section_and_month():
    listing = list_documents(DOCS)
    assert listing.by_section == {"business": 3, "sport": 2}
    assert listing.by_month == {"2024-03": 2, "2024-02": 1, "2023-12": 1, "(none)": 1}


def test_unknown_sort_is_an_error():
    with pytest.raises(FilterError, match="cannot sort the articles by 'colour'"):
        list_documents(DOCS, sort="colour")
