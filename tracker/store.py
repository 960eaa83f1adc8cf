"""The write side: sync runs, and one page of raw studies upserted in one transaction.

Every ingest path (API sync, file import) goes through `ingest_page`, so a run killed at any moment
leaves whole pages behind and the next run finishes the job. `store_page` is the page's write inside a
caller's transaction, for callers that do more in the same transaction (e.g. classify what landed).

Never wrong under stress:
- One bad record fails alone. Text is cleaned of NUL and other control characters (Postgres cannot store
  NUL; nothing in the registry needs them), registry text has no length limit, and numbers beyond what their
  column holds reject the record with the field named. If a page's write still fails, the page is written
  again record by record, each in its own transaction, and only the offender is rejected.
- Writes are idempotent: studies, child rows, versions (per study and content hash) and change events (per
  study and event key) are inserted with ON CONFLICT DO NOTHING, so re-landing a page, or two writers that
  slip past the lease, never duplicate anything.
- Bulk writes: on SQLite one driver-level executemany; on Postgres COPY into a temporary table, then one
  INSERT … SELECT … ON CONFLICT (the generic executemany spends most of its time per parameter).
"""

from __future__ import annotations

import gc
import itertools
import logging
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from typing import Any, TypeVar

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
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError
from sqlalchemy.orm import Session

from tracker.changes import (
    Change,
    StudyDetails,
    StudySnapshot,
    details_from_rows,
    diff_snapshots,
    format_enrollment,
    format_partial_date,
    snapshot_of,
)
from tracker.ctgov.parse import PartialDate, StudyRecord, parse_study
from tracker.db.models import (
    ArmGroup,
    ChangeEvent,
    Collaborator,
    Condition,
    Intervention,
    Keyword,
    Location,
    OutcomeMeasure,
    RegistrationCountry,
    RegistrationIdentifier,
    SecondaryId,
    Study,
    StudyVersion,
    SyncRun,
)
from tracker.db.session import batched, one_line, transaction, utcnow
from tracker.errors import RecordError
from tracker.identifiers import carried_ids
from tracker.ledger import last_clean_run, watermark  # noqa: F401  (re-exported; read by `status` alone)
from tracker.link_store import relink, study_values
from tracker.registries import parse_stored

log = logging.getLogger(__name__)

CHILD_TABLES = (
    Condition,
    Keyword,
    Intervention,
    Collaborator,
    Location,
    OutcomeMeasure,
    ArmGroup,
    SecondaryId,
    RegistrationIdentifier,
    RegistrationCountry,
)

# The range of the INTEGER columns registry numbers go to (Postgres INTEGER; SQLite holds more).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# Control characters other than tab, newline and carriage return: never meaningful in registry text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A write error one record can cause (a value the database refuses); anything else (disk full, connection
# lost) stops the run instead of rejecting every record in turn.
_RECORD_WRITE_ERRORS = (
    DataError,
    IntegrityError,
    ProgrammingError,
    ValueError,
    OverflowError,
)


