"""What the store says about itself: its runs, its data date and its change events.

`tracker status` and `tracker changes` read only these, so they are written in SQLAlchemy Core over light
views of the few columns they touch (`sqlalchemy.table`/`column`, typed as the models type them, which
`tests/test_ledger.py` checks): a whole read-only process then imports neither the ORM nor the models,
about a quarter of its start-up. `tracker.query` and `tracker.store` re-export these functions.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Engine,
    Integer,
    Row,
    Text,
    column,
    func,
    select,
)
from sqlalchemy import table as light_table

from tracker.db.session import batched, connected

SYNC_RUNS = light_table(
    "sync_runs",
    column("id", Integer),
    column("registry", Text),
    column("started_at", DateTime),
    column("finished_at", DateTime),
    column("mode", Text),
    column("query", Text),
    column("source", Text),
    column("data_timestamp", Text),
    column("baseline", Boolean),
    column("outcome", Text),
    column("error", Text),
    column("total_count", Integer),
    column("pages", Integer),
    column("studies_seen", Integer),
    column("studies_inserted", Integer),
    column("studies_updated", Integer),
    column("studies_unchanged", Integer),
    column("studies_rejected", Integer),
    column("studies_removed", Integer),
)
STUDIES = light_table(
    "studies",
    column("registration_id", Text),
    column("trial_id", Text),
    column("registry", Text),
    column("brief_title", Text),
    column("overall_status", Text),
    column("last_update_posted", Date),
    column("removed_at", DateTime),
)
CHANGE_EVENTS = light_table(
    "change_events",
    column("id", Integer),
    column("registration_id", Text),
    column("detected_at", DateTime),
    column("kind", Text),
    column("field", Text),
    column("old_value", Text),
    column("new_value", Text),
    column("baseline", Boolean),
)
LIGHT_TABLES = (SYNC_RUNS, STUDIES, CHANGE_EVENTS)

CHANGE_EVENT_COLUMNS = (
    "id",
    "registration_id",
    "detected_at",
    "kind",
    "field",
    "old_value",
    "new_value",
    "baseline",
    "trial_id",  # the trial the registration belongs to: what digests and the landscape count
)


def _clean_sync(registry: str = "ctgov") -> ColumnElement[bool]:
    """A run that moves `registry`'s watermark: an API sync of it that finished without any error."""
    runs = SYNC_RUNS.c
    return (
        (runs.registry == registry)
        & (runs.outcome == "success")
        & runs.mode.in_(("full", "incremental"))
        & runs.data_timestamp.is_not(None)
    )


def last_clean_run(engine: Engine, registry: str = "ctgov") -> Row[Any] | None:
    """The newest API sync of `registry` that finished without any error: the source of its watermark."""
    statement = select(SYNC_RUNS).where(_clean_sync(registry)).order_by(SYNC_RUNS.c.id.desc()).limit(1)
    with connected(engine) as connection:
        return connection.execute(statement).first()


def watermark(engine: Engine, registry: str = "ctgov") -> date | None:
    """The registry's date (never the local clock) up to which the store is known complete."""
    run = last_clean_run(engine, registry)
    if run is None or not run.data_timestamp:
        return None
    return date.fromisoformat(run.data_timestamp[:10])


def run_as_dict(run: Any) -> dict[str, Any]:
    """A run (a model object or a row of `sync_runs`) as JSON-ready values."""
    return {
        "id": run.id,
        "started": run.started_at.isoformat() if run.started_at else None,
        "finished": run.finished_at.isoformat() if run.finished_at else None,
        "mode": run.mode,
        "query": run.query,
        "source": run.source,
        "data_timestamp": run.data_timestamp,
        "baseline": run.baseline,
        "outcome": run.outcome,
        "error": run.error,
        "total_count": run.total_count,
        "pages": run.pages,
        "seen": run.studies_seen,
        "inserted": run.studies_inserted,
        "updated": run.studies_updated,
        "unchanged": run.studies_unchanged,
        "rejected": run.studies_rejected,
        "removed": run.studies_removed,
    }


