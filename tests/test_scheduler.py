"""The scheduler: jobs in the database, catch-up of a missed run, one scheduler per database, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.triggers.interval import IntervalTrigger
from click.testing import CliRunner
from digest_scenario import SUBSCRIBED, MailSink, load_baseline, load_week1, parts, scenario, start_smtp
from sqlalchemy import Engine, text

import tracker.db.session as session_module
from tracker import locks
from tracker.cli import main
from tracker.config import load_settings
from tracker.db.models import Lock
from tracker.db.session import transaction, utcnow
from tracker.filters import TrialFilter
from tracker.locks import (
    DEFAULT_TTL_SECONDS,
    Lease,
    LeaseHeldError,
    current_holder,
    release,
    renew,
    try_acquire,
)
from tracker.scheduler import JOBS_TABLE, JobSpec, build_scheduler, digest_job, install_jobs, run_scheduler
from tracker.subscriptions import add_subscription

REPO = Path(__file__).resolve().parents[1]
TICKS: list[datetime] = []


def tick() -> str:
    """A job stored by reference (test_scheduler:tick), as the real jobs are."""
    TICKS.append(utcnow())
    return f"tick {len(TICKS)}"


def age_lease(engine: Engine, name: str, seconds: float) -> None:
    """Move a lease's last heartbeat `seconds` into the past, as if its holder had stalled that long."""
    with transaction(engine) as session:
        row = session.get(Lock, name)
        assert row is not None
        row.heartbeat_at = row.heartbeat_at - timedelta(seconds=seconds)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll until `condition` holds; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


class SchedulerThread:
    """`run_scheduler` in a background thread, stopped through its stop event."""

    def __init__(
        self,
        engine: Engine,
        url: str,
        jobs: list[JobSpec],
        *,
        lease_ttl_seconds: float = DEFAULT_TTL_SECONDS,
        **settings: object,
    ) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        config = load_settings(database_url=url, **settings)

        def run() -> None:
            try:
                run_scheduler(
                    engine,
                    config,
                    jobs=jobs,
                    stop=self.stop,
                    handle_signals=False,
                    lease_ttl_seconds=lease_ttl_seconds,
                )
            except BaseException as exc:  # reported by the test
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)

    def __enter__(self) -> SchedulerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@pytest.fixture(autouse=True)
def fresh_ticks() -> Iterator[None]:
    TICKS.clear()
    yield
    TICKS.clear()


def stored_jobs(engine: Engine) -> dict[str, float]:
    with engine.connect() as connection:
        rows = connection.execute(text("select id, next_run_time from apscheduler_jobs")).all()
    return {row[0]: row[1] for row in rows}


def test_short_interval_job_runs_and_stops_cleanly(engine: Engine, db_url: str) -> None:
    job = JobSpec("tick", tick, IntervalTrigger(seconds=1))

    with SchedulerThread(engine, db_url, [job]) as running:
        wait_for(lambda: len(TICKS) >= 2, "two ticks")
        assert current_holder(engine, "scheduler") is not None
        assert set(stored_jobs(engine)) == {"tick"}

    assert running.error is None
    assert current_holder(engine, "scheduler") is None  # the lease is released on a clean stop
    assert set(stored_jobs(engine)) == {"tick"}  # the job stays in the database for the next start


def test_a_missed_run_is_caught_up_once(engine: Engine, db_url: str) -> None:
    hourly = JobSpec("tick", tick, IntervalTrigger(hours=1))
    settings = load_settings(database_url=db_url)
    # A scheduler that went down three hours ago: its job was due three times since.
    down = build_scheduler(engine, settings)
    down.start(paused=True)
    install_jobs(down, [hourly])
    down.shutdown()
    store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
    store.start(build_scheduler(engine, settings), "default")
    job = store.lookup_job("tick")
    job._modify(next_run_time=datetime.now(UTC) - timedelta(hours=3))  # what three hours of downtime leave
    store.update_job(job)
    assert stored_jobs(engine)["tick"] < time.time()

    with SchedulerThread(engine, db_url, [JobSpec("tick", tick, IntervalTrigger(hours=1))]) as running:
        wait_for(lambda: len(TICKS) >= 1, "the catch-up run")

    assert running.error is None
    assert len(TICKS) == 1  # coalesced: once, not three times
    assert stored_jobs(engine)["tick"] > time.time()  # and the next run is in the future