@dataclass(frozen=True, slots=True)
class Rejection:
    registration_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A source item that could not even be decoded (e.g. one bad JSON Lines line): rejected alone."""

    reason: str


class JsonText(str):
    """A JSON value already serialised (by a worker process, say): stored as it is, not encoded again."""

    __slots__ = ()


@dataclass(slots=True)
class PageResult:
    """What one page did to the store; `landed` holds the parsed records inserted or updated."""

    seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    landed: list[StudyRecord] = field(default_factory=list)
    classified: int = 0  # studies the `on_landed` hook classified in the page's transaction

    @property
    def changed_ids(self) -> list[str]:  # inserted or updated
        return [record.registration_id for record in self.landed]

    def merge(self, other: PageResult) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected.extend(other.rejected)
        self.landed.extend(other.landed)
        self.classified += other.classified


# Called inside a page's transaction with the records it inserted or updated; returns how many it handled.
LandedHook = Callable[[Session, Sequence[StudyRecord]], int]
Parser = Callable[[object], StudyRecord]  # one registry's raw record → StudyRecord


def begin_run(
    engine: Engine,
    *,
    mode: str,
    query: str | None,
    source: str | None,
    data_timestamp: str | None,
    started_at: datetime | None = None,
    registry: str = "ctgov",
) -> int:
    """Record the start of a sync or import (`started_at` when it began before it could be recorded, e.g.
    a run that failed on its first request).

    Its events are baseline (the first load, not news) until some run has completed a full pass (a full
    sync or an import, rejected records allowed), whatever interrupted the runs before it.
    """
    with transaction(engine) as session:
        baseline = not session.scalar(select(exists().where(completed_full_pass())))
        run = SyncRun(
            registry_name=registry,
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
    data_timestamp: str | None = None,
) -> None:
    values: dict[str, Any] = {"finished_at": utcnow(), "outcome": outcome, "error": error}
    if total_count is not None:
        values["total_count"] = total_count
    if data_timestamp is not None:  # CTIS: the newest update the run saw, known only at its end
        values["data_timestamp"] = data_timestamp
    with transaction(engine) as session:
        session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))


def completed_full_pass() -> Any:
    """The condition on `sync_runs` of a run that finished a full pass (the end of the baseline)."""
    return SyncRun.mode.in_(("full", "import")) & SyncRun.outcome.in_(("success", "partial"))


def get_run(engine: Engine, run_id: int) -> SyncRun | None:
    with transaction(engine) as session:
        return session.get(SyncRun, run_id)


def ingest_page(
    engine: Engine,
    run_id: int,
    raw_studies: Iterable[object],
    *,
    seen_at: datetime | None = None,
    on_landed: LandedHook | None = None,
    parse: Parser = parse_study,
) -> PageResult:
    """Parse, upsert and diff one page of raw studies (of one registry: `parse`) in a single transaction.

    A record that cannot be parsed or stored is rejected alone (with its NCT ID and reason); the rest of
    the page lands. When the page's write fails, the page is written again record by record. `on_landed`
    (the classifier, for a sync or an import) gets the inserted and updated records already parsed, in the
    same transaction: a page (or, when retried, a record) is stored and classified together or not at all.
    """
    with gc_paused():
        now = seen_at or utcnow()
        result = PageResult()
        records = parse_page(raw_studies, result, parse)
        with interrupts_between_pages():
            try:
                with transaction(engine) as session:
                    result.merge(_store_and_classify(session, run_id, records, now, on_landed))
                    _count_page(session, run_id, result)
            except _RECORD_WRITE_ERRORS as exc:
                log.warning("page write failed (%s); writing it record by record", _write_error(exc))
                result.merge(_store_one_by_one(engine, run_id, records, now, on_landed))
                with transaction(engine) as session:
                    _count_page(session, run_id, result)
        return result


@contextmanager
def interrupts_between_pages() -> Iterator[None]:
    """Ctrl-C while a page is written takes effect once the page's transaction has ended.

    An interrupt raised inside a driver call leaves SQLite's statement unfinished: the connection SQLAlchemy
    then discards is closed as a "zombie" that keeps its write transaction (and the database's write lock)
    until the traceback holding the statement is gone, so recording the failed run waits out the busy
    timeout. Deferred to the page's end, the page has landed or rolled back whole. Only the main thread of
    a process whose Ctrl-C raises KeyboardInterrupt (a command) defers; a page takes under a second."""
    import signal
    import threading

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def _store_and_classify(
    session: Session, run_id: int, records: Sequence[StudyRecord], now: datetime, on_landed: LandedHook | None
) -> PageResult:
    result = store_page(session, run_id, records, now=now)
    if on_landed is not None and result.landed:
        result.classified = on_landed(session, result.landed)
    return result


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


Decoded = TypeVar("Decoded")


def each_decoded(items: Iterator[Decoded]) -> Iterator[Decoded]:
    """The items of a lazy decoder (a sync's pages, an import's chunks), the collector paused while each
    is decoded: decoding allocates much and frees it all by reference counting. Nothing here holds an item
    once the next is asked for, so a caller that lets go of its own can have it freed first."""
    while True:
        with gc_paused():
            item = next(items, None)
        if item is None:
            return
        yield item
        del item


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


def parse_page(
    raw_studies: Iterable[object], result: PageResult, parse: Parser = parse_study
) -> list[StudyRecord]:
    """Parse a page's raw studies with their registry's parser, counting each in `result` and rejecting the
    unusable ones there.

    A page may repeat a study; the last copy wins.
    """
    records: dict[str, StudyRecord] = {}
    for raw in raw_studies:
        result.seen += 1
        if isinstance(raw, Unreadable):
            log.debug("rejected %s", raw.reason)  # the CLI prints each rejection once
            result.rejected.append(Rejection(None, raw.reason))
            continue
        try:
            record = parse(raw)
            check_bounds(record)
        except RecordError as exc:
            # Debug only: the run records each rejection and the CLI prints it once at the end.
            log.debug("rejected %s", exc)
            result.rejected.append(Rejection(exc.registration_id, exc.reason))
            continue
        records[record.registration_id] = record
    return list(records.values())


def check_bounds(record: StudyRecord) -> None:
    """Refuse numbers no column can hold (rather than let the database refuse the whole page)."""
    count = record.enrollment_count
    if count is not None and not INT_MIN <= count <= INT_MAX:
        raise RecordError(f"enrollmentInfo.count {count} is out of range", record.registration_id)


def store_page(session: Session, run_id: int, records: Sequence[StudyRecord], *, now: datetime) -> PageResult:
    """Upsert and diff parsed records inside the caller's transaction; returns what landed.

    The run's counters are not touched (`ingest_page` counts the page once it is written).
    """
    result = PageResult()
    run = session.get(SyncRun, run_id)
    baseline = bool(run and run.baseline)
    stored = _stored_snapshots(session, [record.registration_id for record in records])
    _add_stored_details(session, stored, {record.registration_id: record for record in records})
    new: list[StudyRecord] = []
    changed: list[StudyRecord] = []
    events: list[dict[str, Any]] = []
    restored: list[str] = []
    for record in records:
        registration_id = record.registration_id
        previous = stored.get(registration_id)
        snapshot, removed_at, posted = previous if previous else (None, None, None)
        if _is_older(record, posted):
            # An older bulk download imported after a sync must not roll the study back.
            log.info(
                "kept %s: stored version (posted %s) is newer than the one received", registration_id, posted
            )
            continue
        if removed_at is not None:
            restored.append(registration_id)
            restore = Change("other", "removed_at", str(removed_at), None)
            events.append(
                _event(registration_id, restore, f"{record.content_hash}:restored:{removed_at.isoformat()}")
            )
        changes = diff_snapshots(snapshot, snapshot_of(record))
        if snapshot is None:
            new.append(record)
        elif changes:
            changed.append(record)
        events.extend(
            _event(registration_id, change, f"{record.content_hash}:{change.kind}:{change.field or ''}")
            for change in changes
        )

    _insert_studies(session, new, now)
    _update_studies(session, changed, now)
    changed_ids = {r.registration_id for r in changed}
    unchanged = [
        r.registration_id
        for r in records
        if r.registration_id in stored and r.registration_id not in changed_ids
    ]
    _touch_unchanged(session, unchanged, now, restored)
    _replace_children(session, new, changed)
    relink(session, [r.registration_id for r in (*new, *changed)])
    _insert_versions(session, [*new, *changed], now, run_id)
    if events:
        for event in events:
            event.update(detected_at=now, sync_run_id=run_id, baseline=baseline)
        insert_rows(session, ChangeEvent, events)

    result.inserted, result.updated = len(new), len(changed)
    result.unchanged = len(records) - len(new) - len(changed)  # older copies count as unchanged
    result.landed = [*new, *changed]
    return result


def _store_one_by_one(
    engine: Engine, run_id: int, records: list[StudyRecord], now: datetime, on_landed: LandedHook | None
) -> PageResult:
    """Write each record in its own transaction; a record the database refuses is rejected alone."""
    result = PageResult()
    for record in records:
        try:
            with transaction(engine) as session:
                result.merge(_store_and_classify(session, run_id, [record], now, on_landed))
        except _RECORD_WRITE_ERRORS as exc:
            reason = f"cannot be stored: {_write_error(exc)}"
            log.debug("rejected %s: %s", record.registration_id, reason)
            result.rejected.append(Rejection(record.registration_id, reason))
    return result


def _write_error(exc: BaseException) -> str:
    """The database's (or driver's) own words, on one line and short enough for a log or a run record."""
    text = one_line(getattr(exc, "orig", None) or exc)
    return text if len(text) <= 300 else text[:297] + "..."


def flag_removed(
    engine: Engine, run_id: int, seen_ids: Collection[str], *, registry: str = "ctgov"
) -> list[str]:
    """After a complete full pass of one registry: flag (never delete) its registrations the query no longer
    returns (another registry's registrations are not that pass's to judge).

    Only rows this call flips get a "removed" event, so two passes at once cannot report a removal twice.
    """
    seen = set(seen_ids)
    now = utcnow()
    with transaction(engine) as session:
        rows = session.execute(
            select(Study.registration_id, Study.overall_status).where(
                Study.removed_at.is_(None), Study.registry_name == registry
            )
        ).all()
        status_of = {
            registration_id: status for registration_id, status in rows if registration_id not in seen
        }
        if not status_of:
            return []
        gone: list[str] = []
        for chunk in batched(sorted(status_of)):
            gone.extend(
                session.scalars(
                    update(Study)
                    .where(Study.registration_id.in_(chunk), Study.removed_at.is_(None))
                    .values(removed_at=now)
                    .returning(Study.registration_id)
                )
            )
        if not gone:
            return []
        insert_rows(
            session,
            ChangeEvent,
            [
                {
                    **_event(
                        registration_id,
                        Change("removed", None, status_of[registration_id], None),
                        f"removed:{now.isoformat()}",
                    ),
                    "detected_at": now,
                    "sync_run_id": run_id,
                    "baseline": False,
                }
                for registration_id in gone
            ],
        )
        run = session.get(SyncRun, run_id)
        if run is not None:
            run.studies_removed = (run.studies_removed or 0) + len(gone)
    return gone


def refill_details(engine: Engine, *, batch_size: int = 500) -> int:
    """Re-derive every stored study's columns and child rows from the raw JSON it keeps; returns the count.

    For databases stored before a schema revision added derived fields: an incremental sync rewrites only
    studies whose content moved, so the rest would stay empty. Writes no change events and leaves the
    bookkeeping (first/last seen, removed) alone. A raw record that no longer parses keeps its old rows.
    """
    with transaction(engine) as session:
        registration_ids = list(
            session.scalars(select(Study.registration_id).order_by(Study.registration_id))
        )
    refilled = 0
    with gc_paused():
        for chunk in batched(registration_ids, batch_size):
            with transaction(engine) as session:
                records = []
                for registration_id, registry, raw in session.execute(
                    select(Study.registration_id, Study.registry_name, Study.raw).where(
                        Study.registration_id.in_(chunk)
                    )
                ):
                    try:
                        records.append(parse_stored(registry, raw))
                    except RecordError as exc:
                        log.warning("kept the stored rows of %s: %s", registration_id, exc.reason)
                _write_study_columns(session, records, {})
                _replace_children(session, [], records)
                relink(session, [record.registration_id for record in records])
                refilled += len(records)
    return refilled


# --- helpers -------------------------------------------------------------------------------------


def _is_older(record: StudyRecord, stored_posted: date | None) -> bool:
    posted = record.last_update_posted
    return stored_posted is not None and posted is not None and posted < stored_posted


def stored_content_hashes(engine: Engine, registration_ids: Collection[str]) -> dict[str, str]:
    """The content hash stored for each of these registrations the store holds."""
    with transaction(engine) as session:
        return study_values(session, registration_ids, Study.content_hash)


def _stored_snapshots(
    session: Session, registration_ids: list[str]
) -> dict[str, tuple[StudySnapshot, datetime | None, date | None]]:
    """What is stored for these studies: the snapshot to diff, when flagged removed, last update posted."""
    columns = (
        Study.registration_id,
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
    for chunk in batched(registration_ids):
        for row in session.execute(select(*columns).where(Study.registration_id.in_(chunk))):
            found[row.registration_id] = (
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


def _add_stored_details(
    session: Session,
    stored: dict[str, tuple[StudySnapshot, datetime | None, date | None]],
    records: dict[str, StudyRecord],
) -> None:
    """Load the stored details of the studies whose content moved (the only ones diffed field by field)."""
    moved = [i for i, (snapshot, *_) in stored.items() if snapshot.content_hash != records[i].content_hash]
    for registration_id, details in stored_details(session, moved).items():
        snapshot, removed_at, posted = stored[registration_id]
        stored[registration_id] = (replace(snapshot, details=details), removed_at, posted)


def stored_details(session: Session, registration_ids: list[str]) -> dict[str, StudyDetails]:
    """The change-detection details of stored studies, read from their columns and child rows."""
    found: dict[str, StudyDetails] = {}
    for chunk in batched(registration_ids):
        outcomes: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
        for row in session.execute(
            select(
                OutcomeMeasure.registration_id,
                OutcomeMeasure.role,
                OutcomeMeasure.measure,
                OutcomeMeasure.time_frame,
            )
            .where(OutcomeMeasure.registration_id.in_(chunk))
            .order_by(OutcomeMeasure.registration_id, OutcomeMeasure.position)
        ):
            outcomes[row.registration_id].append((row.role, row.measure, row.time_frame))
        arms: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
        for row in session.execute(
            select(ArmGroup.registration_id, ArmGroup.label, ArmGroup.type)
            .where(ArmGroup.registration_id.in_(chunk))
            .order_by(ArmGroup.registration_id, ArmGroup.position)
        ):
            arms[row.registration_id].append((row.label, row.type))
        columns = (
            Study.registration_id,
            Study.official_title,
            Study.brief_summary,
            Study.allocation,
            Study.intervention_model,
            Study.masking,
            Study.primary_purpose,
            Study.eligibility_criteria,
            Study.minimum_age,
            Study.maximum_age,
            Study.sex,
            Study.healthy_volunteers,
        )
        for row in session.execute(select(*columns).where(Study.registration_id.in_(chunk))):
            values = row._asdict()
            registration_id = values.pop("registration_id")
            found[registration_id] = details_from_rows(
                outcomes=outcomes[registration_id], arms=arms[registration_id], **values
            )
    return found


def _date_columns(prefix: str, value: PartialDate | None) -> dict[str, Any]:
    if value is None:
        return {prefix: None, f"{prefix}_raw": None, f"{prefix}_precision": None, f"{prefix}_type": None}
    return {
        prefix: value.first_day,
        f"{prefix}_raw": value.raw,
        f"{prefix}_precision": value.precision,
        f"{prefix}_type": clean_text(value.type),
    }


def clean_text(value: str | None) -> str | None:
    """Registry text without NUL and other control characters (tab and line breaks stay)."""
    if value and _CONTROL.search(value):
        return _CONTROL.sub("", value)
    return value


def _clean_all(values: Iterable[str]) -> list[str]:
    return [clean_text(value) or "" for value in values]


def study_columns(record: StudyRecord) -> dict[str, Any]:
    """The `studies` row for a record (without the bookkeeping timestamps)."""
    lead, design = record.lead_sponsor, record.design
    c = clean_text
    return {
        "registration_id": record.registration_id,
        "registry": record.registry,
        "registry_status": c(record.registry_status),
        "decision_date": record.decision_date,
        "brief_title": c(record.brief_title),
        "official_title": c(record.official_title),
        "acronym": c(record.acronym),
        "overall_status": c(record.overall_status),
        "last_known_status": c(record.last_known_status),
        "why_stopped": c(record.why_stopped),
        "phases": _clean_all(record.phases),
        "study_type": c(record.study_type),
        "enrollment_count": record.enrollment_count,
        "enrollment_type": c(record.enrollment_type),
        **_date_columns("start_date", record.start_date),
        **_date_columns("primary_completion_date", record.primary_completion_date),
        **_date_columns("completion_date", record.completion_date),
        "first_posted": record.first_posted,
        "last_update_posted": record.last_update_posted,
        "results_first_posted": record.results_first_posted,
        "has_results": record.has_results,
        "lead_sponsor_name": c(lead.name) if lead else None,
        "lead_sponsor_class": c(lead.agency_class) if lead else None,
        "brief_summary": c(record.brief_summary),
        "allocation": c(design.allocation),
        "intervention_model": c(design.intervention_model),
        "masking": c(design.masking),
        "primary_purpose": c(design.primary_purpose),
        "eligibility_criteria": c(record.eligibility_criteria),
        "minimum_age": c(record.minimum_age),
        "maximum_age": c(record.maximum_age),
        "minimum_age_years": record.minimum_age_years,
        "maximum_age_years": record.maximum_age_years,
        "sex": c(record.sex),
        "healthy_volunteers": record.healthy_volunteers,
        "std_ages": _clean_all(record.std_ages),
        "content_hash": record.content_hash,
        "raw": record.raw,
    }


def _insert_studies(session: Session, records: list[StudyRecord], now: datetime) -> None:
    if records:
        # A new registration is a trial of its own until linking (`tracker.link_store`) says otherwise.
        rows = [
            {**study_columns(r), "trial_id": r.registration_id, "first_seen_at": now, "last_seen_at": now}
            for r in records
        ]
        insert_rows(session, Study, rows)


def _update_studies(session: Session, records: list[StudyRecord], now: datetime) -> None:
    _write_study_columns(session, records, {"last_seen_at": now, "removed_at": None})


def _write_study_columns(session: Session, records: list[StudyRecord], extra: dict[str, Any]) -> None:
    if not records:
        return
    rows = [{**study_columns(record), **extra} for record in records]
    connection = session.connection()
    columns = tuple(rows[0])
    if connection.dialect.name == "postgresql":
        values_of = operator.itemgetter(*columns)
        staged = _copy_to_temp(session, Study.__table__, columns, [values_of(row) for row in rows])
        assignments = ", ".join(f'"{name}" = t."{name}"' for name in columns if name != "registration_id")
        connection.exec_driver_sql(
            f'UPDATE studies AS s SET {assignments} FROM "{staged}" AS t'
            " WHERE s.registration_id = t.registration_id"
        )
        return
    for row in rows:
        row["b_registration_id"] = row.pop("registration_id")
    statement = (
        update(Study)
        .where(Study.registration_id == bindparam("b_registration_id"))
        .values({name: bindparam(name) for name in rows[0] if name != "b_registration_id"})
    )
    connection.execute(statement, rows)


def _touch_unchanged(
    session: Session, registration_ids: list[str], now: datetime, restored: list[str]
) -> None:
    # last_seen_at tells when the registry last returned the study; restored ones lose their flag.
    for chunk in batched(registration_ids):
        session.execute(update(Study).where(Study.registration_id.in_(chunk)).values(last_seen_at=now))
    for chunk in batched(restored):
        session.execute(update(Study).where(Study.registration_id.in_(chunk)).values(removed_at=None))


_CHILD_COLUMNS: dict[type, tuple[str, ...]] = {
    Condition: ("registration_id", "position", "name"),
    Keyword: ("registration_id", "position", "name"),
    Intervention: (
        "registration_id",
        "position",
        "type",
        "name",
        "other_names",
        "description",
        "arm_group_labels",
        "arm_role",
    ),
    Collaborator: ("registration_id", "position", "name", "agency_class"),
    Location: ("registration_id", "position", "facility", "city", "state", "country", "status"),
    OutcomeMeasure: ("registration_id", "role", "position", "measure", "description", "time_frame"),
    ArmGroup: ("registration_id", "position", "label", "type", "description", "intervention_names"),
    SecondaryId: ("registration_id", "position", "identifier", "type", "domain"),
    RegistrationIdentifier: ("registration_id", "scheme", "value"),
    RegistrationCountry: ("registration_id", "position", "country", "status", "decision_date"),
}


def _child_rows(records: Iterable[StudyRecord]) -> dict[type, list[tuple[Any, ...]]]:
    """The child-table rows of many records, as tuples in `_CHILD_COLUMNS` order (text cleaned)."""
    rows: dict[type, list[tuple[Any, ...]]] = {table: [] for table in _CHILD_COLUMNS}
    conditions, keywords, interventions = rows[Condition], rows[Keyword], rows[Intervention]
    collaborators, locations = rows[Collaborator], rows[Location]
    outcomes, arms, secondary_ids = rows[OutcomeMeasure], rows[ArmGroup], rows[SecondaryId]
    identifiers, countries = rows[RegistrationIdentifier], rows[RegistrationCountry]
    c = clean_text
    for record in records:
        registration_id = record.registration_id
        for i, name in enumerate(record.conditions):
            conditions.append((registration_id, i, c(name)))
        for i, name in enumerate(record.keywords):
            keywords.append((registration_id, i, c(name)))
        for i, item in enumerate(record.interventions):
            interventions.append(
                (
                    registration_id,
                    i,
                    c(item.type),
                    c(item.name),
                    _clean_all(item.other_names),
                    c(item.description),
                    _clean_all(item.arm_group_labels),
                    item.arm_role,
                )
            )
        for i, org in enumerate(record.collaborators):
            collaborators.append((registration_id, i, c(org.name), c(org.agency_class)))
        for i, loc in enumerate(record.locations):
            locations.append(
                (
                    registration_id,
                    i,
                    c(loc.facility),
                    c(loc.city),
                    c(loc.state),
                    c(loc.country),
                    c(loc.status),
                )
            )
        for outcome in record.outcomes:
            outcomes.append(
                (
                    registration_id,
                    outcome.role,
                    outcome.order,
                    c(outcome.measure),
                    c(outcome.description),
                    c(outcome.time_frame),
                )
            )
        for i, arm in enumerate(record.arm_groups):
            arms.append(
                (
                    registration_id,
                    i,
                    c(arm.label),
                    c(arm.type),
                    c(arm.description),
                    _clean_all(arm.intervention_names),
                )
            )
        for i, sid in enumerate(record.secondary_ids):
            secondary_ids.append((registration_id, i, c(sid.id), c(sid.type), c(sid.domain)))
        for identifier in sorted(carried_ids(record)):
            identifiers.append((registration_id, identifier.scheme, identifier.value))
        for i, country in enumerate(record.countries):
            countries.append(
                (registration_id, i, c(country.country), c(country.status), country.decision_date)
            )
    return rows


def _replace_children(session: Session, new: list[StudyRecord], changed: list[StudyRecord]) -> None:
    changed_ids = [r.registration_id for r in changed]
    for table in CHILD_TABLES:
        for chunk in batched(changed_ids):
            session.execute(delete(table).where(table.registration_id.in_(chunk)))
    for table, table_rows in _child_rows((*new, *changed)).items():
        if table_rows:
            _insert_tuples(session, table, _CHILD_COLUMNS[table], table_rows)


def _insert_versions(session: Session, records: list[StudyRecord], now: datetime, run_id: int) -> None:
    if records:
        insert_rows(
            session,
            StudyVersion,
            [
                {
                    "registration_id": r.registration_id,
                    "seen_at": now,
                    "last_update_posted": r.last_update_posted,
                    "content_hash": r.content_hash,
                    "raw": r.raw,
                    "sync_run_id": run_id,
                }
                for r in records
            ],
        )


def insert_rows(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    """Insert many rows given as dicts that all carry the same keys, skipping any that would duplicate a
    unique key (COPY on Postgres, one driver-level executemany on SQLite)."""
    columns = tuple(rows[0])
    values_of = operator.itemgetter(*columns)
    _insert_tuples(session, model, columns, [values_of(row) for row in rows])


def _insert_tuples(
    session: Session, model: type, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows, skipping any that would duplicate a unique key (ON CONFLICT DO NOTHING).

    Postgres: COPY into a temporary table, then one INSERT … SELECT. SQLite: the values are converted to
    SQLAlchemy's own storage formats here and handed to the driver in one executemany: the generic
    per-row parameter processing costs more than the inserts themselves.
    """
    table = model.__table__  # type: ignore[attr-defined]
    connection = session.connection()
    names = ", ".join(f'"{name}"' for name in columns)
    if connection.dialect.name == "postgresql":
        staged = _copy_to_temp(session, table, columns, rows)
        connection.exec_driver_sql(
            f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{staged}" ON CONFLICT DO NOTHING'
        )
        return
    rows = _converted(session, table, columns, rows, _sqlite_converter)
    placeholders = ", ".join("?" * len(columns))
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({placeholders}) ON CONFLICT DO NOTHING'
    connection.exec_driver_sql(sql, rows)


