"""parse_study: real records, partial dates, missing modules, unknown enums and malformed records."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import pytest

from tracker.ctgov.parse import content_hash, parse_study
from tracker.errors import RecordError

STUDIES = Path(__file__).parent / "fixtures" / "ctgov" / "studies"
EDGE = Path(__file__).parent / "fixtures" / "ctgov" / "edge"


def load(name: str) -> dict:
    return json.loads((STUDIES / f"{name}.json").read_text())


@pytest.mark.parametrize("path", sorted(STUDIES.glob("NCT*.json")), ids=lambda p: p.stem)
def test_every_real_record_parses(path: Path) -> None:
    record = parse_study(json.loads(path.read_text()))
    assert record.registration_id == path.stem
    assert record.brief_title
    assert len(record.content_hash) == 64


def test_partial_date_without_type_keeps_precision() -> None:
    record = parse_study(load("NCT00763412"))
    assert record.start_date is not None
    assert (record.start_date.raw, record.start_date.precision, record.start_date.type) == (
        "2006-11",
        "month",
        None,
    )
    assert record.start_date.first_day == date(2006, 11, 1)


def test_year_precision_and_day_precision() -> None:
    raw = load("NCT00973089")
    status = raw["protocolSection"]["statusModule"]
    status["startDateStruct"] = {"date": "2010", "type": "ESTIMATED"}
    record = parse_study(raw)
    assert (record.start_date.precision, record.start_date.first_day) == ("year", date(2010, 1, 1))
    assert record.primary_completion_date.precision == "month"
    assert record.last_update_posted == date(2015, 8, 19)


def test_withdrawn_record_fields() -> None:
    record = parse_study(load("NCT00973089"))
    assert record.overall_status == "WITHDRAWN"
    assert record.why_stopped
    assert record.enrollment_count == 0
    assert record.phases == ("NA",)


def test_arm_roles_come_from_arm_groups() -> None:
    record = parse_study(load("NCT03064438"))
    roles = {item.name: item.arm_role for item in record.interventions}
    assert roles == {"ACCU-D1": "experimental", "Vehicle": "placebo"}


def test_observational_record_has_no_phases_and_no_arm_roles() -> None:
    record = parse_study(load("NCT05594173"))
    assert record.study_type == "OBSERVATIONAL"
    assert record.phases == ()
    assert all(item.arm_roles == () for item in record.interventions)


def test_unknown_record_modules_are_missing_not_errors() -> None:
    record = parse_study({"protocolSection": {"identificationModule": {"nctId": "NCT01234567"}}})
    assert record.registration_id == "NCT01234567"
    assert record.overall_status is None
    assert record.interventions == ()
    assert record.start_date is None
    assert record.has_results is False


def test_unknown_enum_values_are_kept() -> None:
    raw = load("NCT06171568")
    raw["protocolSection"]["statusModule"]["overallStatus"] = "PAUSED_FOR_REVIEW"
    raw["protocolSection"]["designModule"]["studyType"] = "HYBRID"
    record = parse_study(raw)
    assert (record.overall_status, record.study_type) == ("PAUSED_FOR_REVIEW", "HYBRID")


def test_mesh_terms_in_old_and_new_formats() -> None:
    assert parse_study(load("NCT00763412")).condition_mesh_terms
    assert parse_study(load("NCT06131398")).condition_mesh_terms


@pytest.mark.parametrize(
    ("name", "message"),
    [("legacy_v1", "legacy"), ("no_nct_id", "nctId"), ("bad_start_date", "startDateStruct")],
)
def test_malformed_records_are_rejected_with_a_reason(name: str, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        parse_study(json.loads((EDGE / f"{name}.json").read_text()))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["protocolSection"]["statusModule"].update(startDateStruct={"date": "2020-13"}),
        lambda r: r["protocolSection"]["designModule"].update(enrollmentInfo={"count": {"n": 3}}),
        lambda r: r["protocolSection"].update(statusModule=["not", "an", "object"]),
    ],
    ids=["impossible-month", "count-not-a-number", "module-not-an-object"],
)
def test_wrongly_shaped_values_reject_the_record_with_its_id(mutate) -> None:  # type: ignore[no-untyped-def]
    raw = load("NCT00973089")
    mutate(raw)
    with pytest.raises(RecordError) as caught:
        parse_study(raw)
    assert caught.value.registration_id == "NCT00973089"


def test_content_hash_ignores_key_order_and_the_daily_version_holder() -> None:
    raw = load("NCT06131398")
    reordered = dict(reversed(list(raw.items())))
    assert content_hash(raw) == content_hash(reordered)
    bumped = copy.deepcopy(raw)
    bumped["derivedSection"]["miscInfoModule"]["versionHolder"] = "2031-01-01"
    assert content_hash(raw) == content_hash(bumped)
    edited = copy.deepcopy(raw)
    edited["protocolSection"]["identificationModule"]["briefTitle"] += " (amended)"
    assert content_hash(raw) != content_hash(edited)


def test_outcomes_design_secondary_ids_and_ages_are_parsed() -> None:
    raw = {
        "protocolSection": {
            "identificationModule": {
                "nctId": "NCT01234567",
                "secondaryIdInfos": [
                    {"id": "2020-001803-17", "type": "EUDRACT_NUMBER"},
                    {"id": "R01NS000001", "type": "NIH", "domain": "NINDS"},
                    {"id": " "},
                ],
            },
            "designModule": {
                "designInfo": {
                    "allocation": "RANDOMIZED",
                    "interventionModel": "PARALLEL",
                    "primaryPurpose": "TREATMENT",
                    "maskingInfo": {"masking": "QUADRUPLE"},
                }
            },
            "eligibilityModule": {"minimumAge": "18 Years", "maximumAge": "6 Months", "sex": "ALL"},
            "outcomesModule": {
                "primaryOutcomes": [{"measure": "Annualised relapse rate", "timeFrame": "96 weeks"}],
                "secondaryOutcomes": [
                    {"measure": "Time to 12-week confirmed disability progression", "description": "EDSS"},
                    {"measure": ""},
                    {"measure": "New T2 lesions"},
                ],
                "otherOutcomes": [{"measure": "Serum NfL"}],
            },
        }
    }
    study = parse_study(raw)
    assert [(o.role, o.measure, o.order) for o in study.outcomes] == [
        ("primary", "Annualised relapse rate", 0),
        ("secondary", "Time to 12-week confirmed disability progression", 0),
        ("secondary", "New T2 lesions", 1),
        ("other", "Serum NfL", 0),
    ]
    assert study.outcomes[0].time_frame == "96 weeks"
    assert study.outcomes[1].description == "EDSS"
    assert (study.design.allocation, study.design.intervention_model) == ("RANDOMIZED", "PARALLEL")
    assert (study.design.masking, study.design.primary_purpose) == ("QUADRUPLE", "TREATMENT")
    assert [(s.id, s.type, s.domain) for s in study.secondary_ids] == [
        ("2020-001803-17", "EUDRACT_NUMBER", None),
        ("R01NS000001", "NIH", "NINDS"),
    ]
    assert (study.minimum_age_years, study.maximum_age_years, study.sex) == (18.0, 0.5, "ALL")


def test_unreadable_ages_stay_text_only() -> None:
    from tracker.ctgov.parse import age_in_years

    assert age_in_years("N/A") is None
    assert age_in_years("65 Years") == 65.0
    assert age_in_years("2 Weeks") == round(14 / 365.25, 3)
    assert age_in_years(None) is None
