"""Never wrong under stress: hostile records fail alone, concurrent writers never duplicate, interrupted
work resumes, a restarted walk lands what it is served, a failed classification fails its run."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from digest_scenario import SUBSCRIBED, MailSink, load_baseline, load_week1, scenario, start_smtp
from fake_ctgov import FakeCtgov, Fault, make_study
from sqlalchemy import Engine, event, select
from support import count_rows

from tracker import store, sync
from tracker.cli import main
from tracker.config import load_settings
from tracker.db.models import (
    ArmGroup,
    ChangeEvent,
    Condition,
    DigestDelivery,
    Location,
    OutcomeMeasure,
    SecondaryId,
    Study,
    StudyVersion,
    SyncRun,
)
from tracker.db.session import make_engine, transaction
from tracker.errors import DatabaseError
from tracker.filters import TrialFilter
from tracker.locks import INGEST, Lease, LeaseHeldError
from tracker.sources import import_studies
from tracker.subscriptions import add_subscription
from tracker.sync import run_sync

PROJECT = Path(__file__).resolve().parents[1]
EVERYTHING = TrialFilter(relevance=())  # the digest stores are not classified: no relevance restriction
SAMPLE_LINES = (FIXTURES / "ms_sample.jsonl").read_bytes().splitlines()
SAMPLE = [orjson.loads(line) for line in SAMPLE_LINES]
MS = [
    raw for raw in SAMPLE if "Multiple Sclerosis" in raw["protocolSection"]["conditionsModule"]["conditions"]
]


def nct(raw: dict[str, Any]) -> str:
    return raw["protocolSection"]["identificationModule"]["nctId"]


def hostile_records() -> tuple[list[dict[str, Any]], str]:
    """Five real MS studies made hostile; returns them and the NCT ID of the one that cannot be kept."""
    ms = [
        raw
        for raw in SAMPLE
        if "Multiple Sclerosis" in raw["protocolSection"]["conditionsModule"]["conditions"]
    ]
    picked = [copy.deepcopy(raw) for raw in ms[:5]]
    ident = [raw["protocolSection"]["identificationModule"] for raw in picked]
    ident[0]["briefTitle"] = "Nul\x00 title\x07 with bell"
    picked[0]["protocolSection"].setdefault("sponsorCollaboratorsModule", {})["leadSponsor"] = {
        "name": "Sponsor\x00 Inc",
        "class": "INDUSTRY",
    }
    ident[1]["acronym"] = "A" * 300
    picked[2]["protocolSection"].setdefault("statusModule", {})["overallStatus"] = "RECRUITING_" + "X" * 60
    picked[3]["protocolSection"].setdefault("contactsLocationsModule", {})["locations"] = [
        {"facility": "Clinic", "city": "Town", "country": "C" * 150}
    ]
    design = picked[4]["protocolSection"].setdefault("designModule", {})
    design["enrollmentInfo"] = {"count": 3_000_000_000, "type": "ESTIMATED"}
    return picked, nct(picked[4])


def stored(engine: Engine, registration_id: str) -> Study:
    with transaction(engine) as session:
        study = session.get(Study, registration_id)
        assert study is not None, f"{registration_id} did not land"
        return study


def assert_hostile_rest_landed(engine: Engine, hostile: list[dict[str, Any]], offender: str) -> None:
    assert stored(engine, nct(hostile[0])).brief_title == "Nul title with bell"
    assert stored(engine, nct(hostile[0])).lead_sponsor_name == "Sponsor Inc"
    assert stored(engine, nct(hostile[1])).acronym == "A" * 300
    assert stored(engine, nct(hostile[2])).overall_status == "RECRUITING_" + "X" * 60
    countries = [row.country for row in rows(engine, Location, Location.registration_id == nct(hostile[3]))]
    assert countries == ["C" * 150]
    with transaction(engine) as session:
        assert session.get(Study, offender) is None


def rows(engine: Engine, model: type, *where: Any) -> list[Any]:
    with transaction(engine) as session:
        return list(session.scalars(select(model).where(*where)))


# --- one bad record fails alone -----------------------------------------------------------------------


def test_hostile_records_in_an_import_fail_alone(db_url: str, tmp_path: Path) -> None:
    hostile, offender = hostile_records()
    hostile_ids = {nct(raw) for raw in hostile}
    lines = [
        line
        for line in SAMPLE_LINES
        if orjson.loads(line)["protocolSection"]["identificationModule"]["nctId"] not in hostile_ids
    ]
    bad_lines = [
        b'{"protocolSection": {"identificationModule": {"nctId": "NCT0\xff"}}}',  # bad UTF-8
        b'{"protocolSection": {"identificationModule": {"briefTitle": "\\ud800"}}}',  # lone surrogate
        b"[" * 1100 + b"]" * 1100,  # nesting past 1024
    ]
    body = [*lines[:50], *bad_lines, *(orjson.dumps(raw) for raw in hostile), *lines[50:]]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(body) + b"\n")

    result = CliRunner().invoke(main, ["--database-url", db_url, "import", str(path)])

    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert f"rejected {offender}: enrollmentInfo.count 3000000000 is out of range" in result.output
    for number in (51, 52, 53):
        assert f"hostile.jsonl line {number}: not valid JSON" in result.output
    engine = make_engine(db_url)
    assert count_rows(engine, Study) == len(lines) + 4
    assert_hostile_rest_landed(engine, hostile, offender)
    (run,) = rows(engine, SyncRun)
    assert (run.outcome, run.studies_rejected) == ("partial", 4)
    engine.dispose()


def sync_settings(fake: FakeCtgov, db_url: str, **overrides: Any) -> Any:
    values = {"database_url": db_url, "ctgov_base_url": fake.url, "requests_per_second": 0, "page_size": 50}
    return load_settings(**{**values, **overrides})


def served(fake: FakeCtgov) -> int:
    """How many studies the registry returns for the default query."""
    params = {"query.cond": load_settings().query, "countTotal": "true", "pageSize": "1"}
    return int(httpx.get(f"{fake.url}/studies", params=params).json()["totalCount"])


def test_hostile_records_in_a_sync_fail_alone_and_do_not_block_the_next_week(
    fake_ctgov: FakeCtgov, db_url: str
) -> None:
    hostile, offender = hostile_records()
    hostile_ids = {nct(raw) for raw in hostile}
    fake_ctgov.set_studies([*(raw for raw in SAMPLE if nct(raw) not in hostile_ids), *hostile])
    env = {"TRACKER_REQUESTS_PER_SECOND": "0", "TRACKER_PAGE_SIZE": "50"}

    first = CliRunner().invoke(
        main, ["--database-url", db_url, "sync", "--base-url", fake_ctgov.url], env=env
    )

    assert first.exit_code == 3, first.output
    assert "Traceback" not in first.output
    assert f"rejected {offender}: enrollmentInfo.count 3000000000 is out of range" in first.output
    engine = make_engine(db_url)
    assert count_rows(engine, Study) == served(fake_ctgov) - 1
    assert_hostile_rest_landed(engine, hostile, offender)

    # A week later the offender is still malformed; the new trial and an update land all the same.
    fake_ctgov.data_timestamp = "2025-10-02T09:00:00"
    fake_ctgov.upsert_study(make_study("NCT09900001", last_update="2025-10-01"))
    changed = copy.deepcopy(MS[10])
    changed["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"
    changed["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2025-10-01"}
    fake_ctgov.upsert_study(changed)
    again = CliRunner().invoke(
        main, ["--database-url", db_url, "sync", "--base-url", fake_ctgov.url], env=env
    )

    assert again.exit_code == 3, again.output
    assert stored(engine, "NCT09900001").overall_status == "RECRUITING"
    assert stored(engine, nct(changed)).overall_status == "COMPLETED"
    engine.dispose()


def refuse_poisoned_titles(engine: Engine) -> None:
    """A real database refusal no normalisation can foresee: a trigger that rejects one title."""
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON studies WHEN NEW.brief_title = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned title refused'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                "IF NEW.brief_title = 'poison' THEN "
                "RAISE EXCEPTION 'poisoned title refused' USING ERRCODE = 'check_violation'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON studies FOR EACH ROW EXECUTE FUNCTION poison()"
            )


def test_a_page_the_database_refuses_is_written_record_by_record(engine: Engine) -> None:
    refuse_poisoned_titles(engine)
    page = [make_study(f"NCT0990{i:04d}") for i in range(20)]
    page[7]["protocolSection"]["identificationModule"]["briefTitle"] = "poison"
    run_id = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)

    result = store.ingest_page(engine, run_id, page)

    assert (result.inserted, len(result.rejected)) == (19, 1)
    (rejection,) = result.rejected
    assert rejection.registration_id == "NCT09900007" and "poisoned title refused" in rejection.reason
    assert count_rows(engine, Study) == 19
    assert count_rows(engine, StudyVersion) == 19
    assert count_rows(engine, ChangeEvent) == 19
    (run,) = rows(engine, SyncRun)
    assert (run.pages, run.studies_inserted, run.studies_rejected) == (1, 19, 1)


def study_with_details(registration_id: str, primary_measure: str) -> dict[str, Any]:
    """A small study with two outcome measures, two arms and a secondary ID."""
    raw = make_study(registration_id)
    section = raw["protocolSection"]
    section["outcomesModule"] = {
        "primaryOutcomes": [{"measure": primary_measure, "timeFrame": "Week 96"}],
        "secondaryOutcomes": [{"measure": "Annualised relapse rate", "timeFrame": "Week 96"}],
    }
    section["armsInterventionsModule"] = {
        "armGroups": [
            {"label": "Drug", "type": "EXPERIMENTAL", "interventionNames": ["Drug: X"]},
            {"label": "Placebo", "type": "PLACEBO_COMPARATOR", "interventionNames": ["Drug: Placebo"]},
        ]
    }
    section["identificationModule"]["secondaryIdInfos"] = [
        {"id": f"2024-{registration_id[-6:]}-11", "type": "OTHER"}
    ]
    return raw


def refuse_poisoned_outcomes(engine: Engine) -> None:
    """The database refuses one outcome measure: the detail tables are part of the record's write."""
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON outcome_measures WHEN NEW.measure = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned outcome refused'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                "IF NEW.measure = 'poison' THEN "
                "RAISE EXCEPTION 'poisoned outcome refused' USING ERRCODE = 'check_violation'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON outcome_measures "
                "FOR EACH ROW EXECUTE FUNCTION poison()"
            )


