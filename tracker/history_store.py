"""The write side of registry history: index rows, fetched versions, derived events, per-trial summaries.

Every write is one short transaction (an index, or one version record), so a backfill killed at any moment
keeps everything fetched so far and a rerun asks only for what is missing. Events are derived again from
the stored versions after each write and inserted only where missing (unique per trial, version, kind and
field), so reruns and overlapping runs never duplicate them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from tracker.ctgov.history_parse import Outcome, VersionIndex, VersionRecord, outcome_texts
from tracker.ctgov.parse import PartialDate, parse_partial_date
from tracker.db.models import (
    ChangeEvent,
    RegistryChangeEvent,
    RegistryHistory,
    RegistryVersion,
    Study,
    StudyLabel,
)
from tracker.db.session import batched, transaction, utcnow
from tracker.errors import ConfigError
from tracker.registry_changes import POLLED_KINDS, VersionState, derive_changes, summarise

# A polled change is detected after the registry posted it; a day of slack covers time zones.
MATCH_SLACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PlannedTrial:
    """One trial a history run will visit: whether its index must be (re-)read, and its version state."""

    registration_id: str
    read_index: bool
    last_version: int | None  # from the stored index
    versions_through: int | None
    study_last_update_posted: date | None


def plan(engine: Engine, *, registration_ids: Sequence[str] | None, versions: bool) -> list[PlannedTrial]:
    """The trials that need requests, in NCT ID order.

    The index is read for trials without an accepted history, whose last attempt failed, or whose stored
    study moved (lastUpdatePostDate) since it was read. Version records are fetched with `versions`, and
    always for trials whose records were backfilled before, so their trails stay complete.
    """
    with transaction(engine) as session:
        statement = select(Study.registration_id, Study.last_update_posted).where(Study.removed_at.is_(None))
        if registration_ids:
            wanted = sorted(set(registration_ids))
            found = {
                row.registration_id: row.last_update_posted
                for chunk in batched(wanted)
                for row in session.execute(
                    select(Study.registration_id, Study.last_update_posted).where(
                        Study.registration_id.in_(chunk)
                    )
                )
            }
            unknown = [registration_id for registration_id in wanted if registration_id not in found]
            if unknown:
                raise ConfigError(
                    f"not in the database: {', '.join(unknown)} (run `tracker sync` first, or check the IDs)"
                )
            studies = sorted(found.items())
        else:
            not_ms = set(
                session.scalars(
                    select(StudyLabel.registration_id).where(
                        StudyLabel.dimension == "relevance", StudyLabel.key == "not_ms"
                    )
                )
            )
            studies = sorted(
                (row.registration_id, row.last_update_posted)
                for row in session.execute(statement)
                if row.registration_id not in not_ms
            )
        histories = {row.registration_id: row for row in session.scalars(select(RegistryHistory))}
    planned = []
    for registration_id, posted in studies:
        history = histories.get(registration_id)
        if history is None:
            planned.append(PlannedTrial(registration_id, True, None, None, posted))
            continue
        read_index = history.error is not None or history.study_last_update_posted != posted
        wants_versions = versions or history.versions_through is not None
        versions_missing = wants_versions and history.versions_through != history.last_version
        if read_index or versions_missing:
            planned.append(
                PlannedTrial(
                    registration_id, read_index, history.last_version, history.versions_through, posted
                )
            )
    return planned


def store_index(engine: Engine, index: VersionIndex, study_last_update_posted: date | None) -> None:
    """Land an accepted (gap-free) index: its version rows, the trial's history row, derived events."""
    now = utcnow()
    with transaction(engine) as session:
        registration_id = index.registration_id
        stored = {
            row.version: row
            for row in session.execute(
                select(
                    RegistryVersion.version,
                    RegistryVersion.version_date,
                    RegistryVersion.overall_status,
                    RegistryVersion.module_labels,
                ).where(RegistryVersion.registration_id == registration_id)
            )
        }
        new_rows = []
        for entry in index.entries:
            row = stored.get(entry.version)
            values = {
                "version_date": entry.date,
                "overall_status": entry.status,
                "module_labels": list(entry.module_labels),
            }
            if row is None:
                new_rows.append({"registration_id": registration_id, "version": entry.version, **values})
            elif (row.version_date, row.overall_status, list(row.module_labels or ())) != tuple(
                values.values()
            ):
                session.execute(
                    update(RegistryVersion)
                    .where(
                        RegistryVersion.registration_id == registration_id,
                        RegistryVersion.version == entry.version,
                    )
                    .values(**values)
                )
        if new_rows:
            session.execute(insert(RegistryVersion), new_rows)
        history = session.get(RegistryHistory, registration_id)
        fields: dict[str, Any] = {
            "version_count": len(index.entries),
            "last_version": index.last_version,
            "index_read_at": now,
            "study_last_update_posted": study_last_update_posted,
            "original_enrollment_count": index.original_enrollment_count,
            "original_enrollment_type": index.original_enrollment_type,
            "original_primary_outcomes": None
            if index.original_primary_outcomes is None
            else [o.as_dict() for o in index.original_primary_outcomes],
            "last_update_versions": dict(index.last_update_versions),
            "error": None,
        }
        if history is None:
            history = RegistryHistory(
                registration_id=registration_id, baseline_through=index.last_version, **fields
            )
            session.add(history)
        else:
            for name, value in fields.items():
                setattr(history, name, value)
        session.flush()
        refresh_events(session, registration_id, now, index_outcomes=index_outcome_change(index))


