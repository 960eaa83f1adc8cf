"""`tracker status` and `tracker changes`: what the store holds, and what changed when.

Both return plain dicts and lists (JSON-ready); the CLI only prints them. They read through
`tracker.ledger` (SQLAlchemy Core), so these whole processes import neither the ORM nor the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from tracker.changes import CHANGE_KINDS
from tracker.db.session import connected, mask_url
from tracker.errors import ConfigError
from tracker.ledger import (
    CHANGE_EVENTS,
    STUDIES,
    change_events,
    data_as_of,
    last_clean_run,
    latest_run,
    study_titles,
    watermark,
)


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


COUNT_KEYS = ("total_count", "pages", "seen", "inserted", "updated", "unchanged", "rejected", "removed")


def _with_counts(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run dict with its counters grouped under "counts"."""
    if run is None:
        return None
    counts = {key: run[key] for key in COUNT_KEYS}
    return {**{key: value for key, value in run.items() if key not in COUNT_KEYS}, "counts": counts}


def status_summary(engine: Engine, database_url: str) -> dict[str, Any]:
    """The state of the store: study counts, the latest run, the registry data date and the watermark."""
    studies, events_table = STUDIES.c, CHANGE_EVENTS.c
    with connected(engine) as connection:
        total = connection.scalar(select(func.count()).select_from(STUDIES)) or 0
        # A registration stands for its trial, or belongs to another's: count the ones that stand.
        trials = (
            connection.scalar(
                select(func.count()).where(
                    studies.trial_id.is_(None) | (studies.trial_id == studies.registration_id)
                )
            )
            or 0
        )
        by_registry = dict(
            connection.execute(
                select(studies.registry, func.count()).group_by(studies.registry).order_by(studies.registry)
            ).all()  # a Result has keys(): dict() would index it, so hand it the rows
        )
        removed = connection.scalar(select(func.count()).where(studies.removed_at.is_not(None))) or 0
        by_status = {
            status or "UNKNOWN_STATUS": count
            for status, count in connection.execute(
                select(studies.overall_status, func.count())
                .group_by(studies.overall_status)
                .order_by(func.count().desc(), studies.overall_status)
            )
        }
        events = connection.scalar(select(func.count()).select_from(CHANGE_EVENTS)) or 0
        last_event = connection.scalar(select(func.max(events_table.detected_at)))
    last_sync = _with_counts(latest_run(engine))
    clean = last_clean_run(engine)
    mark = watermark(engine)
    ctis_mark = watermark(engine, "ctis")
    data_date = data_as_of(engine)
    return {
        "database": mask_url(database_url),
        "studies": total,
        "trials": trials,
        "by_registry": by_registry,
        "removed": removed,
        "by_status": by_status,
        "last_sync": last_sync,
        "last_clean_sync": _iso(clean.finished_at) if clean is not None else None,
        "data_timestamp": clean.data_timestamp if clean is not None else None,
        "data_as_of": _iso(data_date.day),
        "data_as_of_source": data_date.source,
        "data_as_of_text": data_date.describe(),
        "watermark": _iso(mark),
        "ctis_watermark": _iso(ctis_mark),
        "change_events": events,
        "last_change_detected": _iso(last_event),
    }