def test_a_refused_outcome_measure_rejects_its_record_alone_with_all_its_details(engine: Engine) -> None:
    refuse_poisoned_outcomes(engine)
    page = [study_with_details(f"NCT0980{i:04d}", "EDSS progression") for i in range(12)]
    page[5] = study_with_details("NCT09800005", "poison")
    run_id = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)

    result = store.ingest_page(engine, run_id, page)

    assert (result.inserted, [r.registration_id for r in result.rejected]) == (11, ["NCT09800005"])
    assert "poisoned outcome refused" in result.rejected[0].reason
    assert count_rows(engine, Study) == 11
    assert count_rows(engine, OutcomeMeasure) == 22
    assert count_rows(engine, ArmGroup) == 22
    assert count_rows(engine, SecondaryId) == 11
    assert not rows(engine, ArmGroup, ArmGroup.registration_id == "NCT09800005")


def test_detail_rows_written_twice_are_stored_once(engine: Engine) -> None:
    """A second writer landing the same children: the unique (study, [role,] position) keys keep one copy."""
    raw = study_with_details("NCT09810001", "Time to confirmed disability progression")
    run_id = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)
    store.ingest_page(engine, run_id, [raw])
    record = store.parse_page([raw], store.PageResult())[0]

    with transaction(engine) as session:
        store._replace_children(session, [record], [])  # the other writer's insert of the same rows

    measures = rows(engine, OutcomeMeasure)
    assert sorted((m.role, m.position, m.measure) for m in measures) == [
        ("primary", 0, "Time to confirmed disability progression"),
        ("secondary", 0, "Annualised relapse rate"),
    ]
    assert [a.label for a in sorted(rows(engine, ArmGroup), key=lambda a: a.position)] == ["Drug", "Placebo"]
    assert count_rows(engine, SecondaryId) == 1