def test_a_changed_schedule_replaces_the_stored_job(engine: Engine, db_url: str) -> None:
    settings = load_settings(database_url=db_url)
    scheduler = build_scheduler(engine, settings)
    scheduler.start(paused=True)
    try:
        install_jobs(
            scheduler,
            [JobSpec("tick", tick, IntervalTrigger(hours=1)), JobSpec("old", tick, IntervalTrigger(hours=1))],
        )
        install_jobs(scheduler, [JobSpec("tick", tick, IntervalTrigger(hours=2))])
        assert [job.id for job in scheduler.get_jobs()] == ["tick"]
        assert str(scheduler.get_job("tick").trigger) == "interval[2:00:00]"
    finally:
        scheduler.shutdown()


def test_the_digest_job_sends_through_the_scheduler(engine: Engine, db_url: str) -> None:
    world = scenario()
    load_baseline(engine, world)
    add_subscription(engine, "reader@example.org", TrialFilter(relevance=()), now=SUBSCRIBED)
    load_week1(engine, world)
    sink = MailSink()
    controller = start_smtp(sink)
    try:
        job = JobSpec("digest", digest_job, IntervalTrigger(seconds=1))
        with SchedulerThread(
            engine, db_url, [job], smtp_host="127.0.0.1", smtp_port=controller.port
        ) as running:
            wait_for(lambda: len(sink.messages) >= 1, "the digest")
        assert running.error is None
        [message] = sink.messages  # later runs found nothing new to send
        text_part, _ = parts(message)
        assert "Recruitment opened: 2" in text_part
    finally:
        controller.stop()


def test_a_scheduler_whose_lease_is_taken_over_stops_with_an_error(engine: Engine, db_url: str) -> None:
    job = JobSpec("tick", tick, IntervalTrigger(hours=1))
    with SchedulerThread(engine, db_url, [job], lease_ttl_seconds=1.5) as running:
        wait_for(lambda: current_holder(engine, "scheduler") is not None, "the lease")

        # As a second scheduler would after this one stalled past its lease: a heartbeat seen as stale.
        def take_over() -> bool:
            age_lease(engine, "scheduler", 10)
            return try_acquire(engine, "scheduler", "intruder:1", ttl_seconds=1.5) is None

        wait_for(take_over, "the takeover")  # the holder's own heartbeat may land between the two steps
        running.thread.join(timeout=60)
    assert isinstance(running.error, LeaseHeldError)
    assert "taken over by intruder:1" in str(running.error)
    assert current_holder(engine, "scheduler").owner == "intruder:1"  # type: ignore[union-attr]


def test_lease_expires_when_its_holder_stops_beating(engine: Engine) -> None:
    assert try_acquire(engine, "scheduler", "host:1", ttl_seconds=90) is None
    holder = try_acquire(engine, "scheduler", "host:2", ttl_seconds=90)
    assert holder is not None and holder.owner == "host:1"
    assert renew(engine, "scheduler", "host:1")
    # 60 s after the last heartbeat the lease is still live; 91 s after, it has expired.
    age_lease(engine, "scheduler", 60)
    assert try_acquire(engine, "scheduler", "host:2", ttl_seconds=90) is not None
    age_lease(engine, "scheduler", 31)
    assert try_acquire(engine, "scheduler", "host:2", ttl_seconds=90) is None
    assert current_holder(engine, "scheduler").owner == "host:2"  # type: ignore[union-attr]
    assert not renew(engine, "scheduler", "host:1")  # the stalled holder learns it lost the lease
    release(engine, "scheduler", "host:1")  # and cannot release someone else's
    assert current_holder(engine, "scheduler").owner == "host:2"  # type: ignore[union-attr]


def test_lease_times_are_the_database_servers_not_the_callers(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert try_acquire(engine, "scheduler", "healthy:1", ttl_seconds=90) is None

    def ahead() -> datetime:  # a host whose clock runs 10 minutes fast
        return datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=10)

    monkeypatch.setattr(session_module, "utcnow", ahead)
    monkeypatch.setattr(locks, "utcnow", ahead, raising=False)
    # The fast host cannot take a healthy holder's lease over at once…
    holder = try_acquire(engine, "scheduler", "ahead:2", ttl_seconds=90)
    assert holder is not None and holder.owner == "healthy:1"
    # …and once it holds the lease and dies, its heartbeat (the server's time) expires after the TTL.
    release(engine, "scheduler", "healthy:1")
    assert try_acquire(engine, "scheduler", "ahead:2", ttl_seconds=90) is None
    monkeypatch.undo()
    age_lease(engine, "scheduler", 91)
    assert try_acquire(engine, "scheduler", "next:3", ttl_seconds=90) is None
    assert current_holder(engine, "scheduler").owner == "next:3"  # type: ignore[union-attr]


