"""The query layer on SQLite and Postgres: the trial frame, change events, detail and cache version."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from sqlalchemy import Engine

from tracker import store
from tracker.db.models import StudyLabel
from tracker.db.session import transaction
from tracker.filters import TrialFilter
from tracker.query import (
    TRIAL_FRAME_COLUMNS,
    change_events_frame,
    data_version,
    investigational_mechanisms,
    latest_run,
    load_trial_frame,
    phase_label,
    select_trials,
    study_detail,
)

FIXTURES = Path(__file__).parent / "fixtures"
REAL = json.loads((FIXTURES / "ctgov/studies/NCT03064438.json").read_text())
SAMPLE = [json.loads(line) for line in (FIXTURES / "ms_sample.jsonl").read_text().splitlines()][:20]


def loaded(engine: Engine) -> None:
    run = store.begin_run(engine, mode="full", query="ms", source="t", data_timestamp="2025-09-25T09:00:00")
    store.ingest_page(engine, run, [REAL, *SAMPLE])
    store.finish_run(engine, run, outcome="success")
    with transaction(engine) as session:  # labels as the classifier would leave them
        session.add_all(
            [
                StudyLabel(registration_id="NCT03064438", dimension="relevance", key="ms", source="auto"),
                StudyLabel(
                    registration_id="NCT03064438",
                    dimension="mechanism",
                    key="btk_inhibitor",
                    role="investigational",
                    source="auto",
                ),
                StudyLabel(registration_id="NCT03064438", dimension="phenotype", key="spms", source="manual"),
            ]
        )


def test_empty_database_gives_an_empty_frame_with_every_column(engine: Engine) -> None:
    frame = load_trial_frame(engine)
    assert frame.empty and tuple(frame.columns) == TRIAL_FRAME_COLUMNS
    assert latest_run(engine) is None


def test_trial_frame_folds_children_and_labels(engine: Engine) -> None:
    loaded(engine)
    frame = load_trial_frame(engine).set_index("registration_id")
    assert len(frame) == 21
    row = frame.loc["NCT03064438"]
    assert row["interventions"] == ("ACCU-D1", "Vehicle")
    assert row["mechanisms"] == ("btk_inhibitor",)
    assert row["mechanism_roles"] == ("btk_inhibitor:investigational",)
    assert row["phenotypes"] == ("spms",)
    assert (row["relevance"], row["phase_label"], row["start_year"]) == ("ms", "Phase 2", 2017)
    assert row["url"] == "https://clinicaltrials.gov/study/NCT03064438"
    assert row["sponsor_category"] == "industry"
    assert list(select_trials(engine, TrialFilter(mechanisms=("btk_inhibitor",)))["registration_id"]) == [
        "NCT03064438"
    ]


def test_comparator_mechanisms_are_counted_only_when_asked_for(engine: Engine) -> None:
    loaded(engine)
    with transaction(engine) as session:
        session.add(
            StudyLabel(
                registration_id="NCT03064438",
                dimension="mechanism",
                key="dhodh_inhibitor",
                role="comparator",
                source="auto",
            )
        )
    row = load_trial_frame(engine).set_index("registration_id").loc["NCT03064438"]
    assert row["mechanisms"] == ("btk_inhibitor", "dhodh_inhibitor")
    assert row["investigational_mechanisms"] == ("btk_inhibitor",)
    assert row["comparator_mechanisms"] == ("dhodh_inhibitor",)
    comparator = TrialFilter(mechanisms=("dhodh_inhibitor",))
    assert select_trials(engine, comparator).empty
    assert list(
        select_trials(engine, comparator.with_changes(include_comparators=True))["registration_id"]
    ) == ["NCT03064438"]


def test_a_trial_of_comparators_only_counts_them_all() -> None:
    assert investigational_mechanisms(("anti_cd20", "fumarate"), ("fumarate",)) == ("anti_cd20",)
    assert investigational_mechanisms(("anti_cd20", "fumarate"), ("anti_cd20", "fumarate")) == (
        "anti_cd20",
        "fumarate",
    )


def test_change_events_and_detail(engine: Engine) -> None:
    loaded(engine)
    version = data_version(engine)
    edited = copy.deepcopy(REAL)
    edited["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
    run = store.begin_run(
        engine, mode="incremental", query="ms", source="t", data_timestamp="2025-09-26T09:00:00"
    )
    store.ingest_page(engine, run, [edited])
    store.finish_run(engine, run, outcome="success")
    assert data_version(engine) != version
    events = change_events_frame(engine, include_baseline=False)
    assert list(events["kind"]) == ["status"]
    assert len(change_events_frame(engine, kinds=["new"])) == 21
    detail = study_detail(engine, "NCT03064438")
    assert detail["overall_status"] == "TERMINATED"
    assert detail["version_count"] == 2
    assert [c["kind"] for c in detail["changes"]] == ["status", "new"]
    assert {loc["country"] for loc in detail["locations"]}
    assert study_detail(engine, "NCT99999999") is None
    assert latest_run(engine)["mode"] == "incremental"


def test_phase_labels() -> None:
    assert phase_label(["PHASE1", "PHASE2"]) == "Phase 1/2"
    assert phase_label(["NA"]) == "Not applicable"
    assert phase_label([]) == "—"
