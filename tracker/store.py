"""The write side: sync runs, and one page of raw studies upserted in one transaction.

Every ingest path (API sync, file import) goes through `ingest_page`, so a run killed at any moment
leaves whole pages behind and the next run finishes the job. Writes use SQLAlchemy Core executemany:
the ORM unit of work is an order of magnitude slower for thousands of child rows per page.
"""

from __future__ import annotations

import gc
import logging
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Engine,
    bindparam,
    delete,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from tracker.changes import (
    Change,
    StudySnapshot,
    diff_snapshots,
    format_enrollment,
    format_partial_date,
    snapshot_of,
)
from tracker.ctgov.parse import PartialDate, StudyRecord, parse_study
from tracker.db.models import (
    ChangeEvent,
    Collaborator,
    Condition,
    Intervention,
    Keyword,
    Location,
    Study,
    StudyVersion,
    SyncRun,
)
from tracker.db.session import batched, transaction, utcnow
from tracker.errors import RecordError

log = logging.getLogger(__name__)

CHILD_TABLES = (Condition, Keyword, Intervention, Collaborator, Location)


@dataclass(frozen=True, slots=True)
class Rejection:
    nct_id: str | None
    reason: str


@dataclass(slots=True)
class PageOutcome:
    """What one page did to the store."""

    seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    changed_ids: list[str] = field(default_factory=list)  # inserted or updated
    classified: int = 0  # studies the `on_landed` hook classified in the page's transaction


# Called inside a page's transaction with the records it inserted or updated; returns how many it handled.
LandedHook = Callable[[Session, Sequence[StudyRecord]], int]


def begin_run(
    engine: Engine,
    *,
    mode: str,
    query: str | None,
    source: str | None,
    data_timestamp: str | None,
    started_at: datetime | None = None,
) -> int:
    """Record the start of a sync or import (`started_at` when it began before it could be recorded, e.g.
    a run that failed on its first request); the first load into an empty database is the baseline."""
    with transaction(engine) as session:
        baseline = not session.scalar(select(exists().select_from(Study)))
        run = SyncRun(
            started_at=started_at or utcnow(),
            mode=mode,
            query=query,
            source=source,
            data_timestamp=data_timestamp,
            baseline=baseline,
            rejections=[],
        )
        session.add(run)
        session.flush()
        return run.id


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    outcome: str,
    error: str | None = None,
    total_count: int | None = None,
) -> None:
    values: dict[str, Any] = {"finished_at": utcnow(), "outcome": outcome, "error": error}
    if total_count is not None:
        values["total_count"] = total_count
    with transaction(engine) as session:
        session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))


def get_run(engine: Engine, run_id: int) -> SyncRun | None:
    with transaction(engine) as session:
        return session.get(SyncRun, run_id)


def last_clean_run(engine: Engine) -> SyncRun | None:
    """The newest API sync that finished without any error: the source of the watermark."""
    with transaction(engine) as session:
        return session.scalars(
            select(SyncRun)
            .where(
                SyncRun.outcome == "success",
                SyncRun.mode.in_(("full", "incremental")),
                SyncRun.data_timestamp.is_not(None),
            )
            .order_by(SyncRun.id.desc())
            .limit(1)
        ).first()


def watermark(engine: Engine) -> date | None:
    """The registry's date (never the local clock) up to which the store is known complete."""
    run = last_clean_run(engine)
    if run is None or not run.data_timestamp:
        return None
    return date.fromisoformat(run.data_timestamp[:10])


