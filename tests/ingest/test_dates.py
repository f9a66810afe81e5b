"""Publication dates: the written forms read, normalized to ISO; filter bounds; nothing guessed."""

from __future__ import annotations

import datetime as dt

import pytest

from rag.ingest.dates import month_of, normalize_date, parse_bound


@pytest.mark.parametrize(
    "raw, iso",
    [
        ("2024-03-05", "2024-03-05"),
        ("2024-03-05T10:00:00Z", "2024-03-05T10:00:00+00:00"),
        ("2024-03-05T10:00:00+01:00", "2024-03-05T09:00:00+00:00"),
        ("2024-03-05 10:00", "2024-03-05T10:00:00"),
        ("Tue, 05 Mar 2024 10:00:00 GMT", "2024-03-05T10:00:00+00:00"),
        ("5 March 2024", "2024-03-05"),
        ("Tuesday 5th March, 2024", "2024-03-05"),
        ("March 5, 2024", "2024-03-05"),
        ("Mar. 5, 2024", "2024-03-05"),
        ("2024/3/5", "2024-03-05"),
        ("20240305", "2024-03-05"),
        (dt.date(2024, 3, 5), "2024-03-05"),
    ],
)
def test_common_news_forms_become_iso(raw, iso):
    assert normalize_date(raw) == iso


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "yesterday",
        "sometime last spring",
        "2024-02-30",
        "13/13/2024",
        None,
        20240305.5,
        "March 2024",
        "Smarch 5, 2024",
    ],
)
def test_unreadable_dates_stay_dateless(raw):
    assert normalize_date(raw) is None


def test_bounds_cover_whole_months_and_years():
    assert parse_bound("2024", "since") == "2024-01-01"
    assert parse_bound("2024", "until") == "2024-12-31"
    assert parse_bound("2024-02", "until") == "2024-02-29"
    assert parse_bound("2023-02", "until") == "2023-02-28"
    assert parse_bound("2024-03-05", "since") == "2024-03-05"
    assert parse_bound("5 March 2024", "until") == "2024-03-05"
    assert parse_bound("", "since") is None


@pytest.mark.parametrize("bad", ["last week", "2024-13", "2024-02-30", "24-03-05"])
def test_malformed_bound_names_the_value_and_the_form(bad):
    with pytest.raises(ValueError, match=r"--until .*YYYY-MM-DD"):
        parse_bound(bad, "until")


def test_month_of():
    assert month_of("2024-03-05T10:00:00+00:00") == "2024-03"
    assert month_of(None) is None
