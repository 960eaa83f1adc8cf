"""`tracker sync` against the fake registry over real HTTP, into real SQLite and Postgres databases."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from fake_ctgov import FakeCtgov, Fault, make_study
from sqlalchemy import Engine, select
from support import count_rows, stored_classification

from tracker import store
from tracker.cli import main
from tracker.config import Settings, load_settings
from tracker.db.models import ChangeEvent, Classification, Study, StudyLabel, StudyVersion, SyncRun
from tracker.db.session import make_engine, transaction
from tracker.errors import ApiError, ConfigError, IncompleteSyncError
from tracker.sync import SyncResult, run_sync

PROJECT = Path(__file__).resolve().parents[1]


def studies(count: int, **kwargs: Any) -> list[dict[str, Any]]:
    return [make_study(f"NCT{number:08d}", **kwargs) for number in range(1, count + 1)]


def settings_for(fake: FakeCtgov, engine: Engine, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "ctgov_base_url": fake.url,
        "requests_per_second": 0,
        "page_size": 10,
        "max_retries": 3,
        **overrides,
    }
    return load_settings(**values)


def sync(fake: FakeCtgov, engine: Engine, *, full: bool = False, **overrides: Any) -> SyncResult:
    return run_sync(engine, settings_for(fake, engine, **overrides), full=full, backoff_base=0.01)


def runs(engine: Engine) -> list[SyncRun]:
    with transaction(engine) as session:
        return list(session.scalars(select(SyncRun).order_by(SyncRun.id)))


def test_first_sync_is_full_then_incremental_from_watermark_minus_two_days(
    fake_ctgov: FakeCtgov, engine: Engine
) -> None:
    fake_ctgov.set_studies(studies(25))
    first = sync(fake_ctgov, engine)

    assert (first.mode, first.outcome, first.inserted, first.total_count) == ("full", "success", 25, 25)
    assert first.pages == 3
    assert count_rows(engine, Study) == 25
    request = fake_ctgov.requests_to("/studies")[0]
    assert request.params == {
        "format": "json",
        "pageSize": "10",
        "countTotal": "true",
        "query.cond": "multiple sclerosis",
    }
    assert store.watermark(engine).isoformat() == "2025-09-25"

    fake_ctgov.clear_log()
    fake_ctgov.data_timestamp = "2025-09-27T09:00:00"
    fake_ctgov.upsert_study(make_study("NCT00000003", status="COMPLETED", last_update="2025-09-26"))
    fake_ctgov.upsert_study(make_study("NCT00000099", last_update="2025-09-26"))
    second = sync(fake_ctgov, engine)

    assert (second.mode, second.outcome, second.since.isoformat()) == ("incremental", "success", "2025-09-23")
    assert (second.inserted, second.updated, second.unchanged) == (1, 1, 0)
    requests = fake_ctgov.requests_to("/studies")
    assert len(requests) == 1
    assert requests[0].params["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2025-09-23,MAX]"
    assert requests[0].params["query.cond"] == "multiple sclerosis"
    assert fake_ctgov.requests_to("/version")
    with transaction(engine) as session:
        status_events = session.scalars(select(ChangeEvent).where(ChangeEvent.kind == "status")).all()
        assert [(e.registration_id, e.old_value, e.new_value) for e in status_events] == [
            ("NCT00000003", "RECRUITING", "COMPLETED")
        ]
    assert [run.data_timestamp for run in runs(engine)] == ["2025-09-25T09:00:05", "2025-09-27T09:00:00"]
    assert store.watermark(engine).isoformat() == "2025-09-27"


def test_a_new_query_starts_with_a_full_pass(fake_ctgov: FakeCtgov, engine: Engine) -> None:
    old_neuritis = make_study("NCT00000101", conditions=["Optic Neuritis"], last_update="2019-05-01")
    fake_ctgov.set_studies([*studies(3), old_neuritis])
    sync(fake_ctgov, engine)  # "multiple sclerosis": the watermark covers that query only

    other = sync(fake_ctgov, engine, query="optic neuritis")
    back = sync(fake_ctgov, engine)
    same = sync(fake_ctgov, engine, query=" Multiple  Sclerosis")

    assert (other.mode, other.since, other.inserted) == ("full", None, 1)
    assert "filter.advanced" not in fake_ctgov.requests_to("/studies")[-2].params
    assert (back.mode, back.since, back.unchanged) == ("full", None, 3)
    assert same.mode == "incremental"  # the registry's search ignores case and spacing


def test_a_full_pass_for_another_query_flags_nothing_removed(fake_ctgov: FakeCtgov, engine: Engine) -> None:
    neuritis = make_study("NCT00000101", conditions=["Optic Neuritis"])
    fake_ctgov.set_studies([*studies(3), neuritis])
    sync(fake_ctgov, engine)

    other = sync(fake_ctgov, engine, full=True, query="optic neuritis")
    assert (other.outcome, other.removed) == ("success", [])
    assert count_rows(engine, Study, Study.removed_at.is_not(None)) == 0

    again = sync(fake_ctgov, engine, full=True, query="optic neuritis")
    assert again.removed == ["NCT00000001", "NCT00000002", "NCT00000003"]  # now that query is the baseline


def test_resyncing_unchanged_data_changes_nothing(fake_ctgov: FakeCtgov, engine: Engine) -> None:
    fake_ctgov.set_studies(studies(12, last_update="2025-09-24"))
    sync(fake_ctgov, engine)
    versions, events = count_rows(engine, StudyVersion), count_rows(engine, ChangeEvent)

    again = sync(fake_ctgov, engine)  # incremental: the window still covers every study
    full = sync(fake_ctgov, engine, full=True)

    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 12)
    assert (full.inserted, full.updated, full.unchanged, full.removed) == (0, 0, 12, [])
    assert (count_rows(engine, StudyVersion), count_rows(engine, ChangeEvent)) == (versions, events)


def test_incremental_sync_with_nothing_new_makes_at_most_two_studies_requests(
    fake_ctgov: FakeCtgov, engine: Engine
) -> None:
    fake_ctgov.set_studies(studies(30, last_update="2025-01-01"))
    sync(fake_ctgov, engine, page_size=1000)
    fake_ctgov.clear_log()

    result = sync(fake_ctgov, engine, page_size=1000)

    assert (result.mode, result.seen, result.outcome) == ("incremental", 0, "success")
    assert len(fake_ctgov.requests_to("/studies")) <= 2


@pytest.mark.parametrize(
    "faults",
    [
        [Fault("429", retry_after=0), Fault("403"), Fault("503")],
        [Fault("reset"), Fault("truncated"), Fault("invalid_json"), Fault("html")],
    ],
    ids=["statuses", "broken-bodies"],
)
def test_sync_recovers_from_faults_mid_walk(
    fake_ctgov: FakeCtgov, engine: Engine, faults: list[Fault]
) -> None:
    fake_ctgov.set_studies(studies(35))
    fake_ctgov.inject(Fault("delay", seconds=0), *faults)  # page 1 clean, then every fault on page 2

    result = sync(fake_ctgov, engine, max_retries=len(faults))

    assert (result.outcome, result.inserted) == ("success", 35)
    assert fake_ctgov.pending_faults() == 0
    assert count_rows(engine, StudyVersion) == 35


def test_a_dying_page_token_restarts_the_walk_once(fake_ctgov: FakeCtgov, engine: Engine) -> None:
    fake_ctgov.set_studies(studies(35))
    fake_ctgov.inject(Fault("expired_token", status=410))

    result = sync(fake_ctgov, engine)

    # The restarted pass lands page 1 again (10 unchanged studies): same content, so no new version.
    assert (result.outcome, result.restarts, result.inserted, result.unchanged) == ("success", 1, 35, 10)
    assert count_rows(engine, Study) == 35
    assert count_rows(engine, StudyVersion) == 35
    first_pages = [r for r in fake_ctgov.requests_to("/studies") if "pageToken" not in r.params]
    assert len(first_pages) == 2


def test_a_token_dying_twice_fails_the_run_and_keeps_what_landed(
    fake_ctgov: FakeCtgov, engine: Engine
) -> None:
    fake_ctgov.set_studies(studies(35))
    fake_ctgov.inject(Fault("expired_token"), Fault("expired_token"))

    with pytest.raises(ApiError, match="page token refused again"):
        sync(fake_ctgov, engine)

    assert count_rows(engine, Study) == 10
    (run,) = runs(engine)
    assert run.outcome == "failed" and "page token" in run.error
    assert store.watermark(engine) is None


def test_a_false_last_token_is_followed_to_an_empty_page(engine: Engine) -> None:
    with FakeCtgov(studies(20), false_last_token=True) as fake:
        result = sync(fake, engine)
        assert len(fake.requests_to("/studies")) == 3
    assert (result.outcome, result.inserted, result.pages) == ("success", 20, 3)


def test_a_short_full_pass_fails_loudly_and_keeps_what_landed(engine: Engine) -> None:
    with (
        FakeCtgov(studies(15), total_count_bias=2) as fake,
        pytest.raises(IncompleteSyncError, match="received 15 of 17 studies"),
    ):
        sync(fake, engine)
    (run,) = runs(engine)
    assert (run.outcome, run.total_count) == ("failed", 17)
    assert "received 15 of 17" in run.error
    assert count_rows(engine, Study) == 15
    assert store.watermark(engine) is None


def test_full_flags_studies_no_longer_returned(fake_ctgov: FakeCtgov, engine: Engine) -> None:
    fake_ctgov.set_studies(studies(12))
    sync(fake_ctgov, engine)
    fake_ctgov.remove_study("NCT00000005")

    incremental = sync(fake_ctgov, engine)
    assert incremental.removed == []  # only a full pass can tell what is gone
    full = sync(fake_ctgov, engine, full=True)

    assert (full.mode, full.removed) == ("full", ["NCT00000005"])
    assert count_rows(engine, Study) == 12  # kept
    assert count_rows(engine, Study, Study.removed_at.is_not(None)) == 1
    assert count_rows(engine, ChangeEvent, ChangeEvent.kind == "removed") == 1
    assert runs(engine)[-1].studies_removed == 1


def test_rejected_records_land_alone_and_make_the_run_partial(fake_ctgov: FakeCtgov, engine: Engine) -> None:
    bad = orjson.loads((FIXTURES / "ctgov/edge/bad_start_date.json").read_bytes())
    fake_ctgov.set_studies([*studies(8), bad])

    result = sync(fake_ctgov, engine)

    assert result.outcome == "partial"
    assert [(r.registration_id, "startDateStruct" in r.reason) for r in result.rejected] == [
        ("NCT09999901", True)
    ]
    assert count_rows(engine, Study) == 8
    assert runs(engine)[-1].outcome == "partial"
    assert store.watermark(engine) is None  # only a clean run moves the watermark


def test_real_records_sync_on_both_databases(fake_ctgov: FakeCtgov, engine: Engine) -> None:
    real = [orjson.loads(path.read_bytes()) for path in sorted((FIXTURES / "ctgov/studies").glob("*.json"))]
    sample = [orjson.loads(line) for line in (FIXTURES / "ms_sample.jsonl").read_bytes().splitlines()]
    fake_ctgov.set_studies([*real, *sample])

    result = sync(fake_ctgov, engine, query="", page_size=100)

    assert (result.outcome, result.inserted, result.total_count) == ("success", 210, 210)
    assert result.pages == 3


def test_worker_processes_classify_the_pages_a_single_process_would(
    fake_ctgov: FakeCtgov, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Worker processes classify the next pages while this one lands (pages of real records, the threshold
    # lowered to fit them): the store ends as a sync in one process leaves it, page by page classified.
    sample = [orjson.loads(line) for line in (FIXTURES / "ms_sample.jsonl").read_bytes().splitlines()]
    fake_ctgov.set_studies(sample)
    monkeypatch.setattr("tracker.sync.PARALLEL_MIN_STUDIES", 40)
    stores = []
    for workers in (1, 2):
        engine = make_engine(f"sqlite:///{tmp_path / f'workers{workers}.db'}")
        from tracker.db.migrate import upgrade_to_head

        upgrade_to_head(engine)
        settings = settings_for(fake_ctgov, engine, query="", page_size=60)
        result = run_sync(engine, settings, backoff_base=0.01, workers=workers)
        assert (result.outcome, result.inserted, result.classified, result.pages) == ("success", 200, 200, 4)
        stores.append(stored_classification(engine))
        engine.dispose()
    assert stores[1] == stores[0]
    assert len(stores[0][0]) == 200


def test_workers_classify_only_the_studies_that_land_new_or_changed(
    fake_ctgov: FakeCtgov, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A study served again with the content the store holds lands unchanged: handing it to a worker would
    # classify it for nothing (and a sync with nothing new would start workers for hundreds of them).
    import tracker.sync as sync_module

    monkeypatch.setattr("tracker.sync.PARALLEL_MIN_STUDIES", 1)
    handed: list[str] = []
    to_classify = sync_module._to_classify

    def spy(engine: Engine, studies: list[Any]) -> list[Any]:
        chosen = to_classify(engine, studies)
        handed.extend(sync_module.study_id(raw) or "" for raw in chosen)
        return chosen

    monkeypatch.setattr("tracker.sync._to_classify", spy)
    # Updated inside the next incremental window: the next sync is served all of them again.
    fake_ctgov.set_studies(studies(30, last_update="2025-09-24"))
    first = run_sync(engine, settings_for(fake_ctgov, engine, page_size=10), backoff_base=0.01, workers=2)
    assert (first.inserted, first.classified, len(handed)) == (30, 30, 30)

    fake_ctgov.data_timestamp = "2025-09-27T09:00:00"
    fake_ctgov.upsert_study(make_study("NCT00000007", title="Ocrelizumab in PPMS", last_update="2025-09-26"))
    fake_ctgov.upsert_study(make_study("NCT00000031", last_update="2025-09-26"))
    handed.clear()
    again = run_sync(engine, settings_for(fake_ctgov, engine, page_size=10), backoff_base=0.01, workers=2)
    assert (again.mode, again.seen, again.inserted, again.updated) == ("incremental", 31, 1, 1)
    assert again.classified == 2
    assert sorted(handed) == ["NCT00000007", "NCT00000031"]
    with_workers = stored_classification(engine)
    from tracker.classify.store import classify_pending

    assert classify_pending(engine, all_studies=True, workers=1) == 31
    assert stored_classification(engine) == with_workers


# --- the command ----------------------------------------------------------------------------------


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run the command in-process; retries are kept short."""
    return CliRunner().invoke(main, list(args), env={"TRACKER_MAX_RETRIES": "1", **(env or {})})


