"""Registry history: parsing, event derivation, and backfills over real HTTP against the fake history API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fake_ctgov import FAULT_KINDS, FakeCtgov, Fault
from fake_history import FakeHistory, FakeVersion, as_html, evolve
from sqlalchemy import Engine, func, select
from support import count_rows

from tracker import store
from tracker.cli import main
from tracker.config import Settings, history_base_url, load_settings
from tracker.ctgov.history_parse import HistoryShapeError, html_to_text, parse_index, parse_version
from tracker.ctgov.parse import parse_partial_date
from tracker.db.migrate import upgrade_to_head
from tracker.db.models import ChangeEvent, RegistryChangeEvent, RegistryHistory, RegistryVersion
from tracker.db.session import make_engine, transaction
from tracker.errors import ApiError
from tracker.history import HistoryDriftError, run_history
from tracker.registry_changes import VersionState, derive_changes, outcome_changes, summarise

STUDIES = Path(__file__).parent / "fixtures" / "ctgov" / "studies"
PROJECT = Path(__file__).parents[1]


def real_study(name: str = "NCT03475563") -> dict[str, Any]:
    return json.loads((STUDIES / f"{name}.json").read_text())


def nct_of(study: dict[str, Any]) -> str:
    return study["protocolSection"]["identificationModule"]["nctId"]


def pcd_history(study: dict[str, Any]) -> FakeHistory:
    """Five versions of a real record: status moves, the PCD moves three times (+92, +120, −29 days and
    then becomes ACTUAL), enrolment grows, an outcome is re-wrapped in markup only, then reworded."""
    study = json.loads(json.dumps(study))
    study["hasResults"] = False
    study["protocolSection"]["statusModule"].pop("resultsFirstPostDateStruct", None)
    study["protocolSection"]["statusModule"]["startDateStruct"] = {"date": "2018-03", "type": "ACTUAL"}
    v0 = evolve(
        study,
        status="NOT_YET_RECRUITING",
        pcd=("2019-06", "ESTIMATED"),
        enrollment=(100, "ESTIMATED"),
        primary_outcomes=[as_html("Change in EDSS / 12 months")],
        last_update="2018-01-02",
    )
    v1 = evolve(v0, status="RECRUITING", pcd=("2019-09", "ESTIMATED"), last_update="2018-05-01")
    v2 = evolve(
        v1,
        pcd=("2019-12-30", "ESTIMATED"),
        primary_outcomes=["<p>Change in  EDSS &#x2F; 12\nmonths</p>"],
        last_update="2019-01-01",
    )
    v3 = evolve(v2, pcd=("2019-12-01", "ACTUAL"), enrollment=(120, "ACTUAL"), last_update="2019-07-01")
    v4 = evolve(
        v3,
        status="COMPLETED",
        primary_outcomes=[as_html("Annualised relapse rate")],
        has_results="2020-03-01",
        last_update="2020-03-01",
    )
    dates = ["2018-01-02", "2018-05-01", "2019-01-01", "2019-07-01", "2020-03-01"]
    return FakeHistory([FakeVersion(s, d) for s, d in zip([v0, v1, v2, v3, v4], dates, strict=True)])


def ms_study(name: str) -> dict[str, Any]:
    """A real record retitled to MS, so that a sync's classification keeps it in the history's scope."""
    study = real_study(name)
    study["protocolSection"]["conditionsModule"] = {"conditions": ["Relapsing Multiple Sclerosis"]}
    study["protocolSection"]["identificationModule"]["briefTitle"] = "Ocrelizumab in relapsing MS"
    return study


def land(engine: Engine, *studies: dict[str, Any]) -> None:
    """Land studies as a finished import does (the first finished load ends the baseline)."""
    run = store.begin_run(engine, mode="import", query=None, source=None, data_timestamp=None)
    store.ingest_page(engine, run, list(studies))
    store.finish_run(engine, run, outcome="success")


def settings_for(fake: FakeCtgov, db_url: str = "sqlite://") -> Settings:
    return load_settings(database_url=db_url, ctgov_base_url=fake.url, requests_per_second=0, max_retries=3)


def events(engine: Engine, registration_id: str) -> list[tuple[Any, ...]]:
    with transaction(engine) as session:
        return [
            tuple(row)
            for row in session.execute(
                select(
                    RegistryChangeEvent.version,
                    RegistryChangeEvent.effective_date,
                    RegistryChangeEvent.kind,
                    RegistryChangeEvent.old_value,
                    RegistryChangeEvent.new_value,
                    RegistryChangeEvent.days,
                )
                .where(RegistryChangeEvent.registration_id == registration_id)
                .order_by(RegistryChangeEvent.version, RegistryChangeEvent.kind)
            )
        ]


def history_row(engine: Engine, registration_id: str) -> RegistryHistory:
    with transaction(engine) as session:
        row = session.get(RegistryHistory, registration_id)
        assert row is not None
        return row


# --- pure parts --------------------------------------------------------------------------------------


def test_html_to_text_folds_markup_entities_highlights_and_spacing() -> None:
    assert html_to_text(
        "<p>EDSS &#x2F; <mark class='hl-term'>MRI</mark></p>\n<ul><li>a</li><li>b</li></ul>"
    ) == ("EDSS / MRI - a - b")
    assert html_to_text("Change in EDSS \\- week 12") == "Change in EDSS - week 12"  # API v2 Markdown escape
    assert html_to_text("<p> </p>") is None


def test_outcome_changes_reworded_versus_markup_only() -> None:
    before = ("Change in EDSS / 12 months [52 weeks]",)
    assert outcome_changes(before, ("Annualised relapse rate [52 weeks]",)) == [
        ("primary_outcome_reworded", 0, before[0], "Annualised relapse rate [52 weeks]")
    ]
    assert outcome_changes(before, before) == []
    assert outcome_changes(before, (*before, "MRI lesions")) == [
        ("primary_outcome_added", 1, None, "MRI lesions")
    ]
    assert outcome_changes((*before, "MRI lesions"), before) == [
        ("primary_outcome_removed", 1, "MRI lesions", None)
    ]


def _state(version: int, day: str, pcd: str, kind: str = "ESTIMATED", outcome: str = "EDSS") -> VersionState:
    return VersionState(
        version=version,
        date=date.fromisoformat(day),
        status="RECRUITING",
        fetched=True,
        primary_completion_date=parse_partial_date({"date": pcd, "type": kind}, "pcd"),
        primary_outcomes=(outcome,),
    )


def test_pcd_moved_three_times_by_known_days() -> None:
    states = [
        _state(0, "2020-01-01", "2021-01-01"),
        _state(1, "2020-06-01", "2021-03-01"),  # +59
        _state(2, "2020-09-01", "2021-03-01", outcome="ARR"),  # outcome reworded, PCD unchanged
        _state(3, "2021-01-01", "2021-12-01"),  # +275 (and the outcome reworded back)
        _state(4, "2022-01-01", "2021-11-20", "ACTUAL"),  # −11 and actualised
    ]
    changes = derive_changes(states)
    moves = [c for c in changes if c.kind == "primary_completion_date"]
    assert [(c.version, c.days, c.detail["direction"]) for c in moves] == [
        (1, 59, "later"),
        (3, 275, "later"),
        (4, -11, "earlier"),
    ]
    assert moves[-1].detail["actualised"] is True
    assert (moves[0].old, moves[0].new) == ("2021-01-01 (ESTIMATED)", "2021-03-01 (ESTIMATED)")
    summary = summarise(states, changes, versions_complete=True, start=date(2020, 3, 1))
    assert (summary.versions, summary.pcd_changes, summary.pcd_total_slip_days) == (5, 3, 323)
    assert summary.primary_outcome_changed_after_start is True
    assert summary.primary_outcome_changed_on == date(2020, 9, 1)
    later_start = summarise(states, changes, versions_complete=True, start=date(2021, 6, 1))
    assert later_start.primary_outcome_changed_after_start is False


def test_index_and_version_shape_checks_name_the_drifted_field() -> None:
    history = pcd_history(real_study())
    body = json.loads(history.index_body())
    index = parse_index("NCT03475563", body)
    assert [e.version for e in index.entries] == [0, 1, 2, 3, 4]
    assert index.original_enrollment_count == 100
    body["history"]["versionChanges"] = body["history"].pop("changes")
    with pytest.raises(HistoryShapeError, match=r"'history.changes' is not a non-empty list"):
        parse_index("NCT03475563", body)
    body["history"]["changes"] = [{"version": "1", "date": "2020-01-01"}]
    with pytest.raises(HistoryShapeError, match=r"'history.changes\[0\].version' is not a whole number"):
        parse_index("NCT03475563", body)
    with pytest.raises(HistoryShapeError, match=r"version 2: no 'study' object"):
        parse_version("NCT03475563", 2, {"studyVersion": 2, "studyRecord": {}})
    with pytest.raises(HistoryShapeError, match="asked for version 2, 'studyVersion' says 3"):
        parse_version("NCT03475563", 2, {"studyVersion": 3, "study": {"protocolSection": {}}})


def test_history_url_defaults_beside_the_api_v2_base_url() -> None:
    assert history_base_url(load_settings()) == "https://clinicaltrials.gov/api/int"
    assert history_base_url(load_settings(ctgov_base_url="http://127.0.0.1:9/api/v2/")) == (
        "http://127.0.0.1:9/api/int"
    )
    explicit = load_settings(ctgov_history_url="http://127.0.0.1:9/x")
    assert history_base_url(explicit) == "http://127.0.0.1:9/x"


# --- backfills over HTTP -------------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """SQLite only: for tests about the transport, where the database plays no part."""
    engine = make_engine(sqlite_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def test_backfill_from_empty_then_rerun_is_a_no_op(engine: Engine, db_url: str) -> None:
    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    land(engine, history.versions[-1].study)
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        result = run_history(engine, settings_for(fake, db_url), versions=True)
        assert result.outcome == "success" and result.accepted == 1
        assert result.versions_fetched == 5
        assert len(fake.history_requests()) == 7  # index, 5 versions, index again
        found = events(engine, registration_id)
        assert found == [
            (
                1,
                date(2018, 5, 1),
                "primary_completion_date",
                "2019-06 (ESTIMATED)",
                "2019-09 (ESTIMATED)",
                92,
            ),
            (1, date(2018, 5, 1), "status", "NOT_YET_RECRUITING", "RECRUITING", None),
            (
                2,
                date(2019, 1, 1),
                "primary_completion_date",
                "2019-09 (ESTIMATED)",
                "2019-12-30 (ESTIMATED)",
                120,
            ),
            (3, date(2019, 7, 1), "enrollment", "100 (ESTIMATED)", "120 (ACTUAL)", None),
            (
                3,
                date(2019, 7, 1),
                "primary_completion_date",
                "2019-12-30 (ESTIMATED)",
                "2019-12-01 (ACTUAL)",
                -29,
            ),
            (
                4,
                date(2020, 3, 1),
                "primary_outcome_reworded",
                "Change in EDSS / 12 months [52 weeks]",
                "Annualised relapse rate [52 weeks]",
                None,
            ),
            (4, date(2020, 3, 1), "results_posted", None, "2020-03-01", None),
            (4, date(2020, 3, 1), "status", "RECRUITING", "COMPLETED", None),
        ]  # version 2 only re-wrapped the outcome in other markup: no outcome event
        row = history_row(engine, registration_id)
        assert (row.version_count, row.versions_through, row.pcd_changes, row.pcd_total_slip_days) == (
            5,
            4,
            3,
            183,
        )
        assert (row.original_enrollment_count, row.original_enrollment_type) == (100, "ESTIMATED")
        assert row.primary_outcome_changed_after_start is True  # the record's start date is 2018-03
        assert row.primary_outcome_changed_on == date(2020, 3, 1)

        fake.clear_log()
        again = run_history(engine, settings_for(fake, db_url), versions=True)
        assert (again.planned, again.requests, len(fake.history_requests())) == (0, 0, 0)
        assert events(engine, registration_id) == found


def test_index_only_backfill_gives_the_status_timeline_and_outcome_answer(engine: Engine) -> None:
    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    land(engine, history.versions[-1].study)
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        result = run_history(engine, settings_for(fake))
    assert result.requests == 1
    assert [e[2] for e in events(engine, registration_id)] == ["status", "status"]
    row = history_row(engine, registration_id)
    assert row.versions_through is None and row.pcd_changes is None
    assert row.primary_outcome_changed_after_start is True  # original differs from current, changed in 2020
    assert all(e.baseline for e in _registry_events(engine))


def _registry_events(engine: Engine) -> list[RegistryChangeEvent]:
    with transaction(engine) as session:
        return list(session.scalars(select(RegistryChangeEvent).order_by(RegistryChangeEvent.id)))


def test_moved_trial_is_reread_and_only_new_versions_fetched(engine: Engine) -> None:
    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    land(engine, history.versions[-1].study)
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        run_history(engine, settings_for(fake), versions=True)
        newer = evolve(history.versions[-1].study, enrollment=(130, "ACTUAL"), last_update="2020-06-01")
        history.versions.append(FakeVersion(newer, "2020-06-01"))
        land(engine, newer)
        fake.clear_log()
        run_history(engine, settings_for(fake))  # no --versions: the backfilled trail is kept complete
        assert [r.path.rsplit("/", 1)[-1] for r in fake.history_requests()] == [
            registration_id,
            "5",
            registration_id,
        ]
    news = [e for e in _registry_events(engine) if not e.baseline]
    assert [(e.version, e.kind, e.new_value) for e in news] == [(5, "enrollment", "130 (ACTUAL)")]


def test_chain_with_a_gap_is_rejected_then_retried(engine: Engine) -> None:
    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    history.index_gaps = {2}
    land(engine, history.versions[-1].study)
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        first = run_history(engine, settings_for(fake), versions=True)
        assert first.outcome == "partial"
        assert "gap (missing version 2)" in first.failed[0].reason
        assert count_rows(engine, RegistryVersion) == 0
        history.index_gaps = set()
        second = run_history(engine, settings_for(fake), versions=True)
    assert second.outcome == "success" and second.accepted == 1
    assert history_row(engine, registration_id).versions_through == 4


def test_missing_version_fails_the_trial_and_the_rerun_fetches_only_it(engine: Engine) -> None:
    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    history.missing = {3}
    land(engine, history.versions[-1].study)
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        first = run_history(engine, settings_for(fake), versions=True)
        assert "version 3 of 4 is missing" in first.failed[0].reason
        assert history_row(engine, registration_id).versions_through is None
        assert [e[2] for e in events(engine, registration_id)] == ["status", "status"]  # index only so far
        history.missing = set()
        fake.clear_log()
        second = run_history(engine, settings_for(fake), versions=True)
        paths = [r.path.rsplit("/", 1)[-1] for r in fake.history_requests()]
    assert second.outcome == "success"
    assert paths == [
        registration_id,
        "3",
        "4",
        registration_id,
    ]  # the index again (last attempt failed), then what is missing
    assert history_row(engine, registration_id).versions_through == 4


def test_version_posted_mid_walk_is_fetched_before_acceptance(engine: Engine) -> None:
    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    late = evolve(history.versions[-1].study, status="TERMINATED", last_update="2020-09-01")
    history.post_later = [FakeVersion(late, "2020-09-01")]
    history.post_after = 2
    land(engine, history.versions[-1].study)
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        result = run_history(engine, settings_for(fake), versions=True)
    assert result.outcome == "success" and result.versions_fetched == 6
    row = history_row(engine, registration_id)
    assert (row.last_version, row.versions_through) == (5, 5)
    assert events(engine, registration_id)[-1][2:5] == ("status", "COMPLETED", "TERMINATED")


def test_first_trials_all_drifting_stop_the_run(engine: Engine) -> None:
    studies = [real_study(name) for name in ("NCT03475563", "NCT04431453", "NCT05594173", "NCT06131398")]
    land(engine, *studies)
    with FakeCtgov() as fake:
        for study in studies:
            history = pcd_history(study)
            history.drift = "index"
            fake.set_history(nct_of(study), history)
        with pytest.raises(HistoryDriftError, match=r"stopped after the first 3 trials: .*'history.changes'"):
            run_history(engine, settings_for(fake))
        assert len(fake.history_requests()) == 3  # the fourth trial was never asked for


def test_one_drifted_trial_fails_alone(engine: Engine) -> None:
    studies = [real_study(name) for name in ("NCT03475563", "NCT04431453")]
    land(engine, *studies)
    with FakeCtgov() as fake:
        for position, study in enumerate(studies):
            history = pcd_history(study)
            history.drift = "version" if position == 0 else None
            fake.set_history(nct_of(study), history)
        result = run_history(engine, settings_for(fake), versions=True)
    assert result.accepted == 1
    assert [f.registration_id for f in result.failed] == [nct_of(studies[0])]
    assert "version 0: no 'study' object" in result.failed[0].reason


@pytest.mark.parametrize("kind", sorted(FAULT_KINDS - {"expired_token", "delay"}) + ["delay"])
def test_every_fault_kind_of_the_main_client_is_retried(sqlite_engine: Engine, kind: str) -> None:
    engine = sqlite_engine
    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    land(engine, history.versions[-1].study)
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        fault = Fault(kind, path=f"/int/studies/{registration_id}/history/2", retry_after=0, seconds=0.05)
        fake.inject(fault)
        result = run_history(engine, settings_for(fake), versions=True, backoff_base=0.01)
        assert fake.pending_faults() == 0
    assert result.outcome == "success" and result.versions_fetched == 5


def test_unreachable_history_api_stops_the_run(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    land(engine, real_study())
    settings = load_settings(
        database_url="sqlite://",
        ctgov_history_url="http://127.0.0.1:9/api/int",
        requests_per_second=0,
        max_retries=1,
    )
    # Nothing listens on port 9: the first request cannot connect, so the run stops at once (no retries).
    with pytest.raises(
        ApiError, match="cannot reach ClinicalTrials.gov .*connection refused.*TRACKER_CTGOV_HISTORY_URL"
    ):
        run_history(engine, settings, backoff_base=0.01)


def test_polled_change_and_the_same_change_in_history_count_once(engine: Engine) -> None:
    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    land(engine, history.versions[3].study)  # the tracker was installed at version 3
    land(engine, history.versions[4].study)  # and polled version 4: status, results, outcome changed
    polled = count_rows(engine, ChangeEvent, ChangeEvent.kind == "status")
    assert polled == 1
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        run_history(engine, settings_for(fake), versions=True)
        run_history(engine, settings_for(fake), versions=True, registration_ids=[registration_id])
    with transaction(engine) as session:
        linked = session.execute(
            select(RegistryChangeEvent.kind, ChangeEvent.kind)
            .join(ChangeEvent, ChangeEvent.id == RegistryChangeEvent.change_event_id)
            .order_by(RegistryChangeEvent.kind)
        ).all()
        duplicates = session.scalar(  # a polled event standing for two registry events
            select(func.count()).select_from(
                select(RegistryChangeEvent.change_event_id)
                .where(RegistryChangeEvent.change_event_id.is_not(None))
                .group_by(RegistryChangeEvent.change_event_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
    assert [tuple(row) for row in linked] == [("results_posted", "results_posted"), ("status", "status")]
    assert duplicates == 0


def test_cli_history_reports_drift_in_one_line(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    studies = [ms_study(name) for name in ("NCT03475563", "NCT04431453", "NCT05594173")]
    with FakeCtgov(studies) as fake:
        for study in studies:
            history = pcd_history(study)
            history.drift = "index"
            fake.set_history(nct_of(study), history)
        runner = CliRunner()
        env = {"TRACKER_CTGOV_BASE_URL": fake.url, "TRACKER_REQUESTS_PER_SECOND": "0"}
        synced = runner.invoke(main, ["--database-url", db_url, "sync", "--query", "sclerosis"], env=env)
        assert synced.exit_code == 0, synced.output
        ids = [arg for study in studies for arg in ("--nct", nct_of(study))]
        outcome = runner.invoke(main, ["--database-url", db_url, "history", *ids], env=env)
    assert outcome.exit_code == 1
    lines = [line for line in outcome.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "history API changed shape" in lines[0] and "Traceback" not in outcome.output


def test_sync_with_history_backfills_what_it_landed(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    study = ms_study("NCT03475563")
    history = pcd_history(study)
    with FakeCtgov([history.versions[-1].study]) as fake:
        fake.set_history(nct_of(study), history)
        env = {"TRACKER_CTGOV_BASE_URL": fake.url, "TRACKER_REQUESTS_PER_SECOND": "0"}
        outcome = CliRunner().invoke(
            main, ["--database-url", db_url, "sync", "--query", "sclerosis", "--history"], env=env
        )
        assert outcome.exit_code == 0, outcome.output
        assert "history success: 1 of 1 trials accepted" in outcome.output
        again = CliRunner().invoke(main, ["--database-url", db_url, "history", "--versions"], env=env)
        assert again.exit_code == 0 and "5 version records fetched" in again.output


def test_sigkill_mid_backfill_then_rerun_completes_without_duplicates(engine: Engine, db_url: str) -> None:
    studies = [real_study(path.stem) for path in sorted(STUDIES.glob("NCT*.json"))]
    land(engine, *[pcd_history(study).versions[-1].study for study in studies])
    with FakeCtgov() as fake:
        for study in studies:
            fake.set_history(nct_of(study), pcd_history(study))
        env = {
            **os.environ,
            "TRACKER_DATABASE_URL": db_url,
            "TRACKER_CTGOV_HISTORY_URL": fake.history_url,
            "TRACKER_REQUESTS_PER_SECOND": "40",  # slow enough to be killed mid-walk
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "tracker", "history", "--versions"],
            env=env,
            cwd=PROJECT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while len(fake.history_requests()) < 23 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        assert 0 < count_rows(engine, RegistryVersion, RegistryVersion.fetched_at.is_not(None)) < 50
        fake.clear_log()
        rerun = subprocess.run(
            [sys.executable, "-m", "tracker", "history", "--versions"],
            env={**env, "TRACKER_REQUESTS_PER_SECOND": "0"},
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 0, rerun.stderr
        version_requests = [r for r in fake.history_requests() if "/history/" in r.path]
    assert len(version_requests) < 50  # what was fetched before the kill is not fetched again
    assert count_rows(engine, RegistryVersion) == 50
    assert count_rows(engine, RegistryVersion, RegistryVersion.fetched_at.is_not(None)) == 50
    assert count_rows(engine, RegistryHistory, RegistryHistory.versions_through == 4) == 10
    assert count_rows(engine, RegistryChangeEvent) == 10 * 8


def test_digest_reports_registry_events_of_the_period_with_their_effective_dates(
    engine: Engine, tmp_path: Path
) -> None:
    from datetime import datetime, timedelta

    from tracker.digest.run import build_for_subscription
    from tracker.filters import TrialFilter
    from tracker.query import load_trial_frame
    from tracker.subscriptions import add_subscription, list_subscriptions

    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    history.versions = history.versions[:4]  # the tracker is installed at version 3
    land(engine, history.versions[-1].study)
    everything = TrialFilter(relevance=())
    add_subscription(engine, "reader@example.org", everything, now=datetime(2020, 1, 1))
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        run_history(engine, settings_for(fake), versions=True)  # the past: baseline, not news
        started = datetime.now() - timedelta(seconds=1)  # naive UTC, as stored
        # Version 4 is posted and read from the history before any poll saw it; then a version whose
        # enrolment change a poll saw first.
        v4 = pcd_history(study).versions[4]
        v5 = FakeVersion(evolve(v4.study, enrollment=(140, "ACTUAL"), last_update="2020-06-01"), "2020-06-01")
        history.versions.extend([v4])
        land(engine, v4.study)  # the poll sees version 4 as well: status, results, outcome…
        history.versions.append(v5)
        land(engine, v5.study)
        run_history(engine, settings_for(fake))
    info = list_subscriptions(engine)[0]
    content = build_for_subscription(
        engine,
        load_settings(),
        info,
        load_trial_frame(engine),
        since=started,
        until=datetime.now() + timedelta(seconds=1),
    )
    sections = {section.key: section for section in content.sections}
    registry_lines = sections["registry"].items[0].changes
    # Polled changes (status, results, enrolment) are reported once, by the polled sections; the outcome
    # rewording is only in the history, dated by the registry.
    assert registry_lines == (
        "2020-03-01 (version 4): Primary outcome reworded: Change in EDSS / 12 months [52 weeks] → "
        "Annualised relapse rate [52 weeks]",
    )
    assert "closed" in sections and "other" in sections


def test_trial_frame_export_filter_and_charts_read_the_history(engine: Engine) -> None:
    from dashboard import charts
    from tracker.export import frame_to_csv
    from tracker.filters import TrialFilter, apply_filter
    from tracker.query import load_trial_frame, registry_events_frame, registry_timeline

    studies = [real_study(name) for name in ("NCT03475563", "NCT04431453", "NCT05594173")]
    histories = [pcd_history(study) for study in studies]
    histories[1].versions = histories[1].versions[:2]  # outcome never changed; PCD moved once (+92)
    land(engine, *[history.versions[-1].study for history in histories])
    with FakeCtgov() as fake:
        for study, history in zip(studies, histories, strict=True):
            fake.set_history(nct_of(study), history)
        run_history(
            engine, settings_for(fake), versions=True, registration_ids=[nct_of(s) for s in studies[:2]]
        )
    frame = load_trial_frame(engine)
    by_id = frame.set_index("registration_id")
    first, second, third = (nct_of(study) for study in studies)
    assert by_id.loc[first, "pcd_total_slip_days"] == 183 and by_id.loc[second, "pcd_changes"] == 1
    assert by_id.loc[first, "versions"] == 5 and by_id.loc[second, "original_enrollment"] == 100
    assert pd_isna(by_id.loc[third, "versions"])  # not backfilled

    everything = TrialFilter(relevance=())
    changed = apply_filter(frame, everything.with_changes(outcome_changed_after_start=True))
    unchanged = apply_filter(frame, everything.with_changes(outcome_changed_after_start=False))
    assert list(changed["registration_id"]) == [first] and list(unchanged["registration_id"]) == [second]
    assert TrialFilter.from_query_params({"outcome_changed_after_start": "true"})[0] == TrialFilter(
        outcome_changed_after_start=True
    )

    csv_text = frame_to_csv(changed).decode()
    header, row = csv_text.splitlines()[:2]
    columns = dict(zip(header.split(","), row.split(","), strict=False))
    assert (columns["versions"], columns["pcd_changes"], columns["pcd_total_slip_days"]) == ("5", "3", "183")
    assert (columns["original_enrollment"], columns["primary_outcome_changed_after_start"]) == ("100", "true")

    by_phase = charts.history_slippage(frame, "phase")
    assert by_phase["trials"].sum() == 2 and by_phase["slipped"].sum() == 2
    assert dict(zip(by_phase["group"], by_phase["median_slip_days"], strict=True)) == {
        "Phase 3": 92.0,  # PHASE2/PHASE3 counts as its highest phase
        "Not stated": 183.0,
    }
    figure = charts.history_slippage_figure(frame, "mechanism")
    assert figure.layout.title.text.startswith("Primary completion slippage by mechanism")

    timeline = registry_timeline(engine, first)
    events_frame = registry_events_frame(engine, registration_ids=[first])
    bands = charts.status_bands(timeline, date(2021, 1, 1))
    assert list(bands["status"]) == ["NOT_YET_RECRUITING", "RECRUITING", "COMPLETED"]
    timeline_figure = charts.registry_timeline_figure(timeline, events_frame, date(2021, 1, 1))
    names = {trace.name for trace in timeline_figure.data}
    assert {"Primary completion moved", "Primary outcome changed"} <= names


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def _trial_page_script(url: str, registration_id: str) -> None:
    from dashboard import data
    from dashboard.trial_view import show_trial

    show_trial(
        data.trial_detail(url, ("test",), registration_id),
        registration_id,
        data.trial_registry_history(url, ("test",), registration_id),
    )


def test_trial_page_shows_the_registry_timeline(sqlite_url: str, sqlite_engine: Engine) -> None:
    from streamlit.testing.v1 import AppTest

    study = real_study()
    registration_id = nct_of(study)
    history = pcd_history(study)
    land(sqlite_engine, history.versions[-1].study)
    with FakeCtgov() as fake:
        fake.set_history(registration_id, history)
        run_history(sqlite_engine, settings_for(fake), versions=True)
    app = AppTest.from_function(_trial_page_script, args=(sqlite_url, registration_id), default_timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    text = "\n".join(block.value for block in app.markdown)
    assert "#### Registry history" in text
    assert "Primary completion moved:** 3 times, +183 days in all" in text
    assert "Primary outcome changed after start:** yes, first on 2020-03-01" in text
    assert "Original enrollment:** 100 (estimated)" in text
    charts = app.get("plotly_chart")
    assert len(charts) == 1
    figure = json.loads(charts[0].proto.spec)
    assert {"Primary completion moved", "Primary outcome changed"} <= {t.get("name") for t in figure["data"]}


def test_a_second_backfill_waits_for_the_one_running(engine: Engine) -> None:
    from tracker.locks import HISTORY, Lease, LeaseHeldError

    study = real_study()
    land(engine, study)
    with FakeCtgov() as fake:
        fake.set_history(nct_of(study), pcd_history(study))
        with Lease(engine, HISTORY, purpose="history backfill", owner="other-host:4242"):
            with pytest.raises(LeaseHeldError, match="another history backfill is running"):
                run_history(engine, settings_for(fake))
            assert not fake.requests  # refused before asking the registry anything
        run_history(engine, settings_for(fake))  # once the holder is gone, the backfill runs
    assert count_rows(engine, RegistryHistory) == 1