# --- idempotent writes and leases --------------------------------------------------------------------


def test_a_page_landed_twice_at_once_is_stored_once(engine: Engine) -> None:
    """Two writers that slipped past the lease: the unique keys and ON CONFLICT keep one copy."""
    changed = copy.deepcopy(SAMPLE[:40])
    for raw in changed:
        raw["protocolSection"]["statusModule"]["whyStopped"] = "Funding withdrawn"  # none has this reason
    for attempt, page in enumerate((SAMPLE[:60], changed)):
        run_ids = [
            store.begin_run(engine, mode="full", query="q", source="t", data_timestamp=None) for _ in (1, 2)
        ]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def land(
            run_id: int,
            page: list[dict[str, Any]] = page,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                store.ingest_page(engine, run_id, page)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=land, args=(run_id,)) for run_id in run_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if engine.dialect.name == "sqlite":  # one writer at a time: the loser may be told it is locked
            assert all(isinstance(error, DatabaseError) for error in errors)
        else:
            assert not errors, errors
        for run_id in run_ids:
            store.finish_run(engine, run_id, outcome="success")
        assert count_rows(engine, Study) == 60, attempt
    assert count_rows(engine, StudyVersion) == 100
    assert count_rows(engine, ChangeEvent, ChangeEvent.kind == "new") == 60
    assert count_rows(engine, ChangeEvent, ChangeEvent.field == "why_stopped") == 40
    conditions = sum(len(raw["protocolSection"]["conditionsModule"]["conditions"]) for raw in SAMPLE[:60])
    assert count_rows(engine, Condition) == conditions