def assert_one_error_line(output: str) -> str:
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    return errors[0]


def test_sync_command_prints_a_summary(fake_ctgov: FakeCtgov, sqlite_url: str) -> None:
    fake_ctgov.set_studies(studies(15))
    result = invoke(
        "--database-url", sqlite_url, "sync", "--base-url", fake_ctgov.url, "--requests-per-second", "0"
    )
    assert result.exit_code == 0, result.output
    assert (
        "full success: 15 inserted, 0 updated, 0 unchanged, 0 rejected, 0 removed; 1 page in" in result.output
    )


def test_sync_command_exits_3_when_records_are_rejected(fake_ctgov: FakeCtgov, sqlite_url: str) -> None:
    edge = FIXTURES / "ctgov/edge"
    bad = [orjson.loads((edge / name).read_bytes()) for name in ("bad_start_date.json", "no_nct_id.json")]
    fake_ctgov.set_studies([*studies(5), *bad])

    result = invoke(
        "--database-url", sqlite_url, "sync", "--base-url", fake_ctgov.url, "--requests-per-second", "0"
    )

    assert result.exit_code == 3, result.output
    assert "rejected NCT09999901: startDateStruct.date" in result.output
    assert "rejected <no ID>: missing or malformed nctId" in result.output
    assert "Error: 2 records rejected; the rest landed" in result.output
    assert count_rows(make_engine(sqlite_url), Study) == 5


