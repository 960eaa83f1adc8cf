"""Pure digest building: change events and trial rows in, a `DigestContent` out. No I/O.

Events are grouped into sections by what they mean to a reader:

    new trials · recruitment opened · recruitment closed / completed · terminated, suspended or withdrawn ·
    results posted · primary completion date moved · primary outcome changed · other changes ·
    registry history

The last section holds registry change events (from the record's version history, `tracker history`)
found in the period, each line dated by the registry's effective date; those a polled event already
stands for are left out by the caller, so one change is reported once.

One trial appears once per section (several events of the same section are merged into one item) and
may appear in several sections. Each section lists at most `max_per_section` trials, then "and K more".
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from tracker.changes import parse_date_value
from tracker.query import study_url

OPEN_STATUSES = frozenset({"RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION"})
CLOSED_STATUSES = frozenset({"ACTIVE_NOT_RECRUITING", "COMPLETED"})
STOPPED_STATUSES = frozenset({"TERMINATED", "SUSPENDED", "WITHDRAWN"})

# (key, title) in the order sections appear in the email.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("new", "New trials"),
    ("opened", "Recruitment opened"),
    ("closed", "Recruitment closed or completed"),
    ("stopped", "Terminated, suspended or withdrawn"),
    ("results", "Results posted"),
    ("primary_completion", "Primary completion date moved"),
    ("primary_outcome", "Primary outcome changed"),
    ("other", "Other changes"),
    ("registry", "Registry history (dated by the registry)"),
)
SECTION_TITLES = dict(SECTIONS)

_FIELD_LABELS = {
    "overall_status": "Status",
    "why_stopped": "Why stopped",
    "phases": "Phase",
    "start_date": "Start date",
    "primary_completion_date": "Primary completion",
    "completion_date": "Study completion",
    "enrollment": "Enrollment",
    "results_first_posted": "Results first posted",
    "primary_outcomes": "Primary outcome",
    "secondary_outcomes": "Secondary outcomes",
    "official_title": "Official title",
    "brief_summary": "Brief summary",
    "design": "Design",
    "arm_groups": "Arms",
    "eligibility_criteria": "Eligibility criteria",
    "minimum_age": "Minimum age",
    "maximum_age": "Maximum age",
    "sex": "Sex",
    "healthy_volunteers": "Healthy volunteers",
}
# Registry prose too long for a digest line: the line says what changed, the dashboard shows the text.
_LONG_TEXT_FIELDS = frozenset({"brief_summary", "eligibility_criteria", "secondary_outcomes", "arm_groups"})
_DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One trial in one section: what it is, and the lines saying what changed."""

    registration_id: str
    title: str
    url: str
    status: str | None
    phase: str | None  # the trial frame's phase_label ("Phase 2/3")
    sponsor: str | None
    changes: tuple[str, ...]
    why_stopped: str | None = None


@dataclass(frozen=True, slots=True)
class DigestSection:
    """A section: the items shown (at most the cap) and how many trials it has in all."""

    key: str
    title: str
    items: tuple[DigestItem, ...]
    total: int

    @property
    def more(self) -> int:
        """Trials left out by the per-section cap (the "and K more")."""
        return self.total - len(self.items)


@dataclass(frozen=True, slots=True)
class DigestContent:
    """Everything a digest says, before rendering.

    sections: only the non-empty ones, in SECTIONS order. event_ids: every change event the digest
    covers (shown or counted in "and K more"); the sent ledger records them so none is sent twice.
    """

    recipient: str
    subscription_id: int | None
    subscription_name: str | None
    filter_description: str
    period_start: datetime
    period_end: datetime
    sections: tuple[DigestSection, ...]
    trial_count: int
    event_ids: tuple[int, ...]
    dashboard_url: str | None = None
    unsubscribe_hint: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.sections

    @property
    def event_count(self) -> int:
        return len(self.event_ids)


def status_label(status: str | None) -> str | None:
    """RECRUITING → "Recruiting", NOT_YET_RECRUITING → "Not yet recruiting"."""
    if not status:
        return None
    return status.replace("_", " ").capitalize()