def test_lease_context_refuses_a_second_holder(engine: Engine) -> None:
    with (
        Lease(engine, "scheduler", owner="first"),
        pytest.raises(LeaseHeldError, match=r"another scheduler is running \(owner first since "),
    ):
        Lease(engine, "scheduler", owner="second").acquire()
    assert current_holder(engine, "scheduler") is None


def test_only_one_scheduler_process_per_database(engine: Engine, db_url: str, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRACKER_")}
    command = [sys.executable, "-m", "tracker", "--database-url", db_url, "schedule"]
    first_log = (tmp_path / "first.log").open("w+")
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=first_log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: current_holder(engine, "scheduler") is not None or first.poll() is not None, "the lease"
        )
        assert first.poll() is None, (tmp_path / "first.log").read_text()

        second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)

        assert second.returncode == 1
        assert (
            second.stderr.strip().splitlines()[-1].startswith("Error: another scheduler is running (owner ")
        )
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first_log.close()
    log = (tmp_path / "first.log").read_text()
    assert "received SIGTERM" in log and "scheduler stopped" in log and "Scheduler stopped." in log
    assert current_holder(engine, "scheduler") is None


def test_invalid_cron_is_one_line(sqlite_url: str) -> None:
    result = CliRunner().invoke(
        main, ["--database-url", sqlite_url, "schedule"], env={"TRACKER_SYNC_CRON": "every day"}
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: invalid TRACKER_SYNC_CRON 'every day' (timezone UTC): ")


def test_an_empty_query_stops_the_scheduler_before_it_starts(sqlite_url: str) -> None:
    result = CliRunner().invoke(
        main, ["--database-url", sqlite_url, "schedule"], env={"TRACKER_QUERY": " "}, catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "refusing to fetch the whole registry" in result.output


def test_the_daily_sync_job_also_refreshes_the_registry_history(engine: Engine, db_url: str) -> None:
    from fake_ctgov import FakeCtgov, make_study
    from fake_history import FakeHistory, FakeVersion, evolve
    from support import count_rows

    from tracker.db.models import RegistryChangeEvent, RegistryHistory
    from tracker.scheduler import sync_job

    first = make_study(
        "NCT01000001", title="Ocrelizumab in relapsing multiple sclerosis", status="RECRUITING"
    )
    later = evolve(first, status="COMPLETED")
    history = FakeHistory([FakeVersion(first, "2024-01-02"), FakeVersion(later, "2025-09-20")])
    with FakeCtgov([later]) as fake:
        fake.set_history("NCT01000001", history)
        job = JobSpec("sync", sync_job, IntervalTrigger(seconds=1))
        with SchedulerThread(
            engine,
            db_url,
            [job],
            ctgov_base_url=fake.url,
            requests_per_second=0,
            query="sclerosis",
            schedule_registry="ctgov",
        ) as running:
            wait_for(lambda: count_rows(engine, RegistryHistory) == 1, "the history after the sync")
        assert running.error is None
    assert count_rows(engine, RegistryChangeEvent, RegistryChangeEvent.kind == "status") == 1


def test_a_sync_job_that_lands_studies_stores_the_trial_frame(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fake_ctgov import FakeCtgov, make_study
    from support import count_rows

    from tracker import scheduler
    from tracker.db.models import FrameSnapshot
    from tracker.frame_snapshot import frame_from_parquet, stored_version, version_text
    from tracker.query import TRIAL_FRAME_SNAPSHOT, data_version, trial_frame_format

    study = make_study("NCT01000001", title="Ocrelizumab in relapsing multiple sclerosis")
    with FakeCtgov([study]) as fake:
        settings = load_settings(
            database_url=db_url,
            ctgov_base_url=fake.url,
            requests_per_second=0,
            query="sclerosis",
            schedule_registry="ctgov",
        )
        monkeypatch.setattr(scheduler, "_runtime", scheduler._Runtime(engine, settings))
        assert "1 inserted" in scheduler.sync_job()
        current = (version_text(data_version(engine)), trial_frame_format())
        assert stored_version(engine, TRIAL_FRAME_SNAPSHOT) == current
        with transaction(engine) as session:
            payload = session.get(FrameSnapshot, TRIAL_FRAME_SNAPSHOT).payload
            session.query(FrameSnapshot).delete()
        assert list(frame_from_parquet(payload)["registration_id"]) == ["NCT01000001"]
        assert "0 inserted, 0 updated" in scheduler.sync_job()  # nothing new: nothing to refresh
    assert count_rows(engine, FrameSnapshot) == 0