def sync_process(db_url: str, base_url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TRACKER_REQUESTS_PER_SECOND": "0", "TRACKER_PAGE_SIZE": "20"}
    return subprocess.Popen(
        [sys.executable, "-m", "tracker", "--database-url", db_url, "sync", "--base-url", base_url],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.postgres
def test_two_syncs_at_once_record_every_change_once(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the race needs two processes writing at once: Postgres")
    engine = make_engine(db_url)
    from tracker.db.migrate import upgrade_to_head

    upgrade_to_head(engine)
    week = copy.deepcopy(SAMPLE[:111])
    for raw in week:
        raw["protocolSection"]["statusModule"]["whyStopped"] = "Funding withdrawn"  # none has this reason
        raw["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2025-09-26"}
    with FakeCtgov(SAMPLE) as fake:
        for attempt in range(4):
            if attempt == 2:
                fake.set_studies([*week, *SAMPLE[111:]])
            fake.inject(*[Fault("delay", seconds=0.05)] * 4)  # keep the first sync busy a little
            first, second = sync_process(db_url, fake.url), sync_process(db_url, fake.url)
            outputs = [(process.wait(timeout=300), *process.communicate()) for process in (first, second)]
            for code, _out, err in outputs:
                assert "Traceback" not in err, err
                assert code == 0 or (code == 1 and "another sync is running (owner " in err), err
            assert any(code == 0 for code, _out, _err in outputs)
    week_ids = {nct(raw) for raw in week}
    landed = count_rows(engine, Study)
    changed = count_rows(engine, Study, Study.registration_id.in_(week_ids))
    assert landed == count_rows(engine, ChangeEvent, ChangeEvent.kind == "new")
    assert count_rows(engine, StudyVersion) == landed + changed
    assert count_rows(engine, ChangeEvent, ChangeEvent.field == "why_stopped") == changed
    engine.dispose()


def test_a_second_writer_is_told_who_holds_the_lease(
    fake_ctgov: FakeCtgov, engine: Engine, db_url: str
) -> None:
    fake_ctgov.set_studies(SAMPLE[:5])
    with Lease(engine, INGEST, purpose="sync", owner="scheduler-host:4242"):
        result = CliRunner().invoke(main, ["--database-url", db_url, "sync", "--base-url", fake_ctgov.url])
        imported = CliRunner().invoke(
            main, ["--database-url", db_url, "import", str(FIXTURES / "ms_sample.jsonl")]
        )
        with pytest.raises(LeaseHeldError):
            run_sync(engine, sync_settings(fake_ctgov, db_url))
    for outcome in (result, imported):
        assert outcome.exit_code == 1
        (line,) = [line for line in outcome.output.splitlines() if line.startswith("Error:")]
        assert line.startswith("Error: another sync is running (owner scheduler-host:4242 since ")
    assert count_rows(engine, SyncRun) == 0  # refused before anything was recorded


def digest_process(db_url: str, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TRACKER_SMTP_HOST": "127.0.0.1",
        "TRACKER_SMTP_PORT": str(port),
        "TRACKER_MAIL_FROM": "digest@tracker.example",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tracker", "--database-url", db_url, "digest", "--send"],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_two_digest_rounds_at_once_send_each_digest_once(engine: Engine, db_url: str) -> None:
    world = scenario()
    load_baseline(engine, world)
    readers = [f"reader{i}@example.org" for i in range(6)]
    for reader in readers:
        add_subscription(engine, reader, EVERYTHING, now=SUBSCRIBED)
    load_week1(engine, world)
    sink = MailSink()
    controller = start_smtp(sink)
    try:
        for _round in range(3):
            first, second = digest_process(db_url, controller.port), digest_process(db_url, controller.port)
            for process in (first, second):
                code = process.wait(timeout=300)
                _out, err = process.communicate()
                assert "Traceback" not in err, err
                assert code == 0 or "another digest --send is running (owner " in err, err
    finally:
        controller.stop()
    assert sorted(str(message["To"]) for message in sink.messages) == readers
    assert count_rows(engine, DigestDelivery, DigestDelivery.status == "sent") == 6


def test_a_claimed_subscription_is_skipped_by_a_concurrent_round(engine: Engine) -> None:
    from tracker.digest.run import _claim, run_digests
    from tracker.digest.send import SmtpSender

    world = scenario()
    load_baseline(engine, world)
    first = add_subscription(engine, "a@example.org", EVERYTHING, now=SUBSCRIBED).subscription
    add_subscription(engine, "b@example.org", EVERYTHING, now=SUBSCRIBED)
    load_week1(engine, world)
    assert _claim(engine, first.id, SUBSCRIBED) is None  # a round elsewhere is sending this one
    sink = MailSink()
    controller = start_smtp(sink)
    try:
        settings = load_settings(
            smtp_host="127.0.0.1", smtp_port=controller.port, mail_from="d@tracker.example"
        )
        with SmtpSender(settings) as sender:
            report = run_digests(engine, settings, sender)
    finally:
        controller.stop()
    assert [outcome.status for outcome in report.outcomes] == ["skipped", "sent"]
    assert [str(message["To"]) for message in sink.messages] == ["b@example.org"]


# --- resuming interrupted work ------------------------------------------------------------------------


def test_an_interrupted_first_load_stays_baseline_on_the_rerun(fake_ctgov: FakeCtgov, engine: Engine) -> None:
    fake_ctgov.set_studies(SAMPLE)
    fake_ctgov.inject(Fault("delay", seconds=0), *[Fault("500")] * 4)  # page 2 never comes

    with pytest.raises(Exception, match="500"):
        run_sync(engine, sync_settings(fake_ctgov, str(engine.url), max_retries=3), backoff_base=0.01)
    assert 0 < count_rows(engine, Study) < served(fake_ctgov)

    result = run_sync(engine, sync_settings(fake_ctgov, str(engine.url)), backoff_base=0.01)

    assert result.outcome == "success"
    assert count_rows(engine, ChangeEvent, ChangeEvent.baseline.is_(False)) == 0
    assert count_rows(engine, ChangeEvent, ChangeEvent.kind == "new") == served(fake_ctgov)
    # Once a full pass completed, what follows is news.
    fake_ctgov.upsert_study(make_study("NCT09900001", last_update="2025-09-26"))
    run_sync(engine, sync_settings(fake_ctgov, str(engine.url)), backoff_base=0.01)
    assert count_rows(engine, ChangeEvent, ChangeEvent.baseline.is_(False)) == 1


def test_a_restarted_walk_lands_the_fresher_copies_and_sees_a_removal(
    fake_ctgov: FakeCtgov, engine: Engine
) -> None:
    def many(status: str) -> list[dict[str, Any]]:
        return [make_study(f"NCT0980{i:04d}", status=status) for i in range(30)]

    fake_ctgov.set_studies(many("RECRUITING"))
    run_sync(engine, sync_settings(fake_ctgov, str(engine.url), page_size=10), full=True, backoff_base=0.01)

    # The registry refreshes mid-walk: page 1 was served, then tokens die and the data has moved on.
    fresher = many("ACTIVE_NOT_RECRUITING")[:-1]  # the last study left the query
    fake_ctgov.inject(Fault("expired_token", status=410))
    original_land = sync._land_page

    def refresh_after_first_page(*args: Any, **kwargs: Any) -> None:
        original_land(*args, **kwargs)
        if args[4].pages == 1:
            fake_ctgov.set_studies(fresher)

    sync._land_page = refresh_after_first_page  # type: ignore[assignment]
    try:
        result = run_sync(
            engine, sync_settings(fake_ctgov, str(engine.url), page_size=10), full=True, backoff_base=0.01
        )
    finally:
        sync._land_page = original_land  # type: ignore[assignment]

    assert (result.outcome, result.restarts) == ("success", 1)
    statuses = {
        study.registration_id: study.overall_status
        for study in rows(engine, Study, Study.removed_at.is_(None))
    }
    assert len(statuses) == 29 and set(statuses.values()) == {"ACTIVE_NOT_RECRUITING"}
    assert result.removed == ["NCT09800029"]


def test_a_disk_full_during_classification_fails_the_run(fake_ctgov: FakeCtgov, sqlite_url: str) -> None:
    from tracker.db.migrate import upgrade_to_head

    engine = make_engine(sqlite_url)
    upgrade_to_head(engine)
    # Landed unclassified, so the sync's end-of-run pass (not the per-page one) has labels to write.
    import_studies(engine, FIXTURES / "ms_sample.jsonl", classify=False)
    fake_ctgov.set_studies(SAMPLE)
    real_classify = sync.classify_landed

    def classify_on_a_full_disk(engine: Engine, progress: Any = None) -> int:
        # SQLite's own "database or disk is full": the file may not grow by a single page.
        with engine.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
        event.listen(
            engine, "connect", lambda dbapi, _record: dbapi.execute(f"PRAGMA max_page_count = {pages}")
        )
        engine.dispose()
        return real_classify(engine, progress)

    sync.classify_landed = classify_on_a_full_disk  # type: ignore[assignment]
    try:
        with pytest.raises(DatabaseError, match="full"):
            run_sync(engine, sync_settings(fake_ctgov, sqlite_url), backoff_base=0.01)
    finally:
        sync.classify_landed = real_classify  # type: ignore[assignment]
    free = make_engine(sqlite_url)
    _import, run = rows(free, SyncRun)
    assert run.outcome == "failed" and run.error.startswith("classification failed: ")
    assert store.watermark(free) is None
    assert count_rows(free, Study) == len(SAMPLE)  # what landed is kept
    free.dispose()
    engine.dispose()