def index_outcome_change(index: VersionIndex) -> tuple[bool | None, date | None]:
    """Whether the original primary outcomes differ from the current ones, and the date they last changed."""
    if index.original_primary_outcomes is None:
        return None, None
    changed = outcome_texts(index.original_primary_outcomes) != outcome_texts(index.current_primary_outcomes)
    last = index.last_update_versions.get("primaryOutcomes")
    dates = {entry.version: entry.date for entry in index.entries}
    return changed, dates.get(last) if last is not None else None


def missing_versions(engine: Engine, registration_id: str) -> list[int]:
    """Versions 0..last_version of the stored index whose record is not fetched yet."""
    with transaction(engine) as session:
        history = session.get(RegistryHistory, registration_id)
        if history is None:
            return []
        fetched = set(
            session.scalars(
                select(RegistryVersion.version).where(
                    RegistryVersion.registration_id == registration_id,
                    RegistryVersion.fetched_at.is_not(None),
                )
            )
        )
    return [number for number in range(history.last_version + 1) if number not in fetched]


def store_version(engine: Engine, record: VersionRecord) -> None:
    """Land one fetched version record on its index row (the index is always stored first)."""
    with transaction(engine) as session:
        session.execute(
            update(RegistryVersion)
            .where(
                RegistryVersion.registration_id == record.registration_id,
                RegistryVersion.version == record.version,
            )
            .values(
                fetched_at=utcnow(),
                **_date_values("start_date", record.start_date),
                **_date_values("primary_completion_date", record.primary_completion_date),
                **_date_values("completion_date", record.completion_date),
                enrollment_count=record.enrollment_count,
                enrollment_type=record.enrollment_type,
                primary_outcomes=[o.as_dict() for o in record.primary_outcomes],
                secondary_outcomes=[o.as_dict() for o in record.secondary_outcomes],
                has_results=record.has_results,
                results_first_posted=record.results_first_posted,
                content_hash=record.content_hash,
            )
        )


def accept_versions(engine: Engine, registration_id: str, through: int) -> None:
    """The version records 0..through form a gap-free chain: derive their events and the summary."""
    now = utcnow()
    with transaction(engine) as session:
        session.execute(
            update(RegistryHistory)
            .where(RegistryHistory.registration_id == registration_id)
            .values(versions_through=through, versions_accepted_at=now, error=None)
        )
        refresh_events(session, registration_id, now)


def record_error(engine: Engine, registration_id: str, error: str) -> None:
    """Remember why a trial's history did not complete (it is retried on the next run)."""
    with transaction(engine) as session:
        session.execute(
            update(RegistryHistory)
            .where(RegistryHistory.registration_id == registration_id)
            .values(error=error)
        )


def version_states(
    session: Session, registration_id: str, versions_through: int | None
) -> list[VersionState]:
    """The stored versions of a trial; only records inside the accepted chain count as fetched."""
    rows = session.execute(
        select(RegistryVersion)
        .where(RegistryVersion.registration_id == registration_id)
        .order_by(RegistryVersion.version)
    ).scalars()
    states = []
    for row in rows:
        fetched = (
            row.fetched_at is not None and versions_through is not None and row.version <= versions_through
        )
        states.append(
            VersionState(
                version=row.version,
                date=row.version_date,
                status=row.overall_status,
                fetched=fetched,
                start_date=_partial(row.start_date_raw, row.start_date_type),
                primary_completion_date=_partial(
                    row.primary_completion_date_raw, row.primary_completion_date_type
                ),
                enrollment_count=row.enrollment_count,
                enrollment_type=row.enrollment_type,
                primary_outcomes=outcome_texts(
                    [Outcome(o["measure"], o.get("time_frame"), None) for o in row.primary_outcomes or ()]
                ),
                has_results=bool(row.has_results),
                results_first_posted=row.results_first_posted,
            )
        )
    return states