def ingest_page(
    engine: Engine,
    run_id: int,
    raw_studies: Iterable[object],
    *,
    seen_at: datetime | None = None,
    on_landed: LandedHook | None = None,
) -> PageOutcome:
    """Parse, upsert and diff one page of raw studies in a single transaction.

    A record that cannot be parsed is rejected alone; the rest of the page lands. `on_landed` (the
    classifier, for a sync or an import) gets the inserted and updated records already parsed, in the same
    transaction: a page is stored and classified together or not at all.
    """
    with gc_paused():
        return _ingest_page(engine, run_id, raw_studies, seen_at or utcnow(), on_landed)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk step (decoding and landing one page).

    Decoding and landing a page allocates hundreds of thousands of short-lived objects that reference
    counting frees anyway; the collector's passes over them cost a tenth of the time and find nothing.
    Pause per page, never per walk: between pages the collector runs, so memory stays bounded by a page.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            # Only the young generations: what the step left behind, not every long-lived object again.
            gc.collect(1)


@contextmanager
def one_shot_process() -> Iterator[None]:
    """GC settings for a command that runs one bulk job and exits (sync, import, classify --all).

    Start-up objects (modules, the compiled classifier dictionary, the ORM mappings) live until exit:
    frozen, the collector never walks them again. Frozen again at the end, what is still alive is freed
    at exit without the interpreter's final cyclic pass over it.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.freeze()


def _ingest_page(
    engine: Engine, run_id: int, raw_studies: Iterable[object], now: datetime, on_landed: LandedHook | None
) -> PageOutcome:
    outcome = PageOutcome()
    records: dict[str, StudyRecord] = {}
    for raw in raw_studies:
        outcome.seen += 1
        try:
            record = parse_study(raw)
        except RecordError as exc:
            # Debug only: the run records each rejection and the CLI prints it once at the end.
            log.debug("rejected %s", exc)
            outcome.rejected.append(Rejection(exc.nct_id, exc.reason))
            continue
        records[record.nct_id] = record  # a page may repeat a study; the last copy wins

    with transaction(engine) as session:
        run = session.get(SyncRun, run_id)
        baseline = bool(run and run.baseline)
        stored = _stored_snapshots(session, list(records))
        new: list[StudyRecord] = []
        changed: list[StudyRecord] = []
        events: list[dict[str, Any]] = []
        restored: list[str] = []
        for nct_id, record in records.items():
            previous = stored.get(nct_id)
            snapshot, removed_at, posted = previous if previous else (None, None, None)
            if _is_older(record, posted):
                # An older bulk download imported after a sync must not roll the study back.
                log.info("kept %s: stored version (posted %s) is newer than the one received", nct_id, posted)
                continue
            if removed_at is not None:
                restored.append(nct_id)
                events.append(_event(nct_id, Change("other", "removed_at", str(removed_at), None)))
            changes = diff_snapshots(snapshot, snapshot_of(record))
            if snapshot is None:
                new.append(record)
            elif changes:
                changed.append(record)
            events.extend(_event(nct_id, change) for change in changes)

        _insert_studies(session, new, now)
        _update_studies(session, changed, now)
        changed_ids = {r.nct_id for r in changed}
        unchanged = [i for i in records if i in stored and i not in changed_ids]
        _touch_unchanged(session, unchanged, now, restored)
        _replace_children(session, new, changed)
        _insert_versions(session, [*new, *changed], now, run_id)
        if events:
            for event in events:
                event.update(detected_at=now, sync_run_id=run_id, baseline=baseline)
            _insert_rows(session, ChangeEvent, events)

        outcome.inserted, outcome.updated = len(new), len(changed)
        outcome.unchanged = len(records) - len(new) - len(changed)  # older copies count as unchanged
        outcome.changed_ids = [r.nct_id for r in new] + [r.nct_id for r in changed]
        if on_landed is not None and (new or changed):
            outcome.classified = on_landed(session, [*new, *changed])
        _count_page(session, run_id, outcome)
    return outcome


def flag_removed(engine: Engine, run_id: int, seen_ids: Collection[str]) -> list[str]:
    """After a complete full pass: flag (never delete) studies the query no longer returns."""
    seen = set(seen_ids)
    now = utcnow()
    with transaction(engine) as session:
        rows = session.execute(
            select(Study.nct_id, Study.overall_status).where(Study.removed_at.is_(None))
        ).all()
        gone = [(nct_id, status) for nct_id, status in rows if nct_id not in seen]
        if not gone:
            return []
        run = session.get(SyncRun, run_id)
        for chunk in batched([nct_id for nct_id, _ in gone]):
            session.execute(update(Study).where(Study.nct_id.in_(chunk)).values(removed_at=now))
        _insert_rows(
            session,
            ChangeEvent,
            [
                {
                    **_event(nct_id, Change("removed", None, status, None)),
                    "detected_at": now,
                    "sync_run_id": run_id,
                    "baseline": False,
                }
                for nct_id, status in gone
            ],
        )
        if run is not None:
            run.studies_removed = (run.studies_removed or 0) + len(gone)
    return [nct_id for nct_id, _ in gone]


# --- helpers -------------------------------------------------------------------------------------


def _is_older(record: StudyRecord, stored_posted: date | None) -> bool:
    posted = record.last_update_posted
    return stored_posted is not None and posted is not None and posted < stored_posted


def _stored_snapshots(
    session: Session, nct_ids: list[str]
) -> dict[str, tuple[StudySnapshot, datetime | None, date | None]]:
    """What is stored for these studies: the snapshot to diff, when flagged removed, last update posted."""
    columns = (
        Study.nct_id,
        Study.content_hash,
        Study.overall_status,
        Study.why_stopped,
        Study.phases,
        Study.start_date_raw,
        Study.start_date_type,
        Study.primary_completion_date_raw,
        Study.primary_completion_date_type,
        Study.completion_date_raw,
        Study.completion_date_type,
        Study.enrollment_count,
        Study.enrollment_type,
        Study.has_results,
        Study.results_first_posted,
        Study.removed_at,
        Study.last_update_posted,
    )
    found: dict[str, tuple[StudySnapshot, datetime | None, date | None]] = {}
    for chunk in batched(nct_ids):
        for row in session.execute(select(*columns).where(Study.nct_id.in_(chunk))):
            found[row.nct_id] = (
                StudySnapshot(
                    content_hash=row.content_hash,
                    overall_status=row.overall_status,
                    why_stopped=row.why_stopped,
                    phases=tuple(row.phases or ()),
                    start_date=format_partial_date(row.start_date_raw, row.start_date_type),
                    primary_completion_date=format_partial_date(
                        row.primary_completion_date_raw, row.primary_completion_date_type
                    ),
                    completion_date=format_partial_date(row.completion_date_raw, row.completion_date_type),
                    enrollment=format_enrollment(row.enrollment_count, row.enrollment_type),
                    has_results=bool(row.has_results),
                    results_first_posted=row.results_first_posted,
                ),
                row.removed_at,
                row.last_update_posted,
            )
    return found


def _date_columns(prefix: str, value: PartialDate | None) -> dict[str, Any]:
    if value is None:
        return {prefix: None, f"{prefix}_raw": None, f"{prefix}_precision": None, f"{prefix}_type": None}
    return {
        prefix: value.first_day,
        f"{prefix}_raw": value.raw,
        f"{prefix}_precision": value.precision,
        f"{prefix}_type": value.type,
    }


def study_columns(record: StudyRecord) -> dict[str, Any]:
    """The `studies` row for a record (without the bookkeeping timestamps)."""
    lead = record.lead_sponsor
    return {
        "nct_id": record.nct_id,
        "brief_title": record.brief_title,
        "official_title": record.official_title,
        "acronym": record.acronym,
        "overall_status": record.overall_status,
        "last_known_status": record.last_known_status,
        "why_stopped": record.why_stopped,
        "phases": list(record.phases),
        "study_type": record.study_type,
        "enrollment_count": record.enrollment_count,
        "enrollment_type": record.enrollment_type,
        **_date_columns("start_date", record.start_date),
        **_date_columns("primary_completion_date", record.primary_completion_date),
        **_date_columns("completion_date", record.completion_date),
        "first_posted": record.first_posted,
        "last_update_posted": record.last_update_posted,
        "results_first_posted": record.results_first_posted,
        "has_results": record.has_results,
        "lead_sponsor_name": lead.name if lead else None,
        "lead_sponsor_class": lead.agency_class if lead else None,
        "content_hash": record.content_hash,
        "raw": record.raw,
    }


def _insert_studies(session: Session, records: list[StudyRecord], now: datetime) -> None:
    if records:
        rows = [{**study_columns(r), "first_seen_at": now, "last_seen_at": now} for r in records]
        _insert_rows(session, Study, rows)


def _update_studies(session: Session, records: list[StudyRecord], now: datetime) -> None:
    if not records:
        return
    rows = []
    for record in records:
        row = study_columns(record)
        row["b_nct_id"] = row.pop("nct_id")
        rows.append({**row, "last_seen_at": now, "removed_at": None})
    statement = (
        update(Study)
        .where(Study.nct_id == bindparam("b_nct_id"))
        .values({name: bindparam(name) for name in rows[0] if name != "b_nct_id"})
    )
    session.connection().execute(statement, rows)


def _touch_unchanged(session: Session, nct_ids: list[str], now: datetime, restored: list[str]) -> None:
    # last_seen_at tells when the registry last returned the study; restored ones lose their flag.
    for chunk in batched(nct_ids):
        session.execute(update(Study).where(Study.nct_id.in_(chunk)).values(last_seen_at=now))
    for chunk in batched(restored):
        session.execute(update(Study).where(Study.nct_id.in_(chunk)).values(removed_at=None))


_CHILD_COLUMNS: dict[type, tuple[str, ...]] = {
    Condition: ("nct_id", "position", "name"),
    Keyword: ("nct_id", "position", "name"),
    Intervention: (
        "nct_id",
        "position",
        "type",
        "name",
        "other_names",
        "description",
        "arm_group_labels",
        "arm_role",
    ),
    Collaborator: ("nct_id", "position", "name", "agency_class"),
    Location: ("nct_id", "position", "facility", "city", "state", "country", "status"),
}


def _child_rows(records: Iterable[StudyRecord]) -> dict[type, list[tuple[Any, ...]]]:
    """The child-table rows of many records, as tuples in `_CHILD_COLUMNS` order."""
    rows: dict[type, list[tuple[Any, ...]]] = {table: [] for table in _CHILD_COLUMNS}
    conditions, keywords, interventions = rows[Condition], rows[Keyword], rows[Intervention]
    collaborators, locations = rows[Collaborator], rows[Location]
    for record in records:
        nct_id = record.nct_id
        for i, name in enumerate(record.conditions):
            conditions.append((nct_id, i, name))
        for i, name in enumerate(record.keywords):
            keywords.append((nct_id, i, name))
        for i, item in enumerate(record.interventions):
            interventions.append(
                (
                    nct_id,
                    i,
                    item.type,
                    item.name,
                    list(item.other_names),
                    item.description,
                    list(item.arm_group_labels),
                    item.arm_role,
                )
            )
        for i, org in enumerate(record.collaborators):
            collaborators.append((nct_id, i, org.name, org.agency_class))
        for i, loc in enumerate(record.locations):
            locations.append((nct_id, i, loc.facility, loc.city, loc.state, loc.country, loc.status))
    return rows


def _replace_children(session: Session, new: list[StudyRecord], changed: list[StudyRecord]) -> None:
    changed_ids = [r.nct_id for r in changed]
    for table in CHILD_TABLES:
        for chunk in batched(changed_ids):
            session.execute(delete(table).where(table.nct_id.in_(chunk)))
    for table, table_rows in _child_rows((*new, *changed)).items():
        if table_rows:
            _insert_tuples(session, table, _CHILD_COLUMNS[table], table_rows)


def _insert_versions(session: Session, records: list[StudyRecord], now: datetime, run_id: int) -> None:
    if records:
        _insert_rows(
            session,
            StudyVersion,
            [
                {
                    "nct_id": r.nct_id,
                    "seen_at": now,
                    "last_update_posted": r.last_update_posted,
                    "content_hash": r.content_hash,
                    "raw": r.raw,
                    "sync_run_id": run_id,
                }
                for r in records
            ],
        )


def _insert_rows(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    """Insert many rows given as dicts that all carry the same keys."""
    columns = tuple(rows[0])
    values_of = operator.itemgetter(*columns)
    _insert_tuples(session, model, columns, [values_of(row) for row in rows])


def _insert_tuples(
    session: Session, model: type, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows with one executemany.

    On SQLite the values are converted to SQLAlchemy's own storage formats here and handed to the
    driver directly: the generic per-row parameter processing costs more than the inserts themselves.
    """
    table = model.__table__  # type: ignore[attr-defined]
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        connection.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    special = [
        (index, convert)
        for index, name in enumerate(columns)
        if (convert := _sqlite_converter(session, table.c[name].type)) is not None
    ]
    if special:
        converted = []
        for row in rows:
            values = list(row)
            for index, convert in special:
                if values[index] is not None:
                    values[index] = convert(values[index])
            converted.append(tuple(values))
        rows = converted
    sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
        table.name, ", ".join(f'"{name}"' for name in columns), ", ".join("?" * len(columns))
    )
    connection.exec_driver_sql(sql, rows)


