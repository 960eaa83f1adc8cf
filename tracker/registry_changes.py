"""Pure derivation of registry change events from consecutive versions, and the per-trial history summary.

A `VersionState` is what is known of one version: always its date and status (from the index), and the
dated fields once its record was fetched. Events between two versions come from the index (status) or,
when both records are fetched, from their fields (primary completion date, enrolment, primary outcomes,
results). Values are the same display strings as polled `change_events` ("2025-06 (ESTIMATED)",
"120 (ESTIMATED)"), so a polled change and the same change found in history can be matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tracker.changes import format_enrollment, format_partial_date
from tracker.ctgov.parse import PartialDate

# Kinds shared with polled change events (tracker.changes) and the history-only outcome kinds.
POLLED_KINDS = ("status", "primary_completion_date", "enrollment", "results_posted")
OUTCOME_KINDS = ("primary_outcome_added", "primary_outcome_removed", "primary_outcome_reworded")
REGISTRY_KINDS = (*POLLED_KINDS, *OUTCOME_KINDS)


@dataclass(frozen=True, slots=True)
class VersionState:
    version: int
    date: date
    status: str | None
    fetched: bool = False
    start_date: PartialDate | None = None
    primary_completion_date: PartialDate | None = None
    enrollment_count: int | None = None
    enrollment_type: str | None = None
    primary_outcomes: tuple[str, ...] = ()  # plain text, see history_parse.outcome_texts
    has_results: bool = False
    results_first_posted: date | None = None


@dataclass(frozen=True, slots=True)
class RegistryChange:
    version: int  # the version that made the change
    effective_date: date  # the registry's date of that version
    kind: str
    field: str
    old: str | None
    new: str | None
    days: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HistorySummary:
    versions: int
    pcd_changes: int | None  # None: the version records are not backfilled
    pcd_total_slip_days: int | None
    primary_outcome_changed_after_start: bool | None  # None: unknown
    primary_outcome_changed_on: date | None


def derive_changes(states: Sequence[VersionState]) -> list[RegistryChange]:
    """Changes between consecutive versions (sorted by version; a pair with a gap between is skipped)."""
    ordered = sorted(states, key=lambda state: state.version)
    changes: list[RegistryChange] = []
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.version != before.version + 1:
            continue
        changes.extend(_pair_changes(before, after))
    return changes


def _pair_changes(before: VersionState, after: VersionState) -> list[RegistryChange]:
    found: list[RegistryChange] = []

    def add(kind: str, name: str, old: str | None, new: str | None, **extra: Any) -> None:
        found.append(RegistryChange(after.version, after.date, kind, name, old, new, **extra))

    if before.status and after.status and before.status != after.status:
        add("status", "overall_status", before.status, after.status)
    if not (before.fetched and after.fetched):
        return found
    old_pcd, new_pcd = before.primary_completion_date, after.primary_completion_date
    if _date_key(old_pcd) != _date_key(new_pcd):
        days, detail = pcd_move(old_pcd, new_pcd)
        add(
            "primary_completion_date",
            "primary_completion_date",
            _date_text(old_pcd),
            _date_text(new_pcd),
            days=days,
            detail=detail,
        )
    old_enrollment = format_enrollment(before.enrollment_count, before.enrollment_type)
    new_enrollment = format_enrollment(after.enrollment_count, after.enrollment_type)
    if old_enrollment != new_enrollment:
        add("enrollment", "enrollment", old_enrollment, new_enrollment)
    if after.has_results and not before.has_results:
        posted = after.results_first_posted.isoformat() if after.results_first_posted else "yes"
        add("results_posted", "results_first_posted", None, posted)
    for kind, position, old, new in outcome_changes(before.primary_outcomes, after.primary_outcomes):
        add(kind, f"primary_outcomes[{position}]", old, new)
    return found


def pcd_move(old: PartialDate | None, new: PartialDate | None) -> tuple[int | None, dict[str, Any]]:
    """Days the primary completion date moved (+ later, − earlier) and what kind of move it was."""
    detail: dict[str, Any] = {
        "from_type": old.type if old else None,
        "to_type": new.type if new else None,
        "actualised": bool(old and new and old.type == "ESTIMATED" and new.type == "ACTUAL"),
    }
    if old is None or new is None:
        detail["direction"] = "set" if new else "cleared"
        return None, detail
    days = (new.first_day - old.first_day).days
    detail["direction"] = "later" if days > 0 else "earlier" if days < 0 else "same"
    return days, detail


def outcome_changes(old: Sequence[str], new: Sequence[str]) -> list[tuple[str, int, str | None, str | None]]:
    """(kind, position, old text, new text) for primary outcomes that were added, removed or reworded.

    Texts are already plain (markup and spacing folded), so equal lists mean no change. With as many
    outcomes before as after, a differing position is a rewording; otherwise outcomes missing from the
    other side were removed or added.
    """
    if tuple(old) == tuple(new):
        return []
    if len(old) == len(new):
        return [
            ("primary_outcome_reworded", i, before, after)
            for i, (before, after) in enumerate(zip(old, new, strict=True))
            if before != after
        ]
    kept_old, kept_new = set(old), set(new)
    removed = [
        ("primary_outcome_removed", i, text, None) for i, text in enumerate(old) if text not in kept_new
    ]
    added = [("primary_outcome_added", i, None, text) for i, text in enumerate(new) if text not in kept_old]
    return [*removed, *added]  # type: ignore[list-item]


def summarise(
    states: Sequence[VersionState],
    changes: Sequence[RegistryChange],
    *,
    versions_complete: bool,
    start: date | None,
    index_outcome_change: date | None = None,
    index_outcomes_changed: bool | None = None,
) -> HistorySummary:
    """The per-trial answers. Without the version records, the outcome answer comes from the index
    (`index_outcomes_changed`: the original primary outcomes differ from the current ones, last changed on
    `index_outcome_change`)."""
    pcd_changes: int | None = None
    slip: int | None = None
    if versions_complete:
        moves = [c for c in changes if c.kind == "primary_completion_date" and c.days]
        pcd_changes = len(moves)
        slip = sum(c.days or 0 for c in moves)
    changed_on: date | None = None
    changed: bool | None = None
    if versions_complete:
        outcome_dates = sorted(c.effective_date for c in changes if c.kind in OUTCOME_KINDS)
        after_start = [day for day in outcome_dates if start is not None and day > start]
        changed = bool(after_start) if start is not None or not outcome_dates else None
        changed_on = after_start[0] if after_start else None
    elif index_outcomes_changed is not None:
        if not index_outcomes_changed:
            changed = False
        elif start is not None and index_outcome_change is not None:
            changed = index_outcome_change > start
            changed_on = index_outcome_change if changed else None
    return HistorySummary(len(states), pcd_changes, slip, changed, changed_on)


def _date_key(value: PartialDate | None) -> tuple[str, str | None] | None:
    return (value.raw, value.type) if value else None


def _date_text(value: PartialDate | None) -> str | None:
    return format_partial_date(value.raw, value.type) if value else None
