"""The store on SQLite and Postgres: upserts, child tables, versions, change events, removal, rejection."""

from __future__ import annotations

import copy
import json
import os
import signal
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from support import count_rows

from tracker import store
from tracker.db.models import (
    ChangeEvent,
    Classification,
    Condition,
    Intervention,
    Study,
    StudyVersion,
    SyncRun,
)
from tracker.db.session import transaction

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = [json.loads(line) for line in (FIXTURES / "ms_sample.jsonl").read_text().splitlines()][:60]
REAL = json.loads((FIXTURES / "ctgov/studies/NCT03064438.json").read_text())


def load(engine: Engine, studies: list, *, mode: str = "full", stamp: str = "2025-09-25T09:00:00"):  # type: ignore[no-untyped-def]
    run = store.begin_run(engine, mode=mode, query="multiple sclerosis", source="test", data_timestamp=stamp)
    outcome = store.ingest_page(engine, run, studies)
    store.finish_run(engine, run, outcome="partial" if outcome.rejected else "success")
    return run, outcome


def test_first_load_inserts_everything_as_baseline(engine: Engine) -> None:
    run, outcome = load(engine, [*SAMPLE, REAL])
    assert (outcome.inserted, outcome.updated, outcome.unchanged) == (61, 0, 0)
    assert count_rows(engine, Study) == 61
    assert count_rows(engine, StudyVersion) == 61
    assert count_rows(engine, ChangeEvent, ChangeEvent.kind == "new", ChangeEvent.baseline.is_(True)) == 61
    assert count_rows(engine, Intervention, Intervention.registration_id == "NCT03064438") == 2
    with transaction(engine) as session:
        assert session.get(SyncRun, run).baseline is True
        study = session.get(Study, "NCT03064438")
        assert study.raw == REAL
        assert (study.start_date, study.start_date_precision, study.start_date_type) == (
            date(2017, 11, 28),
            "day",
            "ACTUAL",
        )
        assert study.phases == ["PHASE2"]
        roles = dict(
            session.execute(
                select(Intervention.name, Intervention.arm_role).where(
                    Intervention.registration_id == "NCT03064438"
                )
            ).all()
        )
        assert roles == {"ACCU-D1": "experimental", "Vehicle": "placebo"}


def test_reloading_unchanged_data_changes_nothing(engine: Engine) -> None:
    load(engine, SAMPLE)
    before = (
        count_rows(engine, StudyVersion),
        count_rows(engine, ChangeEvent),
        count_rows(engine, Condition),
    )
    _, outcome = load(engine, copy.deepcopy(SAMPLE), mode="incremental", stamp="2025-09-26T09:00:00")
    assert (outcome.inserted, outcome.updated, outcome.unchanged) == (0, 0, len(SAMPLE))
    assert (
        count_rows(engine, StudyVersion),
        count_rows(engine, ChangeEvent),
        count_rows(engine, Condition),
    ) == before


def test_a_changed_study_gets_a_version_events_and_fresh_children(engine: Engine) -> None:
    load(engine, [REAL])
    changed = copy.deepcopy(REAL)
    status = changed["protocolSection"]["statusModule"]
    status["overallStatus"] = "TERMINATED"
    status["whyStopped"] = "Enrollment too slow"
    status["primaryCompletionDateStruct"] = {"date": "2019-06", "type": "ACTUAL"}
    changed["protocolSection"]["conditionsModule"]["conditions"] = ["Rosacea", "Multiple Sclerosis"]
    _, outcome = load(engine, [changed], mode="incremental")
    assert outcome.updated == 1
    assert count_rows(engine, StudyVersion) == 2
    with transaction(engine) as session:
        events = session.execute(
            select(ChangeEvent.kind, ChangeEvent.field, ChangeEvent.new_value, ChangeEvent.baseline).where(
                ChangeEvent.kind != "new"
            )
        ).all()
        conditions = session.scalars(select(Condition.name).order_by(Condition.position)).all()
        assert session.get(Study, "NCT03064438").overall_status == "TERMINATED"
    assert ("status", "overall_status", "TERMINATED", False) in events
    assert ("status", "why_stopped", "Enrollment too slow", False) in events
    assert ("primary_completion_date", "primary_completion_date", "2019-06 (ACTUAL)", False) in events
    assert conditions == ["Rosacea", "Multiple Sclerosis"]


