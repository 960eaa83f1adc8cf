"""CSV export: real studies through the store, the CLI, Python's csv module on the way back."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES
from digest_scenario import SAMPLE, load, registration_id, status_module
from sqlalchemy import Engine

from tracker import query, store
from tracker.classify.store import classify_pending, classify_records, set_override
from tracker.cli import main
from tracker.export import (
    EXPORT_COLUMNS,
    EXPORT_HEADER,
    OUTCOME_SHEET_COLUMNS,
    format_cell,
    frame_to_csv,
    frame_to_xlsx,
    glossary_rows,
    neutralise_cell,
    provenance_for,
    write_export,
)
from tracker.filters import TrialFilter
from tracker.taxonomy import load_taxonomy

STAMP = "2025-09-25T09:00:05"
GOLD_STUDIES = FIXTURES / "gold_dev_studies.jsonl"
# A relapsing-MS trial: 2 primary, 3 secondary and 1 other outcome measure, an EDSS range, treatment-naive.
ENDPOINT_STUDY = json.loads((FIXTURES / "ctgov/handmade/endpoints_and_facets.json").read_text())
ENDPOINT_NCT = "NCT09000002"
HOSTILE = {
    "briefTitle": '=HYPERLINK("http://evil.example","click")',
    "acronym": "+SUM(A1:A2)",
    "whyStopped": "-2+3",
}


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--database-url", url, *args], catch_exceptions=False)


def hostile_copy(raw: dict) -> dict:  # type: ignore[type-arg]
    edited = copy.deepcopy(raw)
    ident = edited["protocolSection"]["identificationModule"]
    ident["briefTitle"] = HOSTILE["briefTitle"]
    ident["acronym"] = HOSTILE["acronym"]
    status_module(edited)["whyStopped"] = HOSTILE["whyStopped"]
    sponsor = edited["protocolSection"].setdefault("sponsorCollaboratorsModule", {})
    sponsor["leadSponsor"] = {"name": "@Evil Pharma\tInc", "class": "INDUSTRY"}
    return edited


def read_csv(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    with path.open(newline="", encoding=encoding) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    studies = [hostile_copy(SAMPLE[0]), *SAMPLE[1:]]
    load(engine, studies, seen_at=datetime(2025, 9, 25, 10), stamp=STAMP)
    return engine


LOADED_AFTER_EXPORT = """
import sys
from tracker.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print(" ".join(name for name in ("pandas", "numpy") if name in sys.modules) or "-", file=sys.stderr)
"""


def test_a_csv_export_streams_rows_without_loading_pandas(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    # The CSV path folds rows and details from plain query results: no frame library in the process, so
    # its memory is a batch of rows however many trials the store holds.
    out = tmp_path / "trials.csv"
    process = subprocess.run(
        [sys.executable, "-c", LOADED_AFTER_EXPORT, "--database-url", db_url, "export", "--out", str(out),
         "--relevance", "all"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert process.stderr.splitlines()[-1] == "-"
    assert len(read_csv(out)) == len(query.select_trials(loaded, TrialFilter(relevance=()))) > 0


def test_export_round_trips_through_csv(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "trials.csv"

    result = invoke(
        db_url, "export", "--out", str(out), "--relevance", "all", "--status", "RECRUITING,COMPLETED"
    )

    assert result.exit_code == 0, result.output
    expected = query.select_trials(loaded, TrialFilter(relevance=(), statuses=("RECRUITING", "COMPLETED")))
    assert result.output.strip() == f"Wrote {len(expected)} trials to {out} (provenance: {out}.json)."
    rows = read_csv(out)
    assert list(rows[0]) == list(EXPORT_HEADER)
    assert [row["trial_id"] for row in rows] == list(expected["registration_id"])
    assert {row["overall_status"] for row in rows} == {"RECRUITING", "COMPLETED"}
    by_id = {row["trial_id"]: row for row in rows}
    for raw in SAMPLE[1:]:
        if registration_id(raw) not in by_id:
            continue
        row, protocol = by_id[registration_id(raw)], raw["protocolSection"]
        assert row["url"] == f"https://clinicaltrials.gov/study/{registration_id(raw)}"
        assert row["brief_title"] == protocol["identificationModule"]["briefTitle"]
        assert row["phases"] == "; ".join(protocol.get("designModule", {}).get("phases", []))
        assert row["conditions"] == "; ".join(dict.fromkeys(protocol["conditionsModule"]["conditions"]))
        start = protocol["statusModule"].get("startDateStruct", {})
        assert (row["start_date"], row["start_date_type"]) == (start.get("date", ""), start.get("type", ""))
        assert row["has_results"] == ("true" if raw.get("hasResults") else "false")
        assert row["first_posted"] == protocol["statusModule"]["studyFirstPostDateStruct"]["date"]
    assert out.read_bytes()[:3] != b"\xef\xbb\xbf"  # no BOM without --excel
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600


def test_dashboard_bytes_equal_the_file(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    assert invoke(db_url, "export", "--out", str(out), "--relevance", "all").exit_code == 0
    frame = query.select_trials(loaded, TrialFilter(relevance=()))
    assert out.read_bytes() == frame_to_csv(query.with_details(frame, query.load_detail_tables(loaded)))
    assert len(read_csv(out)) == len(SAMPLE)


def test_cells_that_look_like_formulas_are_neutralised(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "trials.csv"
    assert invoke(db_url, "export", "--out", str(out), "--relevance", "all").exit_code == 0

    [row] = [row for row in read_csv(out) if row["trial_id"] == registration_id(SAMPLE[0])]

    assert row["brief_title"] == "'" + HOSTILE["briefTitle"]
    assert row["acronym"] == "'" + HOSTILE["acronym"]
    assert row["why_stopped"] == "'-2+3"
    assert row["lead_sponsor"] == "'@Evil Pharma\tInc"
    for cell in (value for r in read_csv(out) for value in r.values()):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        ("'quoted", "'quoted"),
    ],
)
def test_neutralise_cell(text: str, expected: str) -> None:
    assert neutralise_cell(text) == expected


def test_cell_formats() -> None:
    assert format_cell(("PHASE2", "PHASE3")) == "PHASE2; PHASE3"
    assert format_cell(()) == ""
    assert format_cell(None) == "" and format_cell(float("nan")) == "" and format_cell(pd.NaT) == ""
    assert format_cell(True) == "true" and format_cell(False) == "false"
    assert format_cell(pd.Timestamp("2025-06-01")) == "2025-06-01"
    assert format_cell(120.0) == "120"
    assert format_cell("Ça va; très bien") == "Ça va; très bien"


def test_excel_flag_adds_a_bom_and_keeps_utf8(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "excel.csv"
    assert invoke(db_url, "export", "--out", str(out), "--relevance", "all", "--excel").exit_code == 0
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = read_csv(out, encoding="utf-8-sig")
    assert list(rows[0])[0] == "trial_id"
    assert len(rows) == len(SAMPLE)
    text = data.decode("utf-8-sig")
    assert "\r\n" in text  # RFC 4180 line ends


def test_provenance_sidecar(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "ms.csv"
    result = invoke(db_url, "export", "--out", str(out), "--relevance", "all", "--phase", "PHASE3")
    assert result.exit_code == 0, result.output

    sidecar = json.loads((tmp_path / "ms.csv.json").read_text())

    run = query.latest_run(loaded)
    assert run is not None
    assert sidecar["data_timestamp"] == STAMP
    assert sidecar["last_sync_run"]["id"] == run["id"]
    assert sidecar["last_sync_run"]["outcome"] == "success"
    assert sidecar["last_sync_run"]["finished"] == run["finished"] is not None
    assert sidecar["filters"] == {"relevance": [], "phases": ["PHASE3"]}
    assert sidecar["filter_description"] == "relevance any; phase PHASE3"
    assert sidecar["taxonomy_version"] == load_taxonomy().version
    assert sidecar["row_count"] == len(read_csv(out)) > 0
    assert sidecar["columns"] == list(EXPORT_HEADER)
    assert datetime.fromisoformat(sidecar["exported_at"].rstrip("Z"))


def test_empty_database_exports_a_header(engine: Engine, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "empty.csv"
    assert invoke(db_url, "export", "--out", str(out)).exit_code == 0
    assert out.read_bytes() == (",".join(EXPORT_HEADER) + "\r\n").encode()
    sidecar = json.loads((tmp_path / "empty.csv.json").read_text())
    assert (
        sidecar["row_count"] == 0 and sidecar["last_sync_run"] is None and sidecar["data_timestamp"] is None
    )


def test_user_errors_are_one_line(sqlite_url: str, tmp_path: Path) -> None:
    assert invoke(sqlite_url, "db", "upgrade").exit_code == 0  # export only reads: the schema must exist
    missing = invoke(sqlite_url, "export", "--out", str(tmp_path / "no" / "such" / "dir.csv"))
    assert missing.exit_code == 2
    assert missing.stderr.startswith("Error: cannot write") and "does not exist" in missing.stderr
    bad = invoke(sqlite_url, "export", "--out", str(tmp_path / "x.csv"), "--phase", "PHASE9")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: unknown phase value(s): PHASE9")
    assert not (tmp_path / "x.csv").exists()
    folder = invoke(sqlite_url, "export", "--out", str(tmp_path))
    assert folder.exit_code == 2 and "is a directory" in folder.stderr
    (tmp_path / "y.csv.json").mkdir()  # the sidecar's name is taken: the message names the sidecar
    sidecar = invoke(sqlite_url, "export", "--out", str(tmp_path / "y.csv"))
    assert sidecar.exit_code == 2
    assert sidecar.stderr.strip() == f"Error: cannot write {tmp_path / 'y.csv.json'}: Is a directory"


def test_every_column_is_documented() -> None:
    assert len(set(EXPORT_HEADER)) == len(EXPORT_HEADER)
    assert all(column.description for column in EXPORT_COLUMNS)
    # mechanism labels follow the taxonomy
    taxonomy = load_taxonomy()
    first = taxonomy.mechanisms[0]
    frame = pd.DataFrame([{"registration_id": "NCT00000001", "mechanisms": (first.key,), "phenotypes": ()}])
    rows = list(csv.reader(io.StringIO(frame_to_csv(frame).decode())))
    assert rows[1][EXPORT_HEADER.index("mechanism_labels")] == first.label


def comparison_study() -> dict:  # type: ignore[type-arg]
    """A record without arm groups whose title names the comparator (as the 2025 snapshot's records are)."""
    return {
        "protocolSection": {
            "identificationModule": {
                "nctId": "NCT09000001",
                "briefTitle": "Fenebrutinib Compared With Ocrelizumab in Primary Progressive MS",
            },
            "statusModule": {"overallStatus": "RECRUITING"},
            "conditionsModule": {"conditions": ["Primary Progressive Multiple Sclerosis"]},
            "designModule": {"studyType": "INTERVENTIONAL", "phases": ["PHASE3"]},
            "armsInterventionsModule": {
                "interventions": [
                    {"type": "DRUG", "name": "Fenebrutinib"},
                    {"type": "DRUG", "name": "Ocrelizumab"},
                ]
            },
        }
    }


def test_comparators_are_exported_only_with_the_flag(engine: Engine, db_url: str, tmp_path: Path) -> None:
    load(engine, [comparison_study()], seen_at=datetime(2025, 9, 25, 10), stamp=STAMP)
    assert classify_pending(engine) == 1
    default, counted = tmp_path / "default.csv", tmp_path / "counted.csv"

    assert invoke(db_url, "export", "--out", str(default)).exit_code == 0
    assert invoke(db_url, "export", "--out", str(counted), "--include-comparators").exit_code == 0

    (row,) = read_csv(default)
    assert (row["mechanisms"], row["comparator_mechanisms"]) == ("btk_inhibitor", "anti_cd20")
    assert row["mechanism_roles"] == "anti_cd20:comparator; btk_inhibitor:investigational"
    (row,) = read_csv(counted)
    assert (row["mechanisms"], row["comparator_mechanisms"]) == ("anti_cd20; btk_inhibitor", "anti_cd20")
    assert json.loads((tmp_path / "counted.csv.json").read_text())["filters"] == {"include_comparators": True}
    anti_cd20 = tmp_path / "anti_cd20.csv"
    assert invoke(db_url, "export", "--out", str(anti_cd20), "--mechanism", "anti_cd20").exit_code == 0
    assert read_csv(anti_cd20) == []
    result = invoke(
        db_url, "export", "--out", str(anti_cd20), "--mechanism", "anti_cd20", "--include-comparators"
    )
    assert result.exit_code == 0 and len(read_csv(anti_cd20)) == 1


@pytest.fixture
def endpoint_trials(engine: Engine) -> Engine:
    """The endpoint study and a comparison study without outcome measures, classified."""
    load(engine, [ENDPOINT_STUDY, comparison_study()], seen_at=datetime(2025, 9, 25, 10), stamp=STAMP)
    assert classify_pending(engine) == 2
    return engine


def test_endpoint_keys_and_eligibility_facets_are_columns(
    endpoint_trials: Engine, db_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "trials.csv"
    assert invoke(db_url, "export", "--out", str(out)).exit_code == 0
    header = out.read_text("utf-8").splitlines()[0].split(",")
    assert header == list(EXPORT_HEADER)
    after_phenotypes = header.index("phenotype_labels") + 1
    assert header[after_phenotypes : after_phenotypes + 2] == ["endpoint_primary", "endpoint_secondary"]
    after_ages = header.index("std_ages") + 1
    assert header[after_ages : after_ages + 4] == [
        "edss_min",
        "edss_max",
        "prior_treatment",
        "excluded_therapies",
    ]
    rows = {row["trial_id"]: row for row in read_csv(out)}
    row = rows[ENDPOINT_NCT]
    # Keys in taxonomy order per role; the "other" outcome (Cmax) is in neither set.
    assert (row["endpoint_primary"], row["endpoint_secondary"]) == (
        "disability_progression; relapse",
        "mri_lesions; fluid_biomarker; safety",
    )
    assert (row["edss_min"], row["edss_max"]) == ("2", "5.5")
    assert (row["prior_treatment"], row["excluded_therapies"]) == (
        "treatment_naive",
        "natalizumab; ocrelizumab",
    )
    assert (row["minimum_age_years"], row["maximum_age_years"], row["sex"], row["healthy_volunteers"]) == (
        "18",
        "55",
        "ALL",
        "false",
    )
    empty = rows["NCT09000001"]  # no outcome measures, no criteria
    assert [empty[name] for name in header[after_ages : after_ages + 4]] == ["", "", "", ""]
    assert (empty["endpoint_primary"], empty["endpoint_secondary"]) == ("", "")

    # A manual override replaces one role (the other stays automatic) and one facet.
    set_override(
        endpoint_trials,
        ENDPOINT_NCT,
        endpoints_primary=["neda", "relapse"],
        eligibility={"edss_max": ["6.5"]},
        note="the protocol's primary endpoint is NEDA-3",
    )
    assert invoke(db_url, "export", "--out", str(out)).exit_code == 0
    row = {row["trial_id"]: row for row in read_csv(out)}[ENDPOINT_NCT]
    assert (row["endpoint_primary"], row["endpoint_secondary"]) == (
        "neda; relapse",
        "mri_lesions; fluid_biomarker; safety",
    )
    assert (row["edss_min"], row["edss_max"], row["manual_override"]) == ("2", "6.5", "true")
    # The dashboard's download (the frame path) gives the same bytes.
    frame = query.select_trials(endpoint_trials, TrialFilter())
    assert out.read_bytes() == frame_to_csv(
        query.with_details(frame, query.load_detail_tables(endpoint_trials))
    )


def test_primary_endpoint_flag_filters_by_family(
    endpoint_trials: Engine, db_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "trials.csv"

    def exported(*flags: str) -> list[str]:
        result = invoke(db_url, "export", "--out", str(out), *flags)
        assert result.exit_code == 0, result.output
        return [row["trial_id"] for row in read_csv(out)]

    assert exported() == ["NCT09000001", ENDPOINT_NCT]
    assert exported("--primary-endpoint", "clinical_disability") == [ENDPOINT_NCT]
    assert exported("--primary-endpoint", "process", "--primary-endpoint", "Clinical disability") == [
        ENDPOINT_NCT
    ]
    assert exported("--primary-endpoint", "imaging,biomarker") == []  # MRI and NfL are secondary here
    sidecar = json.loads((tmp_path / "trials.csv.json").read_text())
    assert sidecar["filters"] == {"primary_endpoint_families": ["imaging", "biomarker"]}
    assert sidecar["filter_description"] == "primary endpoint Imaging, Biomarker"

    bad = invoke(db_url, "export", "--out", str(tmp_path / "bad.csv"), "--primary-endpoint", "mri")
    assert bad.exit_code == 2
    assert bad.stderr == (
        "Error: unknown primary endpoint family value(s): mri; valid: clinical_disability, imaging, "
        "symptoms_and_patient_reported, biomarker, composite, safety_and_pharmacology, process, other\n"
    )
    assert not (tmp_path / "bad.csv").exists()


def test_workbook_outcomes_carry_their_endpoint_keys(
    endpoint_trials: Engine, db_url: str, tmp_path: Path
) -> None:
    xlsx = tmp_path / "trials.xlsx"
    assert invoke(db_url, "export", "--xlsx", str(xlsx)).exit_code == 0
    book = openpyxl.load_workbook(xlsx)
    sheet = book["Outcomes"]
    header = [cell.value for cell in sheet[1]]
    assert header == [name for name, _ in OUTCOME_SHEET_COLUMNS]
    assert header[-1] == "endpoints"
    cells = [
        (row[1].value, row[2].value, row[3].value, row[6].value)
        for row in sheet.iter_rows(min_row=2)
        if row[0].value == ENDPOINT_NCT
    ]
    assert cells == [
        ("primary", 1, "Annualized relapse rate (ARR)", "relapse"),
        ("primary", 2, "Time to 12-week confirmed disability progression", "disability_progression"),
        ("secondary", 1, "Number of new gadolinium-enhancing T1 lesions", "mri_lesions"),
        ("secondary", 2, "Serum neurofilament light chain", "fluid_biomarker"),
        ("secondary", 3, "Number of participants with adverse events", "safety"),
        ("other", 1, "Maximum plasma concentration (Cmax) of tolebrutinib", "pharmacology"),
    ]
    assert sheet["G2"].data_type == "s"
    trials = list(book["Trials"].iter_rows(values_only=True))
    row = dict(zip(trials[0], [r for r in trials[1:] if r[0] == ENDPOINT_NCT][0], strict=True))
    assert (row["edss_min"], row["edss_max"]) == (2, 5.5)  # numbers, not text
    assert row["endpoint_primary"] == "disability_progression; relapse"

    glossary = {
        (sheet, name): text for sheet, name, text in book["Glossary"].iter_rows(min_row=2, values_only=True)
    }
    for column in (
        "endpoint_primary",
        "endpoint_secondary",
        "edss_min",
        "edss_max",
        "prior_treatment",
        "excluded_therapies",
    ):
        assert glossary[("Trials", column)], column
    assert glossary[("Outcomes", "endpoints")].startswith("Endpoint keys (taxonomy) of the measure")
    taxonomy = load_taxonomy()
    assert {name for sheet, name in glossary if sheet == "endpoint key"} == {
        item.key for item in taxonomy.endpoints
    }
    assert glossary[("endpoint key", "relapse")] == (
        "Relapses (family: Clinical disability). Typical measures: annualised relapse rate (ARR), time to "
        "first relapse, proportion relapse-free, relapse severity or recovery, number of exacerbations"
    )
    assert glossary[("endpoint family", "imaging")] == (
        "Imaging: mri_lesions, mri_atrophy, smouldering_lesions, myelin_repair (--primary-endpoint)"
    )
    assert len([name for sheet, name in glossary if sheet == "endpoint family"]) == 8

    # The dashboard's workbook (the frame path) carries the same Outcomes sheet.
    frame = query.select_trials(endpoint_trials, TrialFilter())
    tables = query.load_detail_tables(endpoint_trials)
    keys = query.outcome_endpoint_keys(endpoint_trials, frame["registration_id"])
    data = frame_to_xlsx(
        query.with_details(frame, tables),
        tables,
        provenance_for(frame, TrialFilter(), query.latest_run(endpoint_trials)),
        outcome_endpoints=keys,
    )
    again = openpyxl.load_workbook(io.BytesIO(data))
    assert list(again["Outcomes"].iter_rows(values_only=True)) == list(sheet.iter_rows(values_only=True))
    assert list(again["Glossary"].iter_rows(min_row=2, values_only=True)) == [
        tuple(r) for r in glossary_rows()
    ]


STREAMING_FILTERS = [
    TrialFilter(),
    TrialFilter(relevance=()),
    TrialFilter(relevance=(), include_removed=True),
    TrialFilter(text="Sclerosis", statuses=("active",)),
    TrialFilter(mechanisms=("anti_cd20", "btk_inhibitor"), phases=("PHASE3",)),
    TrialFilter(phenotypes=("ppms", "spms"), sponsor_classes=("industry",), has_results=True),
    TrialFilter(countries=("Germany",), start_year_min=2010, start_year_max=2020),
    TrialFilter(relevance=("not_ms", "ms_plus"), multi_disease=False, study_types=("OBSERVATIONAL",)),
    TrialFilter(primary_endpoint_families=("imaging", "biomarker")),
    TrialFilter(relevance=(), primary_endpoint_families=("composite",), include_removed=True),
]


@pytest.fixture
def real_trials(engine: Engine) -> Engine:
    """140 real studies and the endpoint study, classified, two with manual overrides (labels, endpoints,
    eligibility facets), one of those flagged removed."""
    raws = [json.loads(line) for line in GOLD_STUDIES.read_text().splitlines()] + [ENDPOINT_STUDY]
    run = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)
    store.ingest_page(engine, run, raws, on_landed=classify_records)
    store.finish_run(engine, run, outcome="success")
    first, second = sorted(registration_id(raw) for raw in raws)[:2]
    set_override(engine, first, mechanisms=["anti_cd20"], relevance="ms_plus", note="test")
    facets = {"edss_min": ["1.5"], "edss_max": ["6", "7"], "excluded_therapy": ["natalizumab"]}
    set_override(engine, second, endpoints_primary=["neda"], eligibility=facets, note="test")
    store.flag_removed(engine, run, {registration_id(raw) for raw in raws} - {second})
    return engine


@pytest.mark.parametrize("trial_filter", STREAMING_FILTERS, ids=lambda f: f.describe())
def test_the_streamed_export_is_byte_identical_to_the_frame_export(
    real_trials: Engine, tmp_path: Path, trial_filter: TrialFilter
) -> None:
    out = tmp_path / "trials.csv"
    result = write_export(real_trials, trial_filter, out, excel=True)
    frame = query.select_trials(real_trials, trial_filter)
    detailed = query.with_details(frame, query.load_detail_tables(real_trials))
    assert out.read_bytes() == frame_to_csv(detailed, excel=True)
    assert result.row_count == len(frame)
    versions = sorted({str(v) for v in frame["taxonomy_version"] if isinstance(v, str)})
    assert result.provenance["classification_taxonomy_versions"] == versions
    rows = list(query.iter_trial_rows(real_trials, trial_filter))
    assert [row["trial_id"] for row in rows] == list(frame["registration_id"])


def test_worker_processes_write_the_same_csv_as_one_process(
    loaded: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spans of registration IDs formatted in worker processes, written in order: the same bytes, the same
    # provenance (spans made small so the fixture store has several). Two registrations in the first and
    # the last span are one trial: each span must know the other's registration.
    from tracker.link_store import record_decision

    monkeypatch.setattr("tracker.export.EXPORT_SPAN", 40)
    ((first, last),) = query.registration_spans(loaded, 10_000)
    record_decision(loaded, first, last, "link", "one trial registered twice")
    every_trial = TrialFilter(relevance=(), include_removed=True)
    written = {}
    for workers in (1, 2):
        out = tmp_path / f"workers{workers}.csv"
        result = write_export(
            loaded, every_trial, out, excel=True, now=datetime(2025, 9, 26), workers=workers
        )
        written[workers] = (out.read_bytes(), result.row_count, result.provenance)
    assert written[2] == written[1]
    assert written[1][1] == len(query.select_trials(loaded, every_trial)) > 40
