"""Publication dates: the forms articles write them in, normalized to ISO 8601, and date bounds for filters.

An article's date is kept twice: `Document.date` is ISO ("2024-03-05", or "2024-03-05T10:00:00+00:00" when the
article gives a time) so that dates compare as strings, and `Document.date_raw` is the text as the article wrote it.
A date that cannot be read leaves the article dateless: nothing is ever guessed or filled in with today.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

__all__ = ["normalize_date", "parse_bound", "month_of", "MONTHS"]

MONTHS = {
    name: n
    for n, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?$", re.IGNORECASE
)
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_SLASHED = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$")
_MONTH = r"([A-Za-z]{3,9})\.?"
# "5 March 2024", "5th March, 2024", "Tuesday 5 March 2024"
_DAY_MONTH_YEAR = re.compile(rf"^(?:[A-Za-z]+,?\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH},?\s+(\d{{4}})\b")
# "March 5, 2024", "Tue, March 5 2024"
_MONTH_DAY_YEAR = re.compile(rf"^(?:[A-Za-z]+,?\s+)?{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b")
_WEEKDAY_PREFIX = re.compile(r"^[A-Za-z]{3,9},\s+\d")


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def normalize_date(raw: object) -> str | None:
    """The ISO 8601 form of a publication date, or None when it cannot be read.

    Reads ISO 8601 ("2024-03-05", "2024-03-05T10:00:00Z", "2024-03-05 10:00"), RFC 2822 as in feeds
    ("Tue, 05 Mar 2024 10:00:00 GMT"), "5 March 2024", "March 5, 2024", "2024/03/05", "20240305", and date objects
    (YAML front matter gives those). A time is converted to UTC; a date alone stays a date.

    Example:
        >>> normalize_date("March 5, 2024")
        '2024-03-05'
        >>> normalize_date("2024-03-05T10:00:00+01:00")
        '2024-03-05T09:00:00+00:00'
    """
    if isinstance(raw, datetime):
        return _from_datetime(raw)
    if isinstance(raw, date):
        return raw.isoformat()
    if not isinstance(raw, str):
        return None
    text = " ".join(raw.split())
    if not text or len(text) > 80:
        return None
    m = _ISO.match(text)
    if m:
        y, mo, d, hh, mm, ss, tz = m.groups()
        day = _valid(int(y), int(mo), int(d))
        if day is None:
            return None
        if hh is None:
            return day.isoformat()
        try:
            stamp = datetime.fromisoformat(f"{y}-{mo}-{d}T{hh}:{mm}:{ss or '00'}{_tz(tz)}")
        except ValueError:
            return None
        return _from_datetime(stamp)
    for pattern in (_COMPACT, _SLASHED):
        m = pattern.match(text)
        if m:
            day = _valid(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            return day.isoformat() if day else None
    if _WEEKDAY_PREFIX.match(text):
        try:
            return _from_datetime(parsedate_to_datetime(text))
        except (TypeError, ValueError, IndexError):
            pass
    m = _DAY_MONTH_YEAR.match(text)
    if m:
        month = MONTHS.get(m.group(2).lower())
        day = _valid(int(m.group(3)), month, int(m.group(1))) if month else None
        return day.isoformat() if day else None
    m = _MONTH_DAY_YEAR.match(text)
    if m:
        month = MONTHS.get(m.group(1).lower())
        day = _valid(int(m.group(3)), month, int(m.group(2))) if month else None
        return day.isoformat() if day else None
    return None


def _tz(tz: str | None) -> str:
    if not tz:
        return ""
    if tz.upper() == "Z":
        return "+00:00"
    return tz if ":" in tz else f"{tz[:3]}:{tz[3:]}"


def _from_datetime(stamp: datetime) -> str:
    if stamp.tzinfo is None:
        return stamp.replace(microsecond=0).isoformat()
    return stamp.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_bound(value: str | None, name: str) -> str | None:
    """A filter bound ("2024-03-05", or "2024-03" / "2024" for a whole month or year) as "YYYY-MM-DD".

    `name` is "since" or "until": a month or year given alone starts ("since") or ends ("until") on its first or
    last day.

    Raises:
        ValueError: the value is not such a date; the message names it and the expected form.
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?", text)
    if m and (m.group(3) is None or m.group(2) is not None):
        year = int(m.group(1))
        if m.group(3):
            day = _valid(year, int(m.group(2)), int(m.group(3)))
        elif m.group(2):
            month = int(m.group(2))
            if not 1 <= month <= 12:
                day = None
            elif name == "since":
                day = date(year, month, 1)
            else:
                day = date(year, month, calendar.monthrange(year, month)[1])
        else:
            day = date(year, 1, 1) if name == "since" else date(year, 12, 31)
        if day is not None:
            return day.isoformat()
    normal = normalize_date(text)
    if normal is not None:
        return normal[:10]
    raise ValueError(f"--{name} {text!r} is not a date; write it as YYYY-MM-DD (or YYYY-MM, or YYYY)")


def month_of(iso: str | None) -> str | None:
    """ "YYYY-MM" of an ISO date, None for a dateless article."""
    return iso[:7] if iso and len(iso) >= 7 else None