def test_a_bad_record_is_rejected_alone(engine: Engine) -> None:
    bad = json.loads((FIXTURES / "ctgov/edge/bad_start_date.json").read_text())
    run, outcome = load(engine, [SAMPLE[0], bad, {"FullStudiesResponse": {}}, SAMPLE[1]])
    assert outcome.inserted == 2
    assert len(outcome.rejected) == 2
    with transaction(engine) as session:
        row = session.get(SyncRun, run)
        assert (row.studies_rejected, row.outcome) == (2, "partial")
        assert any("startDateStruct" in item["reason"] for item in row.rejections)


def test_removed_studies_are_flagged_never_deleted_and_can_return(engine: Engine) -> None:
    run, _ = load(engine, SAMPLE[:5])
    kept = [s["protocolSection"]["identificationModule"]["nctId"] for s in SAMPLE[:3]]
    gone = store.flag_removed(engine, run, kept)
    assert len(gone) == 2
    assert count_rows(engine, Study) == 5
    assert count_rows(engine, Study, Study.removed_at.is_not(None)) == 2
    assert count_rows(engine, ChangeEvent, ChangeEvent.kind == "removed") == 2
    assert store.flag_removed(engine, run, kept) == []  # already flagged: no second event
    load(engine, SAMPLE[:5], mode="incremental")
    assert count_rows(engine, Study, Study.removed_at.is_not(None)) == 0


def test_watermark_is_the_registry_date_of_the_last_clean_sync(engine: Engine) -> None:
    assert store.watermark(engine) is None
    load(engine, SAMPLE[:2], stamp="2025-09-25T09:00:05")
    assert store.watermark(engine) == date(2025, 9, 25)
    run = store.begin_run(
        engine, mode="incremental", query=None, source=None, data_timestamp="2025-10-02T09:00:00"
    )
    store.finish_run(engine, run, outcome="failed", error="API unreachable")
    assert store.watermark(engine) == date(2025, 9, 25)  # a failed run never moves it
    run = store.begin_run(engine, mode="import", query=None, source="file", data_timestamp=None)
    store.finish_run(engine, run, outcome="success")
    assert store.watermark(engine) == date(2025, 9, 25)  # nor does an import


def test_an_older_copy_never_rolls_a_study_back(engine: Engine) -> None:
    newer = copy.deepcopy(REAL)
    newer["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
    newer["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {
        "date": "2026-03-01",
        "type": "ACTUAL",
    }
    load(engine, [newer])
    _, outcome = load(engine, [REAL], mode="import")  # an old bulk download, imported later
    assert (outcome.updated, outcome.unchanged) == (0, 1)
    assert count_rows(engine, StudyVersion) == 1
    assert count_rows(engine, ChangeEvent, ChangeEvent.kind != "new") == 0
    with transaction(engine) as session:
        assert session.get(Study, "NCT03064438").overall_status == "TERMINATED"


def test_ctrl_c_while_a_page_is_written_takes_effect_once_the_page_has_landed(engine: Engine) -> None:
    # An interrupt inside the page's transaction (here from the classifier hook) waits for its end: the
    # page lands whole with its labels, then KeyboardInterrupt; the database is left unlocked.
    from tracker.sync import classify_hook

    run_id = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)
    classify = classify_hook()

    def interrupted_while_classifying(session: Any, records: Any) -> int:
        os.kill(os.getpid(), signal.SIGINT)
        return classify(session, records)

    with pytest.raises(KeyboardInterrupt):
        store.ingest_page(engine, run_id, SAMPLE, on_landed=interrupted_while_classifying)

    assert count_rows(engine, Study) == len(SAMPLE)
    assert count_rows(engine, Classification) == len(SAMPLE)
    store.finish_run(engine, run_id, outcome="failed", error="interrupted")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sqlite_writer_keeps_the_wal_and_checkpoints_it_in_large_steps(sqlite_url: str) -> None:
    from sqlalchemy import text

    from tracker.db.session import make_engine

    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        pragmas = {
            name: connection.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "wal_autocheckpoint")
        }
    engine.dispose()
    # synchronous 1 = NORMAL: safe against a crash of the process in WAL mode, no sync at each commit
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "wal_autocheckpoint": 16384,
    }