def section_of(event: Mapping[str, Any], stopped_trials: Collection[str] = ()) -> str:
    """The section key a change event belongs to.

    A new reason for stopping joins the "stopped" section when the same trial stopped in this digest.
    """
    kind = event.get("kind")
    if kind == "new":
        return "new"
    if kind == "results_posted":
        return "results"
    if kind == "primary_completion_date":
        return "primary_completion"
    if kind == "primary_outcome":
        return "primary_outcome"
    if kind == "status" and event.get("field") in (None, "overall_status"):
        old, new = _text(event.get("old_value")), _text(event.get("new_value"))
        if new in OPEN_STATUSES and new != old:
            return "opened"
        if new in CLOSED_STATUSES:
            return "closed"
        if new in STOPPED_STATUSES:
            return "stopped"
    if (
        kind == "status"
        and event.get("field") == "why_stopped"
        and event.get("registration_id") in stopped_trials
    ):
        return "stopped"
    return "other"


def describe_date_move(old: str | None, new: str | None) -> str:
    """How far a date moved: "3 months later", "12 days earlier"; "set to"/"removed" when a side is empty."""
    before, after = parse_date_value(old), parse_date_value(new)
    if before is None and after is None:
        return f"{old or '—'} → {new or '—'}"
    if before is None:
        return f"set to {new}"
    if after is None:
        return f"removed (was {old})"
    old_day, old_precision = before.first_day, before.precision
    new_day, new_precision = after.first_day, after.precision
    days = (new_day - old_day).days
    if "year" in (old_precision, new_precision):
        amount, unit = new_day.year - old_day.year, "year"
    elif old_precision == new_precision == "day" and abs(days) < 60:
        amount, unit = days, "day"
    elif old_precision == new_precision == "day":
        amount, unit = _round_half_away(days / _DAYS_PER_MONTH), "month"
    else:  # month precision on at least one side: count calendar months
        amount, unit = (new_day.year - old_day.year) * 12 + new_day.month - old_day.month, "month"
    if amount == 0:
        return f"{old} → {new} (same {unit})"
    direction = "later" if amount > 0 else "earlier"
    return f"{_amount(abs(amount), unit)} {direction} ({old} → {new})"


def _amount(amount: int, unit: str) -> str:
    """3 → "3 months"; 79 months → "6 years 7 months"."""
    if unit == "month" and amount >= 12:
        years, months = divmod(amount, 12)
        return _amount(years, "year") + (f" {_amount(months, 'month')}" if months else "")
    return f"{amount} {unit}{'' if amount == 1 else 's'}"


def describe_change(event: Mapping[str, Any], section: str) -> str:
    """One line saying what an event changed, worded for its section."""
    kind, field_name = event.get("kind"), _text(event.get("field"))
    old, new = _text(event.get("old_value")), _text(event.get("new_value"))
    if kind == "new":
        return "First seen" + (f" as {status_label(new)}" if new else "")
    if kind == "results_posted":
        return f"Results first posted {new}" if new and new != "yes" else "Results posted"
    if kind == "removed":
        return "No longer returned by the registry search"
    if kind == "primary_completion_date" and section == "primary_completion":
        return describe_date_move(old, new)
    if kind in ("start_date", "primary_completion_date", "completion_date"):
        label = _FIELD_LABELS.get(str(kind), str(kind))
        return f"{label}: {describe_date_move(old, new)}"
    if kind == "status" and field_name in (None, "overall_status"):
        return f"Status: {status_label(old) or '—'} → {status_label(new) or '—'}"
    if kind == "primary_outcome":
        return f"{_one_line(old) or '—'} → {_one_line(new) or '—'}"
    if field_name is None:
        return "Record updated (no tracked field changed)"
    if kind == "other" and field_name == "removed_at":
        return "Returned by the registry search again"
    if field_name in _LONG_TEXT_FIELDS:
        return f"{_FIELD_LABELS[field_name]} changed"
    label = _FIELD_LABELS.get(field_name, field_name.replace("_", " ").capitalize())
    return f"{label}: {old or '—'} → {new or '—'}"


def describe_registry_change(event: Mapping[str, Any]) -> str:
    """A registry event's line: the registry's date and version first, then what changed."""
    kind, old, new = event.get("kind"), _text(event.get("old_value")), _text(event.get("new_value"))
    effective = event.get("effective_date")
    when = effective.date().isoformat() if isinstance(effective, datetime) else _text(effective) or "—"
    prefix = f"{when} (version {event.get('version')}): "
    if kind == "primary_outcome_added":
        return prefix + f"Primary outcome added: {new}"
    if kind == "primary_outcome_removed":
        return prefix + f"Primary outcome removed: {old}"
    if kind == "primary_outcome_reworded":
        return prefix + f"Primary outcome reworded: {old} → {new}"
    section = "primary_completion" if kind == "primary_completion_date" else "other"
    line = describe_change(event, section)
    return prefix + ("Primary completion: " + line if section == "primary_completion" else line)


