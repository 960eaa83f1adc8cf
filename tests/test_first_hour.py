"""A researcher's first hour: numbers relative to the data's own date, forgiving filters, `tracker keys`."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from dashboard.labels import markdown_text
from tracker.cli import main
from tracker.db.session import make_engine
from tracker.filters import TrialFilter
from tracker.query import data_as_of

SAMPLE = Path(__file__).parent / "fixtures" / "ms_sample.jsonl"
APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
STUDIES: list[dict[str, Any]] = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines()]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def status_module(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["protocolSection"]["statusModule"]


def newest_update() -> date:
    return max(date.fromisoformat(status_module(raw)["lastUpdatePostDateStruct"]["date"]) for raw in STUDIES)


def start_day(raw: dict[str, Any]) -> date | None:
    text = status_module(raw).get("startDateStruct", {}).get("date")
    if not text:
        return None
    return date.fromisoformat(
        text if len(text) == 10 else f"{text}-01" if len(text) == 7 else f"{text}-01-01"
    )


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('first-hour') / 'trials.db'}"
    code, output = run("--database-url", url, "import", str(SAMPLE))
    assert code == 0, output
    return url


def test_an_imported_store_is_dated_by_its_newest_update(imported: str) -> None:
    engine = make_engine(imported)
    data_date = data_as_of(engine)
    engine.dispose()
    assert (data_date.day, data_date.source) == (newest_update(), "updates")
    code, output = run("--database-url", imported, "status")
    assert code == 0
    assert f"data as of {newest_update().isoformat()} (newest update posted in the store)" in output


def test_headline_numbers_are_measured_from_the_data_date(
    imported: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_of = newest_update()
    # Computed from the records themselves: started in the 12 months before the data date, under way.
    started = sum(
        1
        for raw in STUDIES
        if (day := start_day(raw)) is not None
        and as_of - timedelta(days=365) < day <= as_of
        and status_module(raw)["overallStatus"] not in ("NOT_YET_RECRUITING", "WITHDRAWN")
    )
    assert started > 0  # the sample is dated 2025-09-25: a wall-clock count would differ from this one
    monkeypatch.setenv("TRACKER_DATABASE_URL", imported)
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.query_params["relevance"] = ""  # every trial, so the count needs no classifier
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    shown = {metric.label: metric.value for metric in app.metric}
    assert shown["Trials"] == f"{len(STUDIES):,}"
    assert shown["Started in the last 12 months"] == f"{started:,}"
    # The caption is escaped Markdown (registry text is shown as text), so compare it escaped.
    dated = markdown_text(f"data as of {as_of.isoformat()}")
    assert any(dated in caption.value for caption in app.caption), [caption.value for caption in app.caption]


@pytest.mark.parametrize(
    ("given", "field", "canonical"),
    [
        ({"statuses": ["recruiting"]}, "statuses", ("RECRUITING",)),
        ({"statuses": ["Not yet recruiting", "ACTIVE"]}, "statuses", ("NOT_YET_RECRUITING", "active")),
        ({"phases": ["phase3", "Phase 2", "early_phase1"]}, "phases", ("PHASE3", "PHASE2", "EARLY_PHASE1")),
        ({"study_types": ["interventional"]}, "study_types", ("INTERVENTIONAL",)),
        ({"sponsor_classes": ["Industry"]}, "sponsor_classes", ("industry",)),
        ({"mechanisms": ["BTK_Inhibitor"]}, "mechanisms", ("btk_inhibitor",)),
        ({"relevance": ["MS"]}, "relevance", ("ms",)),
    ],
)
def test_enum_values_in_any_case(given: dict[str, list[str]], field: str, canonical: tuple[str, ...]) -> None:
    assert getattr(TrialFilter.from_dict(given), field) == canonical


def test_export_with_careless_case(imported: str, tmp_path: Path) -> None:
    out = tmp_path / "recruiting.csv"
    code, output = run(
        "--database-url", imported, "export", "--out", str(out), "--relevance", "all",
        "--status", "recruiting", "--phase", "phase3,phase2",
    )  # fmt: skip
    assert code == 0, output
    expected = sum(
        1
        for raw in STUDIES
        if status_module(raw)["overallStatus"] == "RECRUITING"
        and {"PHASE2", "PHASE3"} & set(raw["protocolSection"].get("designModule", {}).get("phases", []))
    )
    with out.open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == expected


def test_an_unknown_country_suggests_the_stored_ones(imported: str, tmp_path: Path) -> None:
    code, output = run(
        "--database-url", imported, "export", "--out", str(tmp_path / "x.csv"), "--country", "Germny"
    )
    assert code == 2
    assert output.strip().splitlines() == [
        "Error: --country 'Germny' matches no stored trial; closest: Germany"
    ]
    assert not (tmp_path / "x.csv").exists()


def test_a_country_in_another_case_is_the_stored_one(imported: str, tmp_path: Path) -> None:
    out = tmp_path / "de.csv"
    code, output = run(
        "--database-url", imported, "export", "--out", str(out), "--relevance", "all", "--country", "germany"
    )
    assert code == 0, output
    expected = sum(
        1
        for raw in STUDIES
        if any(
            site.get("country") == "Germany"
            for site in raw["protocolSection"].get("contactsLocationsModule", {}).get("locations", [])
        )
    )
    assert f"Wrote {expected} trials" in output and expected > 0


def test_an_unknown_lead_sponsor_suggests_the_stored_ones(imported: str, tmp_path: Path) -> None:
    sponsors = Counter(
        raw["protocolSection"]["sponsorCollaboratorsModule"]["leadSponsor"]["name"] for raw in STUDIES
    )
    name = sponsors.most_common(1)[0][0]
    code, output = run(
        "--database-url", imported, "subscribe", "add", "a@example.org", "--lead-sponsor", name[:-2]
    )
    assert code == 2
    assert f"--lead-sponsor {name[:-2]!r} matches no stored trial; closest: {name}" in output


def test_keys_lists_labels_and_counts(imported: str) -> None:
    code, output = run("--database-url", imported, "keys", "status", "--json")
    assert code == 0, output
    (rows,) = json.loads(output).values()
    by_key = {row["key"]: row for row in rows}
    # MS trials only (the default filter): compare with the export of the same default view.
    code, export_output = run("--database-url", imported, "export", "--out", "/dev/null")
    assert code == 0
    assert by_key["RECRUITING"]["label"] == "Recruiting"
    assert sum(row["trials"] for key, row in by_key.items() if key != "active") == int(
        export_output.split()[1]
    )
    code, output = run("--database-url", imported, "keys", "phase")
    assert code == 0
    assert output.splitlines()[0] == "phase (--phase; trials counted over MS trials)"
    assert any(line.split()[:1] == ["PHASE3"] and line.endswith("Phase 3") for line in output.splitlines())


def test_keys_relevance_counts_every_stored_trial(imported: str) -> None:
    code, output = run("--database-url", imported, "keys", "relevance", "--json")
    assert code == 0
    assert sum(row["trials"] for row in json.loads(output)["relevance"]) == len(STUDIES)


def test_keys_endpoint_counts_ms_trials_carrying_each_endpoint(imported: str) -> None:
    from sqlalchemy import text

    from tracker.filters import DEFAULT_RELEVANCE

    # Independently: MS trials (default relevance, still listed) with each endpoint label, either role.
    relevance = ", ".join(f"'{key}'" for key in DEFAULT_RELEVANCE)
    with make_engine(imported).connect() as connection:
        expected = dict(
            connection.execute(
                text(
                    "SELECT e.key, COUNT(DISTINCT e.registration_id) FROM study_labels e"
                    " JOIN study_labels r ON r.registration_id = e.registration_id"
                    " AND r.dimension = 'relevance'"
                    " JOIN studies s ON s.registration_id = e.registration_id"
                    f" WHERE e.dimension = 'endpoint' AND r.key IN ({relevance}) AND s.removed_at IS NULL"
                    " GROUP BY e.key"
                )
            ).all()
        )
    assert expected, "the sample should carry endpoint labels"
    code, output = run("--database-url", imported, "keys", "endpoint", "--json")
    assert code == 0, output
    counted = {row["key"]: row["trials"] for row in json.loads(output)["endpoint"] if row["trials"]}
    assert counted == expected


def test_keys_of_an_unknown_dimension(imported: str) -> None:
    code, output = run("--database-url", imported, "keys", "colour")
    assert code == 2
    assert "unknown key dimension 'colour'; choose from: mechanism, phenotype" in output


def test_a_bad_time_zone_blames_the_time_zone(imported: str) -> None:
    result = CliRunner().invoke(
        main, ["--database-url", imported, "status"], env={"TRACKER_TIMEZONE": "Mars/Base"}
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: invalid setting TRACKER_TIMEZONE: unknown time zone 'Mars/Base' "
        "(use an IANA name such as Europe/London)"
    )


def test_a_bad_requests_per_second_names_the_flag(imported: str) -> None:
    code, output = run("--database-url", imported, "sync", "--requests-per-second", "-1")
    assert code == 2
    assert (
        output.strip()
        == "Error: invalid --requests-per-second -1.0: Input should be greater than or equal to 0"
    )


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        ("2025-09-01T07:00", "2025-09-08T06:00", "1–8 Sep 2025"),
        ("2026-11-25T00:00", "2026-12-02T00:00", "25 Nov – 1 Dec 2026"),
        ("2025-12-28T06:00", "2026-01-04T06:00", "28 Dec 2025 – 4 Jan 2026"),
        ("2026-12-01T00:00", "2026-12-01T18:00", "1 Dec 2026"),
    ],
)
def test_digest_subject_ranges_read_at_a_glance(start: str, end: str, text: str) -> None:
    from datetime import datetime

    from tracker.digest.render import period_range

    assert period_range(datetime.fromisoformat(start), datetime.fromisoformat(end)) == text
