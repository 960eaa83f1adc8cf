"""Registry details (outcomes, arms, eligibility, design, secondary IDs): stored, refilled on upgrade,
diffed (a changed primary outcome is its own change kind), exported as CSV columns and as a workbook."""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import datetime
from pathlib import Path

import openpyxl
from alembic import command
from click.testing import CliRunner, Result
from sqlalchemy import Engine, insert, select
from support import count_rows

from tracker import query, store
from tracker.cli import main
from tracker.db.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from tracker.db.models import ArmGroup, ChangeEvent, OutcomeMeasure, SecondaryId, Study
from tracker.db.session import make_engine, transaction
from tracker.digest.build import build_digest
from tracker.export import EXPORT_COLUMNS, EXPORT_HEADER, glossary_rows

FIXTURES = Path(__file__).parent / "fixtures/ctgov/studies"
STUDY = json.loads((FIXTURES / "NCT00763412.json").read_text())  # 3 primary, 6 secondary, 2 arms, 1 sec. ID
OTHER = json.loads((FIXTURES / "NCT03064438.json").read_text())


def load(engine: Engine, studies: list, stamp: str = "2025-09-25T09:00:00") -> store.PageOutcome:  # type: ignore[type-arg]
    run = store.begin_run(engine, mode="full", query="q", source="test", data_timestamp=stamp)
    outcome = store.ingest_page(engine, run, studies)
    store.finish_run(engine, run, outcome="success")
    return outcome


def edited(raw: dict, edit) -> dict:  # type: ignore[no-untyped-def, type-arg]
    copied = copy.deepcopy(raw)
    edit(copied["protocolSection"])
    copied["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2030-01-01"}
    return copied


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--database-url", url, *args], catch_exceptions=False)


def test_details_are_stored(engine: Engine) -> None:
    load(engine, [STUDY, OTHER])
    with transaction(engine) as session:
        study = session.get(Study, "NCT00763412")
        assert (study.allocation, study.intervention_model, study.masking, study.primary_purpose) == (
            "RANDOMIZED",
            "PARALLEL",
            "QUADRUPLE",
            "OTHER",
        )
        assert (study.minimum_age, study.maximum_age) == ("12 Years", "24 Years")
        assert (study.minimum_age_years, study.maximum_age_years) == (12.0, 24.0)
        assert (study.sex, study.healthy_volunteers, study.std_ages) == ("ALL", False, ["CHILD", "ADULT"])
        criteria = STUDY["protocolSection"]["eligibilityModule"]["eligibilityCriteria"].strip()
        assert study.eligibility_criteria == criteria
        assert study.brief_summary == STUDY["protocolSection"]["descriptionModule"]["briefSummary"].strip()
        outcomes = session.execute(
            select(
                OutcomeMeasure.role,
                OutcomeMeasure.position,
                OutcomeMeasure.measure,
                OutcomeMeasure.time_frame,
            )
            .where(OutcomeMeasure.registration_id == "NCT00763412")
            .order_by(OutcomeMeasure.id)
        ).all()
        arms = session.execute(
            select(ArmGroup.label, ArmGroup.type, ArmGroup.intervention_names)
            .where(ArmGroup.registration_id == "NCT00763412")
            .order_by(ArmGroup.position)
        ).all()
        ids = session.execute(select(SecondaryId.identifier, SecondaryId.type)).all()
    assert [tuple(row) for row in outcomes[:3]] == [
        ("primary", 0, "BMI", "2 year/end of study"),
        ("primary", 1, "Body Composition", "2 year/end of study"),
        ("primary", 2, "CRP", "2 year/end of study"),
    ]
    assert [row.role for row in outcomes[3:]] == ["secondary"] * 6
    assert [row.position for row in outcomes[3:]] == list(range(6))
    assert [tuple(row) for row in arms] == [
        ("1 Placebo", "PLACEBO_COMPARATOR", ["Drug: placebo"]),
        ("2. repaglinide", "EXPERIMENTAL", ["Drug: repaglinide"]),
    ]
    assert [tuple(row) for row in ids] == [("P60DK020579", "NIH")]