def build_digest(
    *,
    events: Iterable[Mapping[str, Any]],
    trials: Mapping[str, Mapping[str, Any]],
    recipient: str,
    period_start: datetime,
    period_end: datetime,
    filter_description: str,
    max_per_section: int,
    already_sent: Collection[int] = (),
    subscription_id: int | None = None,
    subscription_name: str | None = None,
    dashboard_url: str | None = None,
    unsubscribe_hint: str | None = None,
    registry_events: Iterable[Mapping[str, Any]] = (),
) -> DigestContent:
    """Group the events of the trials in `trials` (the subscriber's filtered trial rows, keyed by NCT ID).

    Baseline events, events already in `already_sent` and events of trials outside `trials` are left out.
    `registry_events` (non-baseline, not polled) go to the registry history section in effective-date order.
    Items within a section are ordered newest NCT ID first (roughly: newest registration first).
    """
    wanted = [
        event
        for event in sorted(events, key=lambda e: (_sort_time(e.get("detected_at")), int(e["id"])))
        if not bool(event.get("baseline"))
        and int(event["id"]) not in already_sent
        and event.get("registration_id") in trials
    ]
    stopped_trials = {str(event["registration_id"]) for event in wanted if section_of(event) == "stopped"}
    grouped: dict[str, dict[str, list[Mapping[str, Any]]]] = {key: {} for key, _ in SECTIONS}
    for event in wanted:
        grouped[section_of(event, stopped_trials)].setdefault(str(event["registration_id"]), []).append(event)
    for event in sorted(
        registry_events, key=lambda e: (_sort_time(e.get("effective_date")), int(e.get("version") or 0))
    ):
        if event.get("registration_id") in trials and not bool(event.get("baseline")):
            grouped["registry"].setdefault(str(event["registration_id"]), []).append(event)

    sections = []
    for key, title in SECTIONS:
        by_trial = grouped[key]
        if not by_trial:
            continue
        ordered = sorted(by_trial, reverse=True)
        items = tuple(
            _item(trials[registration_id], by_trial[registration_id], key)
            for registration_id in ordered[:max_per_section]
        )
        sections.append(DigestSection(key=key, title=title, items=items, total=len(by_trial)))
    trial_ids = {registration_id for section in grouped.values() for registration_id in section}
    return DigestContent(
        recipient=recipient,
        subscription_id=subscription_id,
        subscription_name=subscription_name,
        filter_description=filter_description,
        period_start=period_start,
        period_end=period_end,
        sections=tuple(sections),
        trial_count=len(trial_ids),
        event_ids=tuple(int(event["id"]) for event in wanted),
        dashboard_url=dashboard_url,
        unsubscribe_hint=unsubscribe_hint,
        counts={section.key: section.total for section in sections},
    )


def _item(trial: Mapping[str, Any], events: Sequence[Mapping[str, Any]], section: str) -> DigestItem:
    registration_id = str(trial.get("registration_id") or events[0]["registration_id"])
    title = _text(trial.get("brief_title")) or _text(trial.get("official_title")) or registration_id
    acronym = _text(trial.get("acronym"))
    if acronym and acronym not in title:
        title = f"{title} ({acronym})"
    lines: list[str] = []
    for event in events:
        if section == "stopped" and event.get("field") == "why_stopped":
            continue  # shown as the item's "Why stopped" line
        line = describe_registry_change(event) if section == "registry" else describe_change(event, section)
        if line not in lines:
            lines.append(line)
    return DigestItem(
        registration_id=registration_id,
        title=title,
        url=study_url(registration_id),
        status=status_label(_text(trial.get("overall_status"))),
        phase=_text(trial.get("phase_label")) if _text(trial.get("phase_label")) not in (None, "—") else None,
        sponsor=_text(trial.get("lead_sponsor_name")),
        changes=tuple(lines),
        why_stopped=_text(trial.get("why_stopped")) if section == "stopped" else None,
    )


def _one_line(text: str | None) -> str | None:
    """Multi-measure values (one per line) on one line, measures separated by " / "."""
    return " / ".join(part for part in text.splitlines() if part.strip()) if text else None


def _round_half_away(value: float) -> int:
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _sort_time(value: object) -> str:
    return value.isoformat() if isinstance(value, (datetime, date)) else str(value or "")


def _text(value: object) -> str | None:
    """A display string, or None for None / NaN / empty text (pandas rows carry NaN for missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None
