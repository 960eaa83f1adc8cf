"""`tracker schedule`: APScheduler 3 running the daily sync and the weekly digest. Setup only.

- Jobs are kept in the same database (SQLAlchemyJobStore, table `apscheduler_jobs`), so a run missed while
  the scheduler was down is caught up once when it comes back (coalesce, a week of misfire grace).
- Jobs are stored by reference to functions in this module, with no arguments: settings (and the SMTP
  password) are never pickled into the database. The running scheduler binds them at start.
- One scheduler per database: it holds the lease "scheduler" in `locks` (see `tracker.locks`).
- SIGTERM or SIGINT stops it between jobs: a running job finishes first.
- Each job calls the same library function as its CLI command (`run_registries`, `run_digests`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from tracker.config import Settings
from tracker.errors import ConfigError, TrackerError
from tracker.locks import DEFAULT_TTL_SECONDS, Lease, LeaseHeldError, current_holder
from tracker.sync import check_query

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
JOBS_TABLE = "apscheduler_jobs"
MISFIRE_GRACE_SECONDS = int(timedelta(days=7).total_seconds())
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class _Runtime:
    engine: Engine
    settings: Settings


# Bound by `run_scheduler` for the life of the scheduler; stored jobs find their settings here.
_runtime: _Runtime | None = None


def _bound() -> _Runtime:
    if _runtime is None:
        raise RuntimeError("scheduler job called outside a running scheduler")
    return _runtime


def sync_job() -> str:
    """The daily job: `tracker sync --registry TRACKER_SCHEDULE_REGISTRY` (every registry by default;
    incremental once a watermark exists; classifies what landed), then, with TRACKER_SCHEDULE_HISTORY,
    `tracker history` for the ClinicalTrials.gov trials that moved (a failure there is logged and leaves
    the sync's result alone). One registry failing does not keep the other from syncing. When anything
    landed, the stored trial frame is refreshed, so the next dashboard process loads rather than builds it."""
    from tracker.sync import SyncResult, registries_named, run_registries, synced

    runtime = _bound()
    try:
        outcomes = run_registries(
            runtime.engine, runtime.settings, registries_named(runtime.settings.schedule_registry)
        )
    except TrackerError as exc:  # the lease is held, or the registry setting is unknown
        log.error("sync job failed: %s", exc)
        return f"failed: {exc}"
    parts = []
    for registry, outcome in outcomes:
        if isinstance(outcome, TrackerError):
            log.error("sync job (%s) failed: %s", registry, outcome)
            parts.append(f"{registry} failed: {outcome}")
        else:
            log.info("sync job (%s): %s", registry, outcome.summary())
            parts.append(f"{registry} {outcome.summary()}")
    summary = "; ".join(parts)
    landed = any(isinstance(outcome, SyncResult) and outcome.landed for _, outcome in outcomes)
    if runtime.settings.schedule_history and synced(outcomes, "ctgov"):
        history, history_landed = history_after_sync(runtime)
        summary = f"{summary}; {history}"
        landed = landed or history_landed
    if landed:
        refresh_frame_snapshot(runtime)
    return summary


def history_after_sync(runtime: _Runtime) -> tuple[str, bool]:
    """`tracker history` after the sync: its summary, and whether it stored anything."""
    from tracker.history import run_history

    try:
        history = run_history(runtime.engine, runtime.settings)
    except TrackerError as exc:
        log.error("history after the sync failed: %s", exc)
        return f"history failed: {exc}", False
    for failure in history.failed:
        log.warning("history of %s not accepted: %s", failure.registration_id, failure.reason)
    log.info("sync job: %s", history.summary())
    return history.summary(), bool(history.accepted or history.versions_fetched)


def refresh_frame_snapshot(runtime: _Runtime) -> None:
    """Store the trial frame of what just landed (`tracker.query.refresh_trial_frame_snapshot`); a failure
    is logged and leaves the job's result alone: the dashboard then builds the frame itself."""
    from sqlalchemy.exc import SQLAlchemyError

    from tracker.query import refresh_trial_frame_snapshot

    try:
        log.info("sync job: %s", refresh_trial_frame_snapshot(runtime.engine))
    except (TrackerError, SQLAlchemyError) as exc:
        log.error("trial frame snapshot not refreshed: %s", exc)


def digest_job() -> str:
    """The weekly job: `tracker digest --send` for every subscription."""
    from tracker.digest.run import run_digests
    from tracker.digest.send import SmtpSender

    runtime = _bound()
    try:
        with SmtpSender(runtime.settings) as sender:
            report = run_digests(runtime.engine, runtime.settings, sender)
    except TrackerError as exc:
        log.error("digest job failed: %s", exc)
        return f"failed: {exc}"
    for failure in report.failed:
        log.error("digest %s", failure.line())
    return report.summary()


@dataclass(frozen=True)
class JobSpec:
    """A job: its id, the function (stored by reference, so it must be importable) and its trigger."""

    id: str
    func: Callable[[], Any]
    trigger: BaseTrigger


def cron_trigger(expression: str, timezone: str, setting: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expression, timezone=timezone)
    except (ValueError, LookupError) as exc:
        raise ConfigError(
            f"invalid TRACKER_{setting.upper()} {expression!r} (timezone {timezone}): {exc}"
        ) from None


def default_jobs(settings: Settings) -> list[JobSpec]:
    return [
        JobSpec("sync", sync_job, cron_trigger(settings.sync_cron, settings.timezone, "sync_cron")),
        JobSpec("digest", digest_job, cron_trigger(settings.digest_cron, settings.timezone, "digest_cron")),
    ]


def _log_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        log.warning("job %s missed its run at %s", event.job_id, event.scheduled_run_time)
    elif event.exception is not None:
        log.error("job %s crashed: %s: %s", event.job_id, type(event.exception).__name__, event.exception)
    else:
        log.info("job %s finished (scheduled %s): %s", event.job_id, event.scheduled_run_time, event.retval)


def _same_schedule(stored: Any, spec: JobSpec) -> bool:
    """Keep a stored job (and its pending next run) when neither its function nor its trigger changed."""
    return (
        stored is not None and stored.func_ref == _ref(spec.func) and str(stored.trigger) == str(spec.trigger)
    )


def _ref(func: Callable[[], Any]) -> str:
    return f"{func.__module__}:{func.__qualname__}"


def build_scheduler(engine: Engine, settings: Settings) -> BackgroundScheduler:
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)},
        executors={"default": {"type": "threadpool", "max_workers": 1}},
        job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE_SECONDS, "max_instances": 1},
        timezone=settings.timezone,
    )