def test_changed_primary_outcome_is_its_own_event(engine: Engine) -> None:
    load(engine, [STUDY])

    def switch(protocol: dict) -> None:  # type: ignore[type-arg]
        protocol["outcomesModule"]["primaryOutcomes"][0]["measure"] = "Fasting glucose"
        protocol["eligibilityModule"]["maximumAge"] = "30 Years"

    load(engine, [edited(STUDY, switch)], stamp="2030-01-02T09:00:00")
    with transaction(engine) as session:
        events = session.execute(
            select(ChangeEvent.kind, ChangeEvent.field, ChangeEvent.old_value, ChangeEvent.new_value)
            .where(ChangeEvent.kind != "new")
            .order_by(ChangeEvent.id)
        ).all()
        stored = session.scalars(
            select(OutcomeMeasure.measure).where(OutcomeMeasure.role == "primary").order_by(OutcomeMeasure.id)
        ).all()
    assert [tuple(e) for e in events] == [
        (
            "primary_outcome",
            "primary_outcomes",
            "BMI | 2 year/end of study\nBody Composition | 2 year/end of study\nCRP | 2 year/end of study",
            "Fasting glucose | 2 year/end of study\nBody Composition | 2 year/end of study\n"
            "CRP | 2 year/end of study",
        ),
        ("other", "maximum_age", "24 Years", "30 Years"),
    ]
    assert stored == ["Fasting glucose", "Body Composition", "CRP"]  # the children were replaced


def test_an_unrelated_edit_reports_no_detail_change(engine: Engine) -> None:
    load(engine, [STUDY])

    def stop(protocol: dict) -> None:  # type: ignore[type-arg]
        protocol["statusModule"]["overallStatus"] = "TERMINATED"

    load(engine, [edited(STUDY, stop)], stamp="2030-01-02T09:00:00")
    kinds = [
        (e.kind, e.field)
        for e in store_events(engine)
        if e.kind != "new"  # the edit also moved lastUpdatePostDate, which no event names
    ]
    assert kinds == [("status", "overall_status")]


def store_events(engine: Engine) -> list:  # type: ignore[type-arg]
    with transaction(engine) as session:
        return list(session.execute(select(ChangeEvent.kind, ChangeEvent.field).order_by(ChangeEvent.id)))


def test_upgrade_from_0001_fills_details_of_stored_studies(db_url: str) -> None:
    engine = make_engine(db_url)
    command.upgrade(alembic_config(engine), "0001")
    now = datetime(2025, 9, 25, 9)
    study_0001 = Study.__table__.c  # columns that exist at 0001 only
    row = {
        "registration_id": "NCT00763412",
        "brief_title": "old row",
        "phases": ["NA"],
        "has_results": False,
        "content_hash": "x",
        "raw": STUDY,
        "first_seen_at": now,
        "last_seen_at": now,
    }
    with engine.begin() as connection:  # only the columns named here: the 0001 table has no others
        connection.execute(insert(Study.__table__).values({study_0001[k]: v for k, v in row.items()}))
    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()
    assert count_rows(engine, OutcomeMeasure, OutcomeMeasure.registration_id == "NCT00763412") == 9
    assert count_rows(engine, ArmGroup) == 2
    assert count_rows(engine, SecondaryId) == 1
    with transaction(engine) as session:
        study = session.get(Study, "NCT00763412")
        assert (study.masking, study.maximum_age_years, study.first_seen_at) == ("QUADRUPLE", 24.0, now)
    assert count_rows(engine, ChangeEvent) == 0  # a refill is not news
    command.downgrade(alembic_config(engine), "0001")  # and back: the studies survive
    assert count_rows(engine, Study) == 1
    engine.dispose()


def test_digest_has_a_primary_outcome_section() -> None:
    trial = {"registration_id": "NCT00763412", "brief_title": "A trial", "overall_status": "RECRUITING"}
    event = {
        "id": 7,
        "registration_id": "NCT00763412",
        "detected_at": datetime(2030, 1, 2),
        "kind": "primary_outcome",
        "field": "primary_outcomes",
        "old_value": "BMI | 2 years\nCRP | 2 years",
        "new_value": "Fasting glucose | 2 years",
        "baseline": False,
    }
    criteria = {**event, "id": 8, "kind": "other", "field": "eligibility_criteria", "old_value": "a"}
    digest = build_digest(
        events=[event, criteria],
        trials={"NCT00763412": trial},
        recipient="a@example.org",
        period_start=datetime(2030, 1, 1),
        period_end=datetime(2030, 1, 8),
        filter_description="all",
        max_per_section=10,
    )
    sections = {section.title: section for section in digest.sections}
    assert list(sections) == ["Primary outcome changed", "Other changes"]
    assert sections["Primary outcome changed"].items[0].changes == (
        "BMI | 2 years / CRP | 2 years → Fasting glucose | 2 years",
    )
    assert sections["Other changes"].items[0].changes == ("Eligibility criteria changed",)


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    return {row["registration_id"]: row for row in csv.DictReader(io.StringIO(path.read_text("utf-8")))}