def refresh_events(
    session: Session,
    registration_id: str,
    now: datetime,
    *,
    index_outcomes: tuple[bool | None, date | None] | None = None,
) -> None:
    """Derive the trial's events from its stored versions, insert the missing ones, link polled events
    that saw the same change, and update the summary columns."""
    history = session.get(RegistryHistory, registration_id)
    if history is None:
        return
    states = version_states(session, registration_id, history.versions_through)
    changes = derive_changes(states)
    existing = {
        (row.version, row.kind, row.field)
        for row in session.execute(
            select(RegistryChangeEvent.version, RegistryChangeEvent.kind, RegistryChangeEvent.field).where(
                RegistryChangeEvent.registration_id == registration_id
            )
        )
    }
    rows = [
        {
            "registration_id": registration_id,
            "version": change.version,
            "effective_date": change.effective_date,
            "kind": change.kind,
            "field": change.field,
            "old_value": change.old,
            "new_value": change.new,
            "days": change.days,
            "detail": change.detail,
            "found_at": now,
            "baseline": change.version <= history.baseline_through,
        }
        for change in changes
        if (change.version, change.kind, change.field) not in existing
    ]
    if rows:
        session.execute(insert(RegistryChangeEvent), rows)
    link_polled_events(session, [registration_id])
    start = session.scalar(select(Study.start_date).where(Study.registration_id == registration_id))
    complete = history.versions_through is not None and history.versions_through == history.last_version
    changed, changed_on = index_outcomes if index_outcomes is not None else (None, None)
    summary = summarise(
        states,
        changes,
        versions_complete=complete,
        start=start,
        index_outcome_change=changed_on,
        index_outcomes_changed=changed,
    )
    history.pcd_changes = summary.pcd_changes
    history.pcd_total_slip_days = summary.pcd_total_slip_days
    if complete or index_outcomes is not None:
        history.primary_outcome_changed_after_start = summary.primary_outcome_changed_after_start
        history.primary_outcome_changed_on = summary.primary_outcome_changed_on


def link_polled_events(session: Session, registration_ids: Collection[str]) -> int:
    """Link unlinked registry events to the polled change event that saw the same change; returns links made.

    Same trial, kind, field and values, detected no earlier than the registry's date (less a day of slack);
    each polled event stands for at most one registry event.
    """
    linked = 0
    for chunk in batched(sorted(set(registration_ids))):
        # Polled events first: most trials have none of these kinds (only their "new"), and then nothing
        # else needs reading.
        polled = session.execute(
            select(
                ChangeEvent.id,
                ChangeEvent.registration_id,
                ChangeEvent.kind,
                ChangeEvent.field,
                ChangeEvent.old_value,
                ChangeEvent.new_value,
                ChangeEvent.detected_at,
            )
            .where(ChangeEvent.registration_id.in_(chunk), ChangeEvent.kind.in_(POLLED_KINDS))
            .order_by(ChangeEvent.detected_at, ChangeEvent.id)
        ).all()
        if not polled:
            continue
        pending = list(
            session.scalars(
                select(RegistryChangeEvent)
                .where(
                    RegistryChangeEvent.registration_id.in_(chunk),
                    RegistryChangeEvent.change_event_id.is_(None),
                    RegistryChangeEvent.kind.in_(POLLED_KINDS),
                )
                .order_by(RegistryChangeEvent.effective_date, RegistryChangeEvent.id)
            )
        )
        if not pending:
            continue
        taken = set(
            session.scalars(
                select(RegistryChangeEvent.change_event_id).where(
                    RegistryChangeEvent.registration_id.in_(chunk),
                    RegistryChangeEvent.change_event_id.is_not(None),
                )
            )
        )
        for event in pending:
            earliest = datetime.combine(event.effective_date, datetime.min.time()) - MATCH_SLACK
            for candidate in polled:
                if (
                    candidate.id not in taken
                    and candidate.registration_id == event.registration_id
                    and (candidate.kind, candidate.field) == (event.kind, event.field)
                    and (candidate.old_value, candidate.new_value) == (event.old_value, event.new_value)
                    and candidate.detected_at >= earliest
                ):
                    event.change_event_id = candidate.id
                    taken.add(candidate.id)
                    linked += 1
                    break
    return linked


def _date_values(prefix: str, value: PartialDate | None) -> dict[str, Any]:
    return {f"{prefix}_raw": value.raw if value else None, f"{prefix}_type": value.type if value else None}


def _partial(raw: str | None, date_type: str | None) -> PartialDate | None:
    if raw is None:
        return None
    try:
        return parse_partial_date({"date": raw, "type": date_type}, "date")
    except ValueError:
        return None