def install_jobs(scheduler: BackgroundScheduler, jobs: Sequence[JobSpec]) -> None:
    """Add or update the jobs on a started (paused) scheduler, keeping unchanged ones so missed runs fire."""
    wanted = {spec.id for spec in jobs}
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            log.info("removing job %s (no longer scheduled)", job.id)
            job.remove()
    for spec in jobs:
        stored = scheduler.get_job(spec.id)
        if _same_schedule(stored, spec):
            log.info("job %s: next run %s (%s)", spec.id, stored.next_run_time, spec.trigger)
            continue
        job = scheduler.add_job(spec.func, spec.trigger, id=spec.id, name=spec.id, replace_existing=True)
        log.info("job %s scheduled: next run %s (%s)", spec.id, job.next_run_time, spec.trigger)


def run_scheduler(
    engine: Engine,
    settings: Settings,
    *,
    jobs: Sequence[JobSpec] | None = None,
    stop: threading.Event | None = None,
    handle_signals: bool = True,
    lease_ttl_seconds: float = DEFAULT_TTL_SECONDS,
) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT when `handle_signals`); raises LeaseHeldError if another
    scheduler holds this database."""
    global _runtime
    check_query(settings)  # the daily sync must not fetch the whole registry
    jobs = default_jobs(settings) if jobs is None else list(jobs)
    stop = stop or threading.Event()
    with Lease(engine, LEASE_NAME, ttl_seconds=lease_ttl_seconds) as lease:
        previous = _install_signal_handlers(stop) if handle_signals else {}
        _runtime = _Runtime(engine, settings)
        scheduler = build_scheduler(engine, settings)
        scheduler.add_listener(_log_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        try:
            scheduler.start(paused=True)
            install_jobs(scheduler, jobs)
            scheduler.resume()
            log.info("scheduler started (%d jobs, timezone %s)", len(jobs), settings.timezone)
            while not stop.wait(POLL_SECONDS) and not lease.lost.is_set():
                pass
            log.info("scheduler stopping: waiting for a running job to finish")
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)
            _runtime = None
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if lease.lost.is_set():
            # Another scheduler now runs the jobs; exiting non-zero tells a supervisor this one was displaced.
            holder = current_holder(engine, LEASE_NAME)
            taker = holder.owner if holder else "another process"
            raise LeaseHeldError(
                f"stopped: the {LEASE_NAME} lease was taken over by {taker} "
                "(this process missed its heartbeats for longer than the lease lasts)"
            )
        log.info("scheduler stopped")


def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, request_stop)
    return previous
