"""One trial, many registrations: linking in the store, the trial view, exports and manual decisions, on
SQLite and Postgres. CTIS registrations here are ClinicalTrials.gov records re-registered under an EU CT
number (the CTIS parser has its own tests); what matters is the identifiers they carry."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from tracker import store
from tracker.ctgov.parse import CountryStatus, SecondaryId, StudyRecord, parse_study
from tracker.db.models import Study
from tracker.db.session import transaction
from tracker.export import frame_to_csv
from tracker.filters import TrialFilter
from tracker.link_store import record_decision
from tracker.query import change_events_frame, iter_trial_rows, load_trial_frame, study_detail

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = [
    parse_study(json.loads(line)) for line in (FIXTURES / "ms_sample.jsonl").read_text().splitlines()[:6]
]
EUCT_TWIN, EUCT_ALONE = "2024-510663-34-00", "2025-523726-40-00"
NOW = datetime(2026, 12, 1, 9)


def ctis_registration(base: StudyRecord, euct: str, *carried: SecondaryId) -> StudyRecord:
    return dataclasses.replace(
        base,
        registration_id=euct,
        registry="ctis",
        registry_status="Ongoing, recruiting",
        secondary_ids=carried,
        countries=(
            CountryStatus("Italy", "Ongoing, recruiting", date(2024, 6, 24)),
            CountryStatus("Spain", "Authorised, recruitment pending", date(2024, 6, 26)),
        ),
        decision_date=date(2024, 6, 24),
        content_hash=f"ctis-{euct}",
    )


def land(engine: Engine, *records: StudyRecord) -> None:
    run = store.begin_run(engine, mode="import", query="ms", source="t", data_timestamp=None)
    with transaction(engine) as session:
        store.store_page(session, run, list(records), now=NOW)
    store.finish_run(engine, run, outcome="success")


def trials_of(engine: Engine) -> dict[str, str]:
    with transaction(engine) as session:
        return dict(session.execute(select(Study.registration_id, Study.trial_id)).all())


def twin() -> StudyRecord:
    return ctis_registration(SAMPLE[0], EUCT_TWIN, SecondaryId(SAMPLE[0].registration_id, "NCT_ID", None))


def alone() -> StudyRecord:
    return ctis_registration(SAMPLE[1], EUCT_ALONE)


def test_the_landscape_counts_trials_not_registrations(engine: Engine) -> None:
    land(engine, *SAMPLE, twin(), alone())
    frame = load_trial_frame(engine)
    nct = SAMPLE[0].registration_id
    assert len(frame) == len(SAMPLE) + 1 == frame["trial_id"].nunique()  # the twin adds no row
    assert EUCT_TWIN not in set(frame["registration_id"])
    assert frame["edss_max"].dtype == "float64"  # numbers even when no trial states a bound
    row = frame.set_index("trial_id").loc[nct]
    assert row["registries"] == ("ctgov", "ctis")
    assert row["registration_ids"] == (nct, EUCT_TWIN)
    assert row["eu_countries"] == ("Italy: Ongoing, recruiting", "Spain: Authorised, recruitment pending")
    assert {"Italy", "Spain"} <= set(row["countries"])
    assert row["eu_decision_date"] == datetime(2024, 6, 24)
    lone = frame.set_index("trial_id").loc[EUCT_ALONE]
    assert lone["registries"] == ("ctis",)
    assert lone["url"].endswith(f"EUCT={EUCT_ALONE}")


def test_either_order_of_arrival_gives_the_same_store(engine: Engine, db_url: str) -> None:
    land(engine, twin())
    land(engine, *SAMPLE)
    first = trials_of(engine)
    assert first[EUCT_TWIN] == SAMPLE[0].registration_id
    from tracker.db.session import make_engine

    other = make_engine(db_url.replace("trials.db", "other.db")) if db_url.startswith("sqlite") else None
    if other is not None:
        from tracker.db.migrate import upgrade_to_head

        upgrade_to_head(other)
        land(other, *SAMPLE)
        land(other, twin())
        assert trials_of(other) == first
        other.dispose()


def test_streamed_rows_and_the_frame_agree_on_trials(engine: Engine) -> None:
    land(engine, *SAMPLE, twin(), alone())
    frame = load_trial_frame(engine)
    rows = list(iter_trial_rows(engine, TrialFilter(relevance=())))
    assert [row["trial_id"] for row in rows] == list(frame["trial_id"])
    streamed = next(row for row in rows if row["trial_id"] == SAMPLE[0].registration_id)
    assert streamed["registration_ids"] == (SAMPLE[0].registration_id, EUCT_TWIN)
    exported = list(csv.DictReader(io.StringIO(frame_to_csv(frame).decode("utf-8"))))
    by_id = {row["trial_id"]: row for row in exported}
    assert by_id[SAMPLE[0].registration_id]["registries"] == "ctgov; ctis"
    assert EUCT_TWIN not in by_id


def test_a_manual_unlink_survives_re_sync_and_a_link_reverses_it(engine: Engine) -> None:
    land(engine, *SAMPLE, twin())
    nct = SAMPLE[0].registration_id
    assert record_decision(engine, EUCT_TWIN, nct, "unlink", "different trials: extension study") == {
        nct: nct,
        EUCT_TWIN: EUCT_TWIN,
    }
    land(engine, dataclasses.replace(twin(), content_hash="ctis-changed", brief_title="Re-synced"))
    assert trials_of(engine)[EUCT_TWIN] == EUCT_TWIN
    assert len(load_trial_frame(engine)) == len(SAMPLE) + 1
    record_decision(engine, nct, EUCT_TWIN, "link", "same trial after all")
    assert trials_of(engine)[EUCT_TWIN] == nct


def test_a_manual_link_made_before_the_registration_arrives_applies_when_it_does(engine: Engine) -> None:
    land(engine, *SAMPLE)
    record_decision(engine, EUCT_ALONE, SAMPLE[2].registration_id, "link", "same protocol code")
    land(engine, alone())
    assert trials_of(engine)[EUCT_ALONE] == SAMPLE[2].registration_id


def test_the_trial_page_and_events_cover_every_registration(engine: Engine) -> None:
    land(engine, *SAMPLE, twin())
    nct = SAMPLE[0].registration_id
    detail = study_detail(engine, EUCT_TWIN)  # any registration's ID finds the trial
    assert detail is not None and detail["trial_id"] == nct
    assert [(r["registration_id"], r["registry"]) for r in detail["registrations"]] == [
        (nct, "ctgov"),
        (EUCT_TWIN, "ctis"),
    ]
    assert detail["registrations"][1]["countries"][0]["country"] == "Italy"
    events = change_events_frame(engine, trial_ids=[nct])
    assert set(events["registration_id"]) == {nct, EUCT_TWIN}


def test_the_registration_migration_keeps_every_stored_study_version_and_event(db_url: str) -> None:
    """A store written at 0005 (key `nct_id`) comes out at head with every row, keyed by registration."""
    from alembic import command
    from sqlalchemy import MetaData, func, insert

    from tracker.db.migrate import alembic_config, upgrade_to_head
    from tracker.db.models import ChangeEvent, RegistrationIdentifier, SecondaryId, StudyVersion
    from tracker.db.session import make_engine

    engine = make_engine(db_url)
    command.upgrade(alembic_config(engine), "0005_study_details")
    old = MetaData()
    old.reflect(engine)
    records = SAMPLE[:4]
    with engine.begin() as connection:
        for record in records:
            row = {k: v for k, v in store.study_columns(record).items() if k in old.tables["studies"].c}
            connection.execute(
                insert(old.tables["studies"]).values(
                    nct_id=record.registration_id, first_seen_at=NOW, last_seen_at=NOW, **row
                )
            )
            connection.execute(
                insert(old.tables["study_versions"]).values(
                    nct_id=record.registration_id,
                    seen_at=NOW,
                    content_hash=record.content_hash,
                    raw=record.raw,
                )
            )
            connection.execute(
                insert(old.tables["change_events"]).values(
                    nct_id=record.registration_id, detected_at=NOW, kind="new", baseline=False
                )
            )
    upgrade_to_head(engine)
    ids = sorted(r.registration_id for r in records)
    with transaction(engine) as session:
        assert sorted(session.scalars(select(Study.registration_id))) == ids
        assert set(session.scalars(select(Study.trial_id))) == set(ids)
        assert set(session.scalars(select(Study.registry_name))) == {"ctgov"}
        assert sorted(session.scalars(select(StudyVersion.registration_id))) == ids
        assert sorted(session.scalars(select(ChangeEvent.registration_id))) == ids
        own = session.scalars(
            select(RegistrationIdentifier.value).where(RegistrationIdentifier.scheme == "nct")
        )
        assert set(own) >= set(ids)  # identifiers derived from the stored records on upgrade
        assert session.scalar(select(func.count()).select_from(SecondaryId)) == sum(
            len(r.secondary_ids) for r in records
        )
    assert len(load_trial_frame(engine)) == len(records)
    engine.dispose()


def test_a_change_to_a_twin_registration_is_news_of_its_trial(engine: Engine) -> None:
    from datetime import timedelta

    from tracker.digest.run import period_changes

    land(engine, *SAMPLE, twin())
    later = dataclasses.replace(
        twin(), overall_status="SUSPENDED", registry_status="Suspended", content_hash="ctis-suspended"
    )
    run = store.begin_run(engine, mode="import", query="ms", source="t", data_timestamp=None)
    with transaction(engine) as session:
        store.store_page(session, run, [later], now=NOW + timedelta(days=1))
    store.finish_run(engine, run, outcome="success")
    period = period_changes(
        engine, load_trial_frame(engine), NOW + timedelta(hours=1), NOW + timedelta(days=2)
    )
    status_events = period.events[period.events["kind"] == "status"]
    assert list(status_events["registration_id"]) == [SAMPLE[0].registration_id]  # counted under the trial


def test_status_counts_trials_and_registrations_per_registry(engine: Engine, db_url: str) -> None:
    from tracker.status import format_status, status_summary

    land(engine, *SAMPLE, twin(), alone())
    summary = status_summary(engine, db_url)
    assert (summary["studies"], summary["trials"]) == (len(SAMPLE) + 2, len(SAMPLE) + 1)
    assert summary["by_registry"] == {"ctgov": len(SAMPLE), "ctis": 2}
    assert (
        f"Trials:          {len(SAMPLE) + 1} (registrations: ctgov {len(SAMPLE)}, ctis 2)"
        in format_status(summary)
    )


def test_link_and_unlink_commands(engine: Engine, db_url: str) -> None:
    from click.testing import CliRunner

    from tracker.cli import main

    land(engine, *SAMPLE, twin())
    nct = SAMPLE[0].registration_id

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["--database-url", db_url, *args])
        return result.exit_code, result.output

    assert run("unlink", EUCT_TWIN, nct.lower(), "--note", "extension study") == (
        0,
        f"Unlinked {EUCT_TWIN} and {nct}: trials {EUCT_TWIN} and {nct}.\n",
    )
    code, output = run("link", f"EU CT {EUCT_ALONE}", SAMPLE[1].registration_id, "--note", "same protocol")
    assert code == 0
    assert output.splitlines() == [
        f"Linked {EUCT_ALONE} and {SAMPLE[1].registration_id}: one trial, {SAMPLE[1].registration_id}.",
        f"{EUCT_ALONE} is not stored yet; the decision applies when it arrives.",
    ]
    code, output = run("link", "2019-001588-63", nct, "--note", "x")
    assert code == 2 and "is not a registration ID" in output
    assert run("link", nct, nct, "--note", "x")[0] == 2
    assert trials_of(engine)[EUCT_TWIN] == EUCT_TWIN
