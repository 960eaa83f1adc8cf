"""Pure change detection: the stored snapshot of a study and the newly received one in, `Change`s out.

Values are display strings: statuses as the registry's enum ("RECRUITING"), partial dates as their raw
text with the date type in brackets ("2025-06 (ESTIMATED)"), enrollment as "120 (ESTIMATED)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from tracker.ctgov.parse import PartialDate, StudyRecord, parse_partial_date

CHANGE_KINDS = (
    "new",
    "status",
    "phase",
    "start_date",
    "primary_completion_date",
    "completion_date",
    "enrollment",
    "results_posted",
    "removed",
    "other",
)
DATE_FIELDS = ("start_date", "primary_completion_date", "completion_date")


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: kind (one of CHANGE_KINDS), the field it concerns, old and new display values."""

    kind: str
    field: str | None
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class StudySnapshot:
    """The normalised fields change detection compares; built from a stored row or a StudyRecord."""

    content_hash: str
    overall_status: str | None
    why_stopped: str | None
    phases: tuple[str, ...]
    start_date: str | None
    primary_completion_date: str | None
    completion_date: str | None
    enrollment: str | None
    has_results: bool
    results_first_posted: date | None


def format_partial_date(raw: str | None, date_type: str | None) -> str | None:
    if raw is None:
        return None
    return f"{raw} ({date_type})" if date_type else raw


_DATE_VALUE = re.compile(r"^\s*(\S+)(?:\s+\((\w+)\))?\s*$")


def parse_date_value(text: object) -> PartialDate | None:
    """The inverse of `format_partial_date`: "2025-06 (ESTIMATED)" → PartialDate; None if not a date."""
    match = _DATE_VALUE.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    try:
        return parse_partial_date({"date": match[1], "type": match[2]}, "date")
    except ValueError:
        return None


def format_enrollment(count: int | None, enrollment_type: str | None) -> str | None:
    if count is None:
        return None
    return f"{count} ({enrollment_type})" if enrollment_type else str(count)


def format_phases(phases: tuple[str, ...] | list[str]) -> str | None:
    return ", ".join(phases) or None


def _date_text(value: PartialDate | None) -> str | None:
    return format_partial_date(value.raw, value.type) if value else None


def snapshot_of(record: StudyRecord) -> StudySnapshot:
    return StudySnapshot(
        content_hash=record.content_hash,
        overall_status=record.overall_status,
        why_stopped=record.why_stopped,
        phases=record.phases,
        start_date=_date_text(record.start_date),
        primary_completion_date=_date_text(record.primary_completion_date),
        completion_date=_date_text(record.completion_date),
        enrollment=format_enrollment(record.enrollment_count, record.enrollment_type),
        has_results=record.has_results,
        results_first_posted=record.results_first_posted,
    )


def diff_snapshots(old: StudySnapshot | None, new: StudySnapshot) -> list[Change]:
    """Changes from `old` (None: never seen) to `new`; empty when the content is identical."""
    if old is None:
        return [Change("new", None, None, new.overall_status)]
    if old.content_hash == new.content_hash:
        return []
    changes: list[Change] = []
    if old.overall_status != new.overall_status:
        changes.append(Change("status", "overall_status", old.overall_status, new.overall_status))
    if old.why_stopped != new.why_stopped:
        changes.append(Change("status", "why_stopped", old.why_stopped, new.why_stopped))
    if tuple(old.phases) != tuple(new.phases):
        changes.append(Change("phase", "phases", format_phases(old.phases), format_phases(new.phases)))
    for name in DATE_FIELDS:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(Change(name, name, before, after))
    if old.enrollment != new.enrollment:
        changes.append(Change("enrollment", "enrollment", old.enrollment, new.enrollment))
    if new.has_results and not old.has_results:
        posted = new.results_first_posted.isoformat() if new.results_first_posted else "yes"
        changes.append(Change("results_posted", "results_first_posted", None, posted))
    if not changes:
        changes.append(Change("other", None, None, None))
    return changes