def test_csv_carries_the_details(engine: Engine, db_url: str, tmp_path: Path) -> None:
    load(engine, [STUDY, OTHER])
    out = tmp_path / "t.csv"
    result = invoke(db_url, "export", "--out", str(out), "--relevance", "all")
    assert result.exit_code == 0, result.output
    row = _csv_rows(out)["NCT00763412"]
    assert row["official_title"] == STUDY["protocolSection"]["identificationModule"]["officialTitle"]
    assert (row["allocation"], row["intervention_model"], row["masking"], row["primary_purpose"]) == (
        "RANDOMIZED",
        "PARALLEL",
        "QUADRUPLE",
        "OTHER",
    )
    assert row["arms"] == "1 Placebo (PLACEBO_COMPARATOR); 2. repaglinide (EXPERIMENTAL)"
    assert row["intervention_details"] == "placebo (DRUG; placebo); repaglinide (DRUG; experimental)"
    assert row["primary_outcomes"] == (
        "BMI | 2 year/end of study; Body Composition | 2 year/end of study; CRP | 2 year/end of study"
    )
    assert len(row["secondary_outcomes"].split("; ")) == 6
    assert (row["minimum_age"], row["maximum_age"]) == ("12 Years", "24 Years")
    assert (row["minimum_age_years"], row["maximum_age_years"]) == ("12", "24")
    assert (row["sex"], row["healthy_volunteers"], row["std_ages"]) == ("ALL", "false", "CHILD; ADULT")
    assert row["collaborators"].split("; ")[2] == "Novo Nordisk A/S"
    assert (row["site_count"], row["secondary_ids"]) == ("1", "P60DK020579 (NIH)")
    other = _csv_rows(out)["NCT03064438"]
    assert (other["maximum_age"], other["secondary_ids"], other["site_count"]) == ("", "", "2")
    sidecar = json.loads((tmp_path / "t.csv.json").read_text())
    assert sidecar["columns"] == list(EXPORT_HEADER)


def test_workbook_cell_by_cell(engine: Engine, db_url: str, tmp_path: Path) -> None:
    hostile = edited(STUDY, lambda p: p["outcomesModule"]["primaryOutcomes"][0].update(measure="=1+1\x07"))
    load(engine, [hostile, OTHER])
    out, xlsx = tmp_path / "t.csv", tmp_path / "t.xlsx"
    result = invoke(db_url, "export", "--out", str(out), "--xlsx", str(xlsx), "--relevance", "all")
    assert result.exit_code == 0, result.output
    assert f"to {xlsx} (workbook)" in result.output
    book = openpyxl.load_workbook(xlsx)
    assert book.sheetnames == ["Trials", "Outcomes", "Arms", "Glossary", "Provenance"]

    trials = list(book["Trials"].iter_rows(values_only=True))
    assert trials[0] == EXPORT_HEADER
    csv_rows = list(csv.reader(io.StringIO(out.read_text("utf-8"))))
    assert len(trials) == len(csv_rows) == 3
    for sheet_row, csv_row in zip(trials[1:], csv_rows[1:], strict=True):
        for name, cell, text in zip(EXPORT_HEADER, sheet_row, csv_row, strict=True):
            if isinstance(cell, (int, float)):
                assert str(cell if not float(cell).is_integer() else int(cell)) == text, name
            elif text.startswith("'="):  # the CSV neutralises formulas; the workbook stores text as text
                assert cell == text[1:].replace("\x07", ""), name  # and cannot hold control characters
            else:
                assert (cell or "") == text, name
    by_name = dict(zip(EXPORT_HEADER, trials[1], strict=True))
    assert by_name["registration_id"] == "NCT00763412"
    assert by_name["site_count"] == 1 and by_name["maximum_age_years"] == 24
    assert by_name["primary_outcomes"].startswith("=1+1 | 2 year/end of study; Body Composition")
    assert book["Trials"]["A2"].data_type == "s"

    outcomes = list(book["Outcomes"].iter_rows(values_only=True))
    assert outcomes[0] == ("registration_id", "role", "order", "measure", "time_frame", "description")
    assert outcomes[1][:5] == ("NCT00763412", "primary", 1, "=1+1", "2 year/end of study")
    assert book["Outcomes"]["D2"].data_type == "s"  # kept as text, never a formula
    assert [row[1] for row in outcomes[1:10]] == ["primary"] * 3 + ["secondary"] * 6
    assert outcomes[10][:3] == ("NCT03064438", "primary", 1)
    arms = list(book["Arms"].iter_rows(values_only=True))
    assert arms[1][:5] == ("NCT00763412", 1, "1 Placebo", "PLACEBO_COMPARATOR", "Drug: placebo")
    assert len(arms) == 1 + 2 + 2

    glossary = list(book["Glossary"].iter_rows(values_only=True))[1:]
    assert glossary == [tuple(row) for row in glossary_rows()]
    documented = {name for sheet, name, _ in glossary if sheet == "Trials"}
    assert documented == {column.name for column in EXPORT_COLUMNS}
    assert any(sheet == "mechanism key" for sheet, _, _ in glossary)

    provenance = dict(list(book["Provenance"].iter_rows(values_only=True))[1:])
    sidecar = json.loads((tmp_path / "t.csv.json").read_text())
    assert provenance["row_count"] == "2" and sidecar["row_count"] == 2
    assert json.loads(provenance["filters"]) == sidecar["filters"]
    assert provenance["data_timestamp"] == sidecar["data_timestamp"] == "2025-09-25T09:00:00"