@pytest.mark.parametrize("url", ["htp://x", "not a url"])
def test_sync_command_with_a_bad_base_url(url: str, sqlite_url: str) -> None:
    result = invoke("--database-url", sqlite_url, "sync", "--base-url", url)
    assert result.exit_code == 2
    assert "invalid ClinicalTrials.gov base URL" in assert_one_error_line(result.output)
    (run,) = runs(make_engine(sqlite_url))
    assert run.outcome == "failed" and "invalid ClinicalTrials.gov base URL" in run.error


def test_sync_command_with_an_unreachable_api(db_url: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = invoke(
        "--database-url", db_url, "sync", "--base-url", f"http://127.0.0.1:{port}/api/v2",
        "--requests-per-second", "0",
    )  # fmt: skip
    assert result.exit_code == 1
    line = assert_one_error_line(result.output)
    assert f"cannot reach ClinicalTrials.gov at http://127.0.0.1:{port}/api/v2 (connection refused)" in line
    assert "check the network or --base-url, or load a bulk download with `tracker import FILE`" in line
    (run,) = runs(make_engine(db_url))
    assert run.outcome == "failed" and "connection refused" in run.error
    assert run.started_at <= run.finished_at


@pytest.mark.parametrize("database_url", ["nonsense", "nosuchdialect://x/y"])
def test_sync_command_with_a_bad_database_url(database_url: str) -> None:
    result = invoke("--database-url", database_url, "sync")
    assert result.exit_code != 0
    assert "database URL" in assert_one_error_line(result.output)


def test_sync_command_with_an_unwritable_database_path(tmp_path: Path, fake_ctgov: FakeCtgov) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("--database-url", f"sqlite:///{blocker}/trials.db", "sync", "--base-url", fake_ctgov.url)
    assert result.exit_code != 0
    assert "cannot create database folder" in assert_one_error_line(result.output)
    assert not fake_ctgov.requests


def test_the_command_fails_in_one_line_as_a_subprocess(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "--database-url", f"sqlite:///{tmp_path}/t.db", "sync",
         "--base-url", "htp://x"],
        capture_output=True, text=True, cwd=PROJECT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: invalid ClinicalTrials.gov base URL 'htp://x': expected http(s)://host/path, "
        "e.g. https://clinicaltrials.gov/api/v2"
    ]