_temp_names = itertools.count()


def _copy_to_temp(session: Session, table: Any, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> str:
    """COPY rows into a new temporary table shaped like `table`'s `columns` (dropped at commit)."""
    staged = f"_load_{table.name}_{next(_temp_names)}"
    names = ", ".join(f'"{name}"' for name in columns)
    rows = _converted(session, table, columns, rows, _postgres_converter)
    driver = _driver_connection(session.connection())
    with driver.cursor() as cursor:
        cursor.execute(
            f'CREATE TEMPORARY TABLE "{staged}" ON COMMIT DROP '
            f'AS SELECT {names} FROM "{table.name}" WITH NO DATA'
        )
        with cursor.copy(f'COPY "{staged}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
    return staged


def _driver_connection(connection: Connection) -> Any:
    """The psycopg connection under SQLAlchemy's, in the same transaction."""
    return connection.connection.driver_connection


def _converted(
    session: Session,
    table: Any,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    converter: Callable[[Session, Any], Any],
) -> list[tuple[Any, ...]]:
    special = [
        (index, convert)
        for index, name in enumerate(columns)
        if (convert := converter(session, table.c[name].type)) is not None
    ]
    if not special:
        return rows
    converted = []
    for row in rows:
        values = list(row)
        for index, convert in special:
            if values[index] is not None:
                values[index] = convert(values[index])
        converted.append(tuple(values))
    return converted


def _postgres_converter(session: Session, column_type: Any) -> Any:
    # COPY's text format takes JSON as its text; psycopg would send a list as a Postgres array.
    return _json_text(session) if isinstance(column_type, JSON) else None


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
        if type(value) is JsonText:
            return value
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


def _event(registration_id: str, change: Change, key: str) -> dict[str, Any]:
    return {
        "registration_id": registration_id,
        "kind": change.kind,
        "field": change.field,
        "old_value": clean_text(change.old),
        "new_value": clean_text(change.new),
        "event_key": key,
    }


def _count_page(session: Session, run_id: int, outcome: PageResult) -> None:
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
            *({"registration_id": r.registration_id, "reason": r.reason} for r in outcome.rejected),
        ]
