"""`tracker sync --registry ctis|all` against the fake CTIS (and ClinicalTrials.gov) over real HTTP, on
SQLite and Postgres: what lands, how it links to ClinicalTrials.gov twins, incremental runs, failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fake_ctgov import FakeCtgov, make_study
from fake_ctis import FakeCtis, Fault, make_trial
from sqlalchemy import Engine, select

from tracker.cli import main
from tracker.db.models import Study, StudyLabel, SyncRun
from tracker.db.session import transaction
from tracker.query import load_trial_frame

CTIS = Path(__file__).parent / "fixtures" / "ctis"
MS_RECORDS = ("2024-513377-21-00", "2025-520148-33-00", "2023-508412-47-00")  # the three MS fixtures
BTK_TWIN = "NCT06123456"  # named by 2025-520148-33-00
MOVED_FROM = "2019-004275-19"  # the EudraCT number 2023-508412-47-00 moved over from


def ms_trials() -> list[dict[str, Any]]:
    return [json.loads((CTIS / f"retrieve_{number}.json").read_text()) for number in MS_RECORDS]


def ctgov_twins() -> list[dict[str, Any]]:
    """ClinicalTrials.gov records of two of the CTIS trials: one named by its CTIS record, one naming the
    EudraCT number the CTIS trial moved from."""
    named = make_study(BTK_TWIN, title="Tolebrutinib in progressive multiple sclerosis")
    moved = make_study("NCT04000001", title="A trial in relapsing multiple sclerosis")
    moved["protocolSection"]["identificationModule"]["secondaryIdInfos"] = [
        {"id": f"EudraCT {MOVED_FROM}", "type": "EUDRACT_NUMBER"}
    ]
    return [named, moved]


@pytest.fixture
def ctis() -> Iterator[FakeCtis]:
    with FakeCtis(ms_trials()) as server:
        yield server


@pytest.fixture
def ctgov() -> Iterator[FakeCtgov]:
    with FakeCtgov(ctgov_twins()) as server:
        yield server


def sync(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        [
            "--database-url",
            db_url,
            "sync",
            "--requests-per-second",
            "0",
            "--query",
            "multiple sclerosis",
            *args,
        ],
    )


def registrations(engine: Engine) -> dict[str, tuple[str, str | None]]:
    with transaction(engine) as session:
        rows = session.execute(select(Study.registration_id, Study.registry_name, Study.trial_id)).all()
    return {rid: (registry, trial) for rid, registry, trial in rows}


def test_a_ctis_sync_lands_registrations_classified_through_the_same_rules(
    engine: Engine, db_url: str, ctis: FakeCtis
) -> None:
    result = sync(db_url, "--registry", "ctis", "--ctis-base-url", ctis.url)
    assert result.exit_code == 0, result.output
    assert "EU CTIS:" in result.output and "full success: 3 inserted" in result.output
    stored = registrations(engine)
    assert stored == {number: ("ctis", number) for number in MS_RECORDS}
    with transaction(engine) as session:
        labels = set(session.execute(select(StudyLabel.registration_id, StudyLabel.key)).all())
        run = session.scalars(select(SyncRun)).one()
    assert ("2025-520148-33-00", "btk_inhibitor") in labels
    assert ("2024-513377-21-00", "ahsct") in labels
    assert (run.registry_name, run.outcome, run.data_timestamp) == ("ctis", "success", "2026-06-30")
    assert len(ctis.requests_to("/retrieve")) == 3


def test_both_registries_count_each_trial_once_whichever_syncs_first(
    engine: Engine, db_url: str, ctis: FakeCtis, ctgov: FakeCtgov, tmp_path: Path
) -> None:
    assert (
        sync(db_url, "--registry", "all", "--base-url", ctgov.url, "--ctis-base-url", ctis.url).exit_code == 0
    )
    stored = registrations(engine)
    assert stored["2025-520148-33-00"] == ("ctis", BTK_TWIN)
    assert stored["2023-508412-47-00"] == ("ctis", "NCT04000001")
    assert stored["2024-513377-21-00"] == ("ctis", "2024-513377-21-00")
    frame = load_trial_frame(engine)
    assert len(frame) == frame["trial_id"].nunique() == 3  # five registrations, three trials
    btk = frame.set_index("trial_id").loc[BTK_TWIN]
    assert btk["registries"] == ("ctgov", "ctis")
    assert any(text.startswith("Germany") or ": " in text for text in btk["eu_countries"])

    if db_url.startswith("sqlite"):  # the other order, into a second store, gives the same trials
        other = f"sqlite:///{tmp_path / 'other.db'}"
        assert sync(other, "--registry", "ctis", "--ctis-base-url", ctis.url).exit_code == 0
        assert sync(other, "--base-url", ctgov.url).exit_code == 0
        from tracker.db.session import make_engine

        second = make_engine(other)
        assert registrations(second) == stored
        second.dispose()


def test_a_second_ctis_sync_is_incremental_and_fetches_nothing_unchanged(
    engine: Engine, db_url: str, ctis: FakeCtis
) -> None:
    assert sync(db_url, "--registry", "ctis", "--ctis-base-url", ctis.url).exit_code == 0
    before = len(ctis.requests_to("/retrieve"))
    result = sync(db_url, "--registry", "ctis", "--ctis-base-url", ctis.url)
    assert result.exit_code == 0, result.output
    assert "incremental success" in result.output
    # Only what was updated within the overlap behind the watermark is retrieved again: the newest trial.
    assert len(ctis.requests_to("/retrieve")) - before == 1
    assert "0 inserted, 0 updated, 1 unchanged" in result.output


def test_an_update_after_the_watermark_is_found_even_out_of_order(engine: Engine, db_url: str) -> None:
    old = [make_trial(f"2025-5000{i:02d}-{i:02d}-00", last_updated=date(2026, 1, 1 + i)) for i in range(1, 6)]
    with FakeCtis(old) as server:
        assert sync(db_url, "--registry", "ctis", "--ctis-base-url", server.url).exit_code == 0
        late = make_trial("2025-500099-99-00", last_updated=date(2026, 3, 1), title="Posted late")
        server.set_trials([*old, late])
        server.displace("2025-500099-99-00", 4)  # listed after older records: the sort is not monotonic
        result = sync(db_url, "--registry", "ctis", "--ctis-base-url", server.url)
    assert result.exit_code == 0, result.output
    assert "2025-500099-99-00" in registrations(engine)


def test_a_changed_record_shape_fails_loudly_and_keeps_what_is_stored(
    engine: Engine, db_url: str, ctis: FakeCtis, ctgov: FakeCtgov
) -> None:
    assert sync(db_url, "--base-url", ctgov.url).exit_code == 0
    ctis.set_retrieve("2024-513377-21-00", {"ctNumber": "2024-513377-21-00", "authorizedPartI": {}})
    result = sync(db_url, "--registry", "all", "--base-url", ctgov.url, "--ctis-base-url", ctis.url)
    assert result.exit_code == 1
    assert "CTIS record shape changed" in result.output
    assert "Traceback" not in result.output
    stored = registrations(engine)
    assert {rid for rid, (registry, _) in stored.items() if registry == "ctgov"} == {BTK_TWIN, "NCT04000001"}
    with transaction(engine) as session:
        rows = session.execute(select(SyncRun.registry_name, SyncRun.outcome).order_by(SyncRun.id))
        outcomes = dict(rows.all())
    assert outcomes["ctis"] == "failed"


def test_the_firewall_and_rate_limit_are_retried(engine: Engine, db_url: str, ctis: FakeCtis) -> None:
    ctis.inject(Fault("403"), Fault("429", retry_after=0.01))
    result = sync(db_url, "--registry", "ctis", "--ctis-base-url", ctis.url)
    assert result.exit_code == 0, result.output
    assert ctis.pending_faults() == 0
    assert len(registrations(engine)) == 3


def test_an_unreachable_ctis_is_one_line_and_a_non_zero_exit(engine: Engine, db_url: str) -> None:
    from support import free_port

    result = sync(db_url, "--registry", "ctis", "--ctis-base-url", f"http://127.0.0.1:{free_port()}/api")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.count("Error:") == 1


def test_an_unknown_registry_is_refused(db_url: str) -> None:
    result = sync(db_url, "--registry", "euctr")
    assert result.exit_code == 2
    assert "unknown registry 'euctr'; choose one of ctgov, ctis, all" in result.output