def signal_sync_at_page_four(fake: FakeCtgov, database_url: str, signum: int) -> tuple[int, str]:
    """Run `tracker sync` (pages of 5) in a subprocess and send it `signum` once it asks for page 4;
    returns its exit code and standard error."""
    env = {**os.environ, "TRACKER_PAGE_SIZE": "5", "TRACKER_REQUESTS_PER_SECOND": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--database-url", database_url, "sync", "--base-url", fake.url],
        cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(fake.requests_to("/studies")) < 4 and process.poll() is None:
            assert time.monotonic() < deadline, "the sync never reached page 4"
            time.sleep(0.05)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr


def test_a_sync_killed_mid_walk_leaves_a_consistent_store_and_the_next_run_finishes(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'trials.db'}"
    with FakeCtgov(studies(40)) as fake:
        # Pages 1-3 arrive at once; page 4 hangs until the process is gone.
        fake.inject(*[Fault("delay", seconds=0)] * 3, Fault("delay", seconds=3))
        signal_sync_at_page_four(fake, database_url, signal.SIGKILL)
        engine = make_engine(database_url)
        assert count_rows(engine, Study) == 15  # three whole pages, nothing half-written
        assert count_rows(engine, StudyVersion) == 15
        (killed,) = runs(engine)
        assert killed.outcome == "running" and killed.pages == 3

        result = run_sync(engine, settings_for(fake, engine, page_size=5), backoff_base=0.01)

    assert (result.mode, result.outcome, result.inserted, result.unchanged) == ("full", "success", 25, 15)
    assert count_rows(engine, Study) == 40
    assert count_rows(engine, StudyVersion) == 40
    assert count_rows(engine, ChangeEvent, ChangeEvent.kind == "new") == 40


def test_an_interrupted_sync_leaves_every_landed_study_classified(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'trials.db'}"
    with FakeCtgov(studies(40)) as fake:
        # Pages 1-3 arrive at once; page 4 hangs while Ctrl-C interrupts the sync.
        fake.inject(*[Fault("delay", seconds=0)] * 3, Fault("delay", seconds=5))
        returncode, stderr = signal_sync_at_page_four(fake, database_url, signal.SIGINT)
    assert returncode == 130, stderr
    engine = make_engine(database_url)
    with transaction(engine) as session:
        landed = dict(session.execute(select(Study.registration_id, Study.content_hash)).all())
        classified = dict(
            session.execute(select(Classification.registration_id, Classification.content_hash)).all()
        )
        relevance = set(
            session.scalars(select(StudyLabel.registration_id).where(StudyLabel.dimension == "relevance"))
        )
    assert len(landed) == 15  # three whole pages
    assert classified == landed  # each landed page was classified with it, not at the end
    assert relevance == set(landed)
    (interrupted,) = runs(engine)
    assert (interrupted.outcome, interrupted.error) == ("failed", "interrupted")


def test_config_errors_in_settings_are_one_line(fake_ctgov: FakeCtgov, sqlite_url: str) -> None:
    result = invoke(
        "--database-url", sqlite_url, "sync", "--base-url", fake_ctgov.url, "--requests-per-second", "-1"
    )
    assert result.exit_code == 2
    assert "invalid --requests-per-second -1.0" in assert_one_error_line(result.output)
    with pytest.raises(ConfigError):
        load_settings(requests_per_second=-1)


def test_an_empty_query_is_refused(fake_ctgov: FakeCtgov, sqlite_url: str) -> None:
    result = invoke("--database-url", sqlite_url, "sync", "--base-url", fake_ctgov.url, "--query", " ")
    assert result.exit_code == 2
    assert "refusing to fetch the whole registry" in assert_one_error_line(result.output)
    assert not fake_ctgov.requests


def test_a_failed_run_records_its_real_start(fake_ctgov: FakeCtgov, db_url: str) -> None:
    # /version keeps failing: the run starts with the first request and ends after the last retry.
    fake_ctgov.inject(*(Fault("503", path="/version", retry_after=0) for _ in range(3)))
    result = invoke(
        "--database-url", db_url, "sync", "--base-url", fake_ctgov.url, "--requests-per-second", "0",
        env={"TRACKER_MAX_RETRIES": "2"},
    )  # fmt: skip
    assert result.exit_code == 1
    requests = fake_ctgov.requests_to("/version")
    assert len(requests) == 3
    (run,) = runs(make_engine(db_url))
    assert run.outcome == "failed"
    assert run.started_at <= requests[0].received_at
    assert requests[-1].received_at <= run.finished_at


LOADED_AFTER_SYNC = """
import sys
from tracker.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    heavy = ("tracker.classify.rules", "tracker.classify.store", "pandas", "numpy")
    print(" ".join(name for name in heavy if name in sys.modules) or "-", file=sys.stderr)
"""


def test_a_sync_with_nothing_new_imports_neither_the_classifier_nor_pandas(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'trials.db'}"

    def sync_process() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", LOADED_AFTER_SYNC, "--database-url", database_url, "sync",
             "--base-url", fake.url, "--requests-per-second", "0"],
            capture_output=True, text=True, cwd=PROJECT, timeout=300,
        )  # fmt: skip

    # Updated on the last days the next sync's window covers, so it is served them all again: more than a
    # page needs to start worker processes, and all unchanged, so none may start.
    with FakeCtgov(studies(600, last_update="2025-09-24")) as fake:
        first = sync_process()
        assert first.returncode == 0, first.stderr
        assert "tracker.classify.rules" in first.stderr.splitlines()[-1]  # the first sync classifies
        again = sync_process()
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[-1] == "-"
    engine = make_engine(database_url)
    assert count_rows(engine, Classification) == 600
    engine.dispose()