def test_workbook_alone_and_nothing_to_write(engine: Engine, db_url: str, tmp_path: Path) -> None:
    load(engine, [STUDY])
    xlsx = tmp_path / "only.xlsx"
    assert invoke(db_url, "export", "--xlsx", str(xlsx), "--relevance", "all").exit_code == 0
    assert openpyxl.load_workbook(xlsx)["Trials"].max_row == 2
    assert not list(tmp_path.glob("*.json"))
    nothing = invoke(db_url, "export")
    assert nothing.exit_code == 2
    assert "give --out FILE.csv, --xlsx FILE.xlsx or both" in nothing.output
    missing = invoke(db_url, "export", "--xlsx", str(tmp_path / "no/such.xlsx"))
    assert missing.exit_code == 2
    assert "folder" in missing.output and "does not exist" in missing.output


def test_detail_of_a_study_has_every_part(engine: Engine) -> None:
    load(engine, [STUDY])
    detail = query.study_detail(engine, "NCT00763412")
    assert detail is not None
    assert [o["measure"] for o in detail["outcomes"] if o["role"] == "primary"] == [
        "BMI",
        "Body Composition",
        "CRP",
    ]
    assert [a["label"] for a in detail["arm_groups"]] == ["1 Placebo", "2. repaglinide"]
    assert detail["secondary_ids"] == [{"identifier": "P60DK020579", "type": "NIH", "domain": None}]
    assert (detail["masking"], detail["std_ages"], detail["healthy_volunteers"]) == (
        "QUADRUPLE",
        ["CHILD", "ADULT"],
        False,
    )


def test_detail_tables_hold_text_only() -> None:
    from dashboard import trial_view

    sparse = {
        "interventions": [
            {"name": "X", "type": None, "arm_role": None, "other_names": [], "description": None}
        ],
        "arm_groups": [{"label": "A", "type": None, "intervention_names": [], "description": None}],
        "outcomes": [{"role": "primary", "position": 0, "measure": "EDSS", "time_frame": None}],
        "secondary_ids": [{"identifier": "2020-1", "type": None, "domain": None}],
        "minimum_age": "6 Months",
        "minimum_age_years": 0.5,
        "healthy_volunteers": None,
    }
    tables = [
        trial_view.intervention_rows(sparse),
        trial_view.arm_rows(sparse),
        trial_view.outcome_rows(sparse),
        trial_view.secondary_id_rows(sparse),
        trial_view.eligibility_rows(sparse),
        trial_view.design_rows(sparse),
    ]
    cells = [cell for table in tables for cell in table.to_numpy().ravel()]
    assert all(isinstance(cell, str) for cell in cells)
    assert not {"None", "nan", "NaN", "[]"} & set(cells)
    eligibility = dict(tables[4].to_numpy().tolist())
    assert eligibility["Minimum age"] == "6 Months (0.5 years)"
    assert eligibility["Healthy volunteers"] == "not stated"
    assert tables[2].iloc[0].tolist() == ["Primary", "1", "EDSS", "", ""]
    assert trial_view.intervention_rows({}).columns.tolist()[0] == "Intervention"