def format_status(summary: dict[str, Any]) -> str:
    """The human form of `status_summary`."""
    lines = [
        f"Database:        {summary['database']}",
        f"Studies:         {summary['studies']}"
        + (f" ({summary['removed']} no longer returned by the registry)" if summary["removed"] else ""),
    ]
    for status, count in summary["by_status"].items():
        lines.append(f"  {status:<26} {count:>6}")
    registries = ", ".join(f"{name} {count}" for name, count in summary["by_registry"].items())
    lines.append(
        f"Trials:          {summary['trials']}" + (f" (registrations: {registries})" if registries else "")
    )
    run = summary["last_sync"]
    if run is None:
        lines.append("Last run:        none yet (run `tracker sync` or `tracker import PATH`)")
    else:
        counts = run["counts"]
        lines.append(
            f"Last run:        {run['mode']} {run['outcome']}, started {run['started']}"
            + (f", finished {run['finished']}" if run["finished"] else "")
        )
        lines.append(
            f"                 {counts['inserted']} inserted, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged, {counts['rejected']} rejected, {counts['removed']} removed, "
            f"{counts['pages']} pages"
        )
        if run["error"]:
            lines.append(f"                 error: {run['error']}")
    lines.append(f"Data:            {summary['data_as_of_text']}")
    lines.append(f"Registry data:   {summary['data_timestamp'] or 'no clean sync yet'}")
    lines.append(f"Watermark:       {summary['watermark'] or 'none (next sync is a full pass)'}")
    if summary["ctis_watermark"] or summary["by_registry"].get("ctis"):
        lines.append(
            f"CTIS watermark:  {summary['ctis_watermark'] or 'none (next CTIS sync is a full pass)'}"
        )
    lines.append(f"Change events:   {summary['change_events']}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ChangeQuery:
    """Which change events to list: detected in [since, until] (whole days), of the given kinds."""

    since: date | None = None
    until: date | None = None
    kinds: tuple[str, ...] = ()
    limit: int | None = None
    include_baseline: bool = False  # the first load's "new" events say nothing about what changed

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            # an empty answer would look like "nothing changed"
            raise ConfigError(f"--since {self.since} is after --until {self.until}")


def parse_day(value: str | None, option: str) -> date | None:
    """A YYYY-MM-DD option value; `ConfigError` (exit 2) otherwise."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"invalid date for {option}: {value!r} (expected YYYY-MM-DD)") from None


def parse_kinds(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Kinds from repeated or comma-separated options; `ConfigError` (exit 2) on an unknown one."""
    kinds = tuple(k.strip().lower() for value in values for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in CHANGE_KINDS]
    if unknown:
        raise ConfigError(f"unknown change kind {unknown[0]!r}; known kinds: {', '.join(CHANGE_KINDS)}")
    return kinds


def list_changes(engine: Engine, change_query: ChangeQuery) -> list[dict[str, Any]]:
    """Change events, newest first, as JSON-ready dicts."""
    since = datetime.combine(change_query.since, time.min) if change_query.since else None
    until = datetime.combine(change_query.until + timedelta(days=1), time.min) if change_query.until else None
    rows = change_events(
        engine,
        since=since,
        until=until,
        kinds=change_query.kinds or None,
        include_baseline=change_query.include_baseline,
        limit=change_query.limit,
    )
    titles = study_titles(engine, {row.registration_id for row in rows})
    return [
        {
            "registration_id": row.registration_id,
            "trial_id": row.trial_id,
            "title": titles.get(row.registration_id),
            "detected_at": row.detected_at.isoformat(),
            "kind": row.kind,
            "field": _text_or_none(row.field),
            "old": _text_or_none(row.old_value),
            "new": _text_or_none(row.new_value),
            "baseline": bool(row.baseline),
        }
        for row in rows
    ]


TITLE_WIDTH = 100


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def format_changes(events: list[dict[str, Any]]) -> str:
    if not events:
        return "No change events (the first load's are hidden; --include-baseline shows them)."
    lines = []
    for event in events:
        what = (
            event["kind"]
            if not event["field"] or event["field"] == event["kind"]
            else f"{event['kind']} ({event['field']})"
        )
        detail = (
            f"{event['old'] or '—'} → {event['new'] or '—'}"
            if event["kind"] != "new"
            else (event["new"] or "")
        )
        lines.append(
            f"{event['detected_at'][:19]}  {event['registration_id']}  {what}: {detail}".rstrip(": ")
        )
        if event.get("title"):
            lines.append(f"{'':21}{_shorten(event['title'], TITLE_WIDTH)}")
    return "\n".join(lines)