def latest_run(engine: Engine, *, finished_only: bool = False) -> dict[str, Any] | None:
    """The newest sync or import run as a dict (see `run_as_dict`), or None."""
    statement = select(SYNC_RUNS).order_by(SYNC_RUNS.c.id.desc()).limit(1)
    if finished_only:
        statement = statement.where(SYNC_RUNS.c.finished_at.is_not(None))
    with connected(engine) as connection:
        run = connection.execute(statement).first()
    return run_as_dict(run) if run else None


@dataclass(frozen=True, slots=True)
class DataDate:
    """The day the stored data describes, and where that day comes from.

    Every "last 12 months", "overdue" and "last 7 days" figure, default period and timeline "now" is
    measured from `day`, not from the wall clock: a store synced in January and read in December still
    shows January's landscape as it was then. `day` is None only for an empty store.
    """

    day: date | None
    # "registry" (dataTimestamp of the last clean sync) or "updates" (newest lastUpdatePostDate)
    source: str | None
    timestamp: str | None = None  # the registry's dataTimestamp as served, when source is "registry"

    SOURCE_LABELS = {
        "registry": "registry data timestamp of the last clean sync",
        "updates": "newest update posted in the store",
    }

    def describe(self) -> str:
        """'data as of 2026-01-13 (registry data timestamp of the last clean sync)'."""
        if self.day is None:
            return "no data yet"
        return f"data as of {self.day.isoformat()} ({self.SOURCE_LABELS.get(self.source or '', self.source)})"

    def or_today(self, today: date) -> date:
        """The data day, or `today` for an empty store (nothing is measured then anyway)."""
        return self.day or today


def data_as_of(engine: Engine) -> DataDate:
    """The data's own date: the registry's dataTimestamp of the last clean sync; for a store filled by
    `tracker import` (or imported into after its last sync) the newest lastUpdatePostDate it holds."""
    runs = SYNC_RUNS.c
    with connected(engine) as connection:
        timestamp = connection.scalar(
            select(runs.data_timestamp).where(_clean_sync()).order_by(runs.id.desc()).limit(1)
        )
        newest_update = connection.scalar(select(func.max(STUDIES.c.last_update_posted)))
    registry_day = _timestamp_day(timestamp)
    if registry_day is not None and (newest_update is None or newest_update <= registry_day):
        return DataDate(registry_day, "registry", timestamp)
    if newest_update is not None:
        return DataDate(newest_update, "updates")
    return DataDate(None, None)


def _timestamp_day(timestamp: str | None) -> date | None:
    try:
        return date.fromisoformat(timestamp[:10]) if timestamp else None
    except ValueError:
        return None


def change_events(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Collection[str] | None = None,
    include_baseline: bool = True,
    limit: int | None = None,
) -> list[Row[Any]]:
    """Change events, newest first, within [since, until); the database applies every condition and the
    limit, so `tracker changes --limit 5` reads five rows however many events are stored."""
    events, studies = CHANGE_EVENTS.c, STUDIES.c
    trial_id = func.coalesce(studies.trial_id, events.registration_id).label("trial_id")
    statement = (
        select(*(events[name] for name in CHANGE_EVENT_COLUMNS[:-1]), trial_id)
        .join_from(CHANGE_EVENTS, STUDIES, studies.registration_id == events.registration_id)
        .order_by(events.detected_at.desc(), events.id.desc())
    )
    if since is not None:
        statement = statement.where(events.detected_at >= since)
    if until is not None:
        statement = statement.where(events.detected_at < until)
    if kinds:
        statement = statement.where(events.kind.in_(list(kinds)))
    if not include_baseline:
        statement = statement.where(events.baseline.is_(False))
    if limit is not None:
        statement = statement.limit(limit)
    with connected(engine) as connection:
        return list(connection.execute(statement).all())


def study_titles(engine: Engine, registration_ids: Collection[str]) -> dict[str, str | None]:
    """Brief titles of the given studies (for lists of changes)."""
    titles: dict[str, str | None] = {}
    studies = STUDIES.c
    with connected(engine) as connection:
        for batch in batched(sorted(registration_ids)):
            rows = connection.execute(
                select(studies.registration_id, studies.brief_title).where(studies.registration_id.in_(batch))
            ).all()
            titles.update((registration_id, title) for registration_id, title in rows)
    return titles
