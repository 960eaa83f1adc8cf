"""CTIS dates (pure). The search answer and the summary fields write dates day-first (`DD/MM/YYYY`, API_NOTES
§1); the full record writes ISO dates and timestamps inside `authorizedApplication` (§2). Read as ISO, a
day-first date such as 09/07/2026 is rejected, but read the other way round 09/07 and 07/09 silently swap:
so every day-first date goes through `day_first_date`, the one place that knows the order.
"""

from __future__ import annotations

import re
from datetime import date

_DAY_FIRST = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$")
# A date, or a timestamp down to nanoseconds ("2025-09-16T03:39:42.531268872"), which datetime cannot read.
_ISO = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\s*$"
)


def day_first_date(value: object) -> date | None:
    """`"24/06/2026"` → date(2026, 6, 24); None when absent or empty; ValueError for anything else."""
    if value is None or value == "":
        return None
    match = _DAY_FIRST.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a DD/MM/YYYY date: {value!r}")
    day, month, year = (int(part) for part in match.groups())
    try:
        return date(year, month, day)
    except ValueError as exc:  # 31/02/2026, or a month-first 06/24/2026
        raise ValueError(f"not a DD/MM/YYYY date: {value!r} ({exc})") from None


def iso_date(value: object) -> date | None:
    """`"2026-12-09"` or `"2024-04-24T15:14:59.077"` (or nanoseconds) → the date; None when absent."""
    if value is None or value == "":
        return None
    match = _ISO.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not an ISO date: {value!r}")
    year, month, day = (int(part) for part in match.groups())
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"not an ISO date: {value!r} ({exc})") from None


def any_date(value: object) -> date | None:
    """A top-level date that comes day-first from search summaries and may come ISO from a raw retrieve."""
    if isinstance(value, str) and _DAY_FIRST.match(value):
        return day_first_date(value)
    return iso_date(value)
