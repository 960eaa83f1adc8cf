"""Pure change detection: the stored snapshot of a study and the newly received one in, `Change`s out.

Values are display strings: statuses as the registry's enum ("RECRUITING"), partial dates as their raw
text with the date type in brackets ("2025-06 (ESTIMATED)"), enrollment as "120 (ESTIMATED)", outcome
measures as "measure | time frame", one per line.

A changed primary outcome is its own kind (`primary_outcome`): outcome switching after a trial starts is
what reviewers most need to know. The other registry details (eligibility, design, arms, secondary
outcomes, titles) are `other` changes that name their field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
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
    "primary_outcome",
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
class StudyDetails:
    """The registry details change detection compares, as display values (see the format_* helpers).

    `primary_outcomes` first; the rest, in field order, become `other` changes naming the field.
    """

    primary_outcomes: tuple[str, ...]
    secondary_outcomes: tuple[str, ...]
    official_title: str | None
    brief_summary: str | None
    design: str | None
    arm_groups: tuple[str, ...]
    eligibility_criteria: str | None
    minimum_age: str | None
    maximum_age: str | None
    sex: str | None
    healthy_volunteers: str | None


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
    # None: not loaded. The store loads the stored details only for studies whose content hash moved.
    details: StudyDetails | None = None


def format_outcome(measure: str, time_frame: str | None) -> str:
    """ "EDSS", "Week 48" → "EDSS | Week 48"; the measure alone when no time frame is registered."""
    return f"{measure} | {time_frame}" if time_frame else measure


def format_design(
    allocation: str | None, intervention_model: str | None, masking: str | None, primary_purpose: str | None
) -> str | None:
    """ "allocation RANDOMIZED; model PARALLEL; masking QUADRUPLE; purpose TREATMENT" (stated parts only)."""
    parts = zip(
        ("allocation", "model", "masking", "purpose"),
        (allocation, intervention_model, masking, primary_purpose),
        strict=True,
    )
    return "; ".join(f"{name} {value}" for name, value in parts if value) or None


def format_arm(label: str, arm_type: str | None) -> str:
    return f"{label} ({arm_type})" if arm_type else label


def format_yes_no(value: bool | None) -> str | None:
    return None if value is None else "yes" if value else "no"


def details_from_rows(
    *,
    outcomes: Iterable[tuple[str, str, str | None]],
    arms: Iterable[tuple[str, str | None]],
    official_title: str | None,
    brief_summary: str | None,
    allocation: str | None,
    intervention_model: str | None,
    masking: str | None,
    primary_purpose: str | None,
    eligibility_criteria: str | None,
    minimum_age: str | None,
    maximum_age: str | None,
    sex: str | None,
    healthy_volunteers: bool | None,
) -> StudyDetails:
    """Details from plain values: outcomes as (role, measure, time frame) in order, arms as (label, type)."""
    outcomes = list(outcomes)
    return StudyDetails(
        primary_outcomes=tuple(format_outcome(m, t) for role, m, t in outcomes if role == "primary"),
        secondary_outcomes=tuple(format_outcome(m, t) for role, m, t in outcomes if role == "secondary"),
        official_title=official_title,
        brief_summary=brief_summary,
        design=format_design(allocation, intervention_model, masking, primary_purpose),
        arm_groups=tuple(format_arm(label, arm_type) for label, arm_type in arms),
        eligibility_criteria=eligibility_criteria,
        minimum_age=minimum_age,
        maximum_age=maximum_age,
        sex=sex,
        healthy_volunteers=format_yes_no(healthy_volunteers),
    )


def details_of(record: StudyRecord) -> StudyDetails:
    design = record.design
    return details_from_rows(
        outcomes=((o.role, o.measure, o.time_frame) for o in record.outcomes),
        arms=((arm.label, arm.type) for arm in record.arm_groups),
        official_title=record.official_title,
        brief_summary=record.brief_summary,
        allocation=design.allocation,
        intervention_model=design.intervention_model,
        masking=design.masking,
        primary_purpose=design.primary_purpose,
        eligibility_criteria=record.eligibility_criteria,
        minimum_age=record.minimum_age,
        maximum_age=record.maximum_age,
        sex=record.sex,
        healthy_volunteers=record.healthy_volunteers,
    )


def _lines(value: tuple[str, ...] | str | None) -> str | None:
    if isinstance(value, tuple):
        return "\n".join(value) or None
    return value


def diff_details(old: StudyDetails, new: StudyDetails) -> list[Change]:
    changes: list[Change] = []
    for item in fields(StudyDetails):
        before, after = getattr(old, item.name), getattr(new, item.name)
        if before != after:
            kind = "primary_outcome" if item.name == "primary_outcomes" else "other"
            changes.append(Change(kind, item.name, _lines(before), _lines(after)))
    return changes


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
        details=details_of(record),
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
    if old.details is not None and new.details is not None:
        changes.extend(diff_details(old.details, new.details))
    if not changes:
        changes.append(Change("other", None, None, None))
    return changes