# Cached: a page stamps thousands of rows with the same `now`, and registry dates repeat across studies.
@lru_cache(maxsize=1024)
def _sqlite_datetime(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DATETIME storage format


@lru_cache(maxsize=65536)
def _sqlite_date(value: date) -> str:
    return value.isoformat()


def _json_text(session: Session) -> Callable[[Any], str]:
    """Serialise JSON values once per session: a study's raw JSON goes to `studies` and `study_versions`."""
    memo: dict[int, tuple[Any, str]] = session.info.setdefault("json_text", {})

    def convert(value: Any) -> str:
        if not value:
            return "[]" if isinstance(value, list) else orjson.dumps(value).decode()
        hit = memo.get(id(value))
        if hit is not None and hit[0] is value:  # the memo holds the value, so its id stays unique
            return hit[1]
        text = orjson.dumps(value).decode()
        memo[id(value)] = (value, text)
        return text

    return convert


def _sqlite_converter(session: Session, column_type: Any) -> Any:
    if isinstance(column_type, DateTime):
        return _sqlite_datetime
    if isinstance(column_type, Date):
        return _sqlite_date
    if isinstance(column_type, JSON):
        return _json_text(session)
    if isinstance(column_type, Boolean):
        return int
    return None


def _event(nct_id: str, change: Change) -> dict[str, Any]:
    return {
        "nct_id": nct_id,
        "kind": change.kind,
        "field": change.field,
        "old_value": change.old,
        "new_value": change.new,
    }


def _count_page(session: Session, run_id: int, outcome: PageOutcome) -> None:
    run = session.get(SyncRun, run_id)
    if run is None:
        return
    run.pages = (run.pages or 0) + 1
    run.studies_seen = (run.studies_seen or 0) + outcome.seen
    run.studies_inserted = (run.studies_inserted or 0) + outcome.inserted
    run.studies_updated = (run.studies_updated or 0) + outcome.updated
    run.studies_unchanged = (run.studies_unchanged or 0) + outcome.unchanged
    run.studies_rejected = (run.studies_rejected or 0) + len(outcome.rejected)
    if outcome.rejected:
        run.rejections = [
            *(run.rejections or []),
            *({"nct_id": r.nct_id, "reason": r.reason} for r in outcome.rejected),
        ]
