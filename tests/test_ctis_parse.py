"""parse_ctis_record and merge_summary: every mapped field on real and synthetic records, statuses, dates,
identifiers, the eligibility layout, the content hash and malformed records."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tracker.classify.eligibility import classify_eligibility, split_criteria
from tracker.ctgov.parse import (
    CountryStatus,
    Location,
    Organization,
    OutcomeMeasure,
    PartialDate,
    SecondaryId,
)
from tracker.ctis.dates import any_date, day_first_date, iso_date
from tracker.ctis.parse import (
    OVERALL_STATUSES,
    STATUS_LABELS,
    content_hash,
    country_decisions,
    merge_summary,
    parse_ctis_record,
    phases_from,
)
from tracker.errors import RecordError

CTIS = Path(__file__).parent / "fixtures" / "ctis"
ZANAMIVIR = "2024-510663-34-00"
POSACONAZOLE = "2023-505613-24-00"
AHSCT = "2024-513377-21-00"
BTK = "2025-520148-33-00"
MOVED = "2023-508412-47-00"


def load(ct_number: str) -> dict[str, Any]:
    return json.loads((CTIS / f"retrieve_{ct_number}.json").read_text())


def search_summary() -> dict[str, Any]:
    return json.loads((CTIS / "search_page_ms_1record.json").read_text())["data"][0]


def part1(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["authorizedApplication"]["authorizedPartI"]


@pytest.mark.parametrize("path", sorted(CTIS.glob("retrieve_*.json")), ids=lambda p: p.stem)
def test_every_fixture_parses(path: Path) -> None:
    record = parse_ctis_record(json.loads(path.read_text()))
    assert record.registration_id == path.stem.removeprefix("retrieve_")
    assert record.registry == "ctis"
    assert record.brief_title and record.official_title
    assert record.overall_status and record.registry_status
    assert len(record.content_hash) == 64


# --- a real record, field by field ----------------------------------------------------------------------


def test_real_record_identity_titles_status_and_phase() -> None:
    record = parse_ctis_record(load(ZANAMIVIR))
    assert record.registration_id == ZANAMIVIR  # the EU CT number is the registration's own ID
    assert record.brief_title.startswith("An open label, single arm study to evaluate single and multiple")
    assert record.official_title == record.brief_title  # this trial's public and full titles are the same
    assert record.acronym == "200925"
    assert (record.overall_status, record.registry_status) == ("RECRUITING", "Ongoing, recruiting")
    assert record.phases == ("PHASE2",)
    assert record.study_type == "INTERVENTIONAL"
    assert record.conditions == ("Influenza, Human",)  # a comma inside one condition's name


def test_real_record_dates() -> None:
    record = parse_ctis_record(load(ZANAMIVIR))
    # Recruitment started first in Spain (2022-11-21), before Italy (2025-01-17); the planned start and the
    # EU trial start (startDateEU 29/01/2021) are not recruitment.
    assert record.start_date == PartialDate("2022-11-21", "day", "ACTUAL", date(2022, 11, 21))
    assert record.completion_date == PartialDate("2026-12-09", "day", "ESTIMATED", date(2026, 12, 9))
    assert record.primary_completion_date is None
    assert record.decision_date == date(2024, 4, 24)  # decisionDateOverall 24/04/2024, day-first
    # publishDate (2025-09-16) is the latest publication, not the first: the decision is when CTIS first
    # published the trial.
    assert record.first_posted == date(2024, 4, 24)
    assert record.last_update_posted == date(2025, 9, 16)  # lastPublicationUpdate, later than lastUpdated


def test_real_record_countries_keep_their_own_status_labels_and_decision_dates() -> None:
    record = parse_ctis_record(load(POSACONAZOLE))
    assert record.countries == (
        CountryStatus("Poland", "Ongoing, recruiting", date(2024, 4, 12)),
        CountryStatus("Belgium", "Ongoing, recruiting", date(2024, 4, 15)),
        CountryStatus("Greece", "Ongoing, recruiting", date(2024, 6, 17)),
    )
    assert record.decision_date == date(2024, 4, 12)


def test_real_record_recruitment_start_prefers_the_active_period_over_superseded_ones() -> None:
    record = parse_ctis_record(load(POSACONAZOLE))
    # Belgium and Poland still list a superseded 2021-10-31; their active periods say 2022-10-31 and
    # 2025-05-22, and Greece started on 2022-06-21.
    assert record.start_date == PartialDate("2022-06-21", "day", "ACTUAL", date(2022, 6, 21))


def test_real_record_enrolment_counts_the_rest_of_the_world_too() -> None:
    # totalNumberEnrolled counts the EEA only: 13 = 6 + 3 + 4; 19 more outside the EEA.
    assert parse_ctis_record(load(POSACONAZOLE)).enrollment_count == 32
    assert parse_ctis_record(load(ZANAMIVIR)).enrollment_count == 11
    assert parse_ctis_record(load(ZANAMIVIR)).enrollment_type == "ESTIMATED"


def test_real_record_sponsor_products_and_identifiers() -> None:
    record = parse_ctis_record(load(POSACONAZOLE))
    assert record.lead_sponsor == Organization("Merck Sharp & Dohme LLC", "INDUSTRY")
    assert record.collaborators == ()  # the only funder is the sponsor itself
    names = [(item.name, item.other_names, item.arm_roles) for item in record.interventions]
    # Two products named Posaconazole (two formulations) are one intervention.
    assert names == [
        ("Noxafil 300 mg concentrate for solution for infusion", ("POSACONAZOLE",), ("experimental",)),
        ("Posaconazole", ("MK-5592",), ("experimental",)),
    ]
    assert {item.type for item in record.interventions} == {"DRUG"}
    assert record.interventions[0].description == "SOLUTION FOR INFUSION; INTRAVENOUS INJECTION"
    assert record.secondary_ids == (
        SecondaryId("NCT04665037", "NCT_ID", "ClinicalTrials.gov"),
        SecondaryId("2019-003842-34", "EUDRACT_NUMBER", "EudraCT"),
        SecondaryId("75,061; 125,097", "OTHER", "IND"),
    )


def test_real_record_sites_outcomes_population_and_objective() -> None:
    record = parse_ctis_record(load(ZANAMIVIR))
    assert record.locations[0] == Location(
        "Sant Joan De Deu Barcelona Hospital", "Esplugues De Llobregat", None, "Spain", "RECRUITING"
    )
    assert {location.country for location in record.locations} == {"Spain", "Italy"}
    assert len(record.locations) == 6
    primary = [outcome for outcome in record.outcomes if outcome.role == "primary"]
    assert primary[0] == OutcomeMeasure(
        "primary", "Area under the serum concentration-time curve (AUC)", None, None, 0
    )
    assert [outcome.order for outcome in primary] == list(range(len(primary)))
    assert (record.minimum_age, record.maximum_age, record.std_ages) == ("0 Years", "17 Years", ("CHILD",))
    assert (record.minimum_age_years, record.maximum_age_years) == (0.0, 17.0)
    assert record.sex == "ALL"
    assert record.healthy_volunteers is False  # the trial's group is "Patients"
    assert record.brief_summary.startswith("To characterise single and multiple dose")
    assert record.has_results is False


def test_real_record_eligibility_is_laid_out_like_clinicaltrials_gov() -> None:
    record = parse_ctis_record(load(ZANAMIVIR))
    text = record.eligibility_criteria
    assert text.startswith(
        "Inclusion Criteria:\n\n* Age. Neonates and infants who are aged less than 6 months"
    )
    assert "\n\nExclusion Criteria:\n\n* Participants who are known or suspected to be hypersensitive" in text
    assert "Edad" not in text  # the Spanish translation is ignored
    inclusion, exclusion = split_criteria(text)
    assert inclusion.startswith("Inclusion Criteria:") and "Exclusion" not in inclusion
    assert exclusion.startswith("Exclusion Criteria:")
    criteria = part1(load(ZANAMIVIR))["trialDetails"]["trialInformation"]["eligibilityCriteria"]
    assert inclusion.count("\n* ") == len(criteria["principalInclusionCriteria"])
    assert exclusion.count("\n* ") == len(criteria["principalExclusionCriteria"])


# --- the synthetic MS records ---------------------------------------------------------------------------


def test_ahsct_trial_only_in_ctis() -> None:
    record = parse_ctis_record(load(AHSCT))
    assert (
        record.brief_title
        == "Stem cell transplantation compared with ocrelizumab in active relapsing multiple sclerosis"
    )
    assert record.official_title.startswith("A randomised, rater-blinded, multicentre trial of autologous")
    assert record.acronym == "NORSTEM-2"
    assert record.phases == ("PHASE2", "PHASE3")  # "Phase II and Phase III (Integrated)"
    assert record.conditions == ("Relapsing-remitting multiple sclerosis",)
    assert record.secondary_ids == ()  # no twin anywhere
    assert record.lead_sponsor == Organization("Haukeland University Hospital", "OTHER")
    # The co-sponsor, then the funders not already named.
    assert record.collaborators == (
        Organization("Karolinska University Hospital", "OTHER"),
        Organization("Research Council of Norway", None),
    )
    assert record.enrollment_count == 120
    assert record.start_date == PartialDate("2024-11-20", "day", "ACTUAL", date(2024, 11, 20))
    assert record.completion_date == PartialDate("2031-12-31", "day", "ESTIMATED", date(2031, 12, 31))
    assert record.last_update_posted == date(2026, 5, 7)


def test_product_roles_test_comparator_and_auxiliary() -> None:
    record = parse_ctis_record(load(AHSCT))
    roles = {item.name: item.arm_roles for item in record.interventions}
    assert roles == {
        "Cyclophosphamide Sandoz 1000 mg powder for solution for infusion": ("experimental",),
        "Thymoglobuline 25 mg powder for solution for infusion": ("experimental",),
        "Filgrastim": ("other",),  # auxiliary: mobilisation, not what is investigated
        "Ocrevus 300 mg concentrate for solution for infusion": ("active_comparator",),
    }
    ocrevus = record.interventions[-1]
    assert ocrevus.other_names == ("OCRELIZUMAB",)  # the active substance, once despite two spellings


def test_a_comparator_that_is_a_placebo_plays_the_placebo_role() -> None:
    record = parse_ctis_record(load(BTK))
    roles = {item.name: item.arm_roles for item in record.interventions}
    assert roles == {
        "Tolebrutinib 60 mg film-coated tablets": ("experimental",),
        "Placebo to match tolebrutinib 60 mg film-coated tablets": ("placebo",),
    }
    assert record.interventions[0].other_names == ("TOLEBRUTINIB", "SAR442168")


def test_role_codes_are_read_when_the_record_names_no_role() -> None:
    raw = load(AHSCT)
    part1(raw)["productRoleGroupInfos"] = []
    roles = [item.arm_roles for item in parse_ctis_record(raw).interventions]
    assert roles == [("experimental",), ("experimental",), ("other",), ("active_comparator",)]
    for product in part1(raw)["products"]:
        product["part1MpRoleTypeCode"] = "99"
    assert [item.arm_roles for item in parse_ctis_record(raw).interventions] == [()] * 4  # never guessed


def test_member_states_each_keep_their_own_status() -> None:
    record = parse_ctis_record(load(AHSCT))
    assert record.countries == (
        CountryStatus("Norway", "Ongoing, recruiting", date(2024, 9, 3)),
        CountryStatus("Sweden", "Ongoing, recruiting", date(2024, 9, 17)),
        CountryStatus("Denmark", "Authorised, recruiting", date(2024, 10, 2)),
        CountryStatus("Netherlands", "Authorised, recruitment pending", date(2025, 1, 21)),
    )
    statuses = {location.country: location.status for location in record.locations}
    assert statuses == {
        "Norway": "RECRUITING",
        "Sweden": "RECRUITING",
        "Denmark": "RECRUITING",
        "Netherlands": "NOT_YET_RECRUITING",
    }
    assert record.decision_date == date(2024, 9, 3)


def test_btk_trial_names_its_twin_loosely_written_and_normalised() -> None:
    record = parse_ctis_record(load(BTK))
    assert record.secondary_ids == (
        SecondaryId("NCT06123456", "NCT_ID", "ClinicalTrials.gov"),
        SecondaryId("U1111-1281-4920", "OTHER", "WHO UTN"),
    )
    assert record.phases == ("PHASE3",)  # "Therapeutic confirmatory  (Phase III)", double space
    assert record.lead_sponsor == Organization("Sanofi-Aventis Recherche & Développement", "INDUSTRY")
    assert record.enrollment_count == 260 + 400  # member states plus the rest of the world
    assert (record.minimum_age, record.maximum_age) == ("18 Years", None)  # 65+ has no upper bound
    assert record.std_ages == ("ADULT", "OLDER_ADULT")
    spain = next(country for country in record.countries if country.country == "Spain")
    assert spain == CountryStatus("Spain", "Ongoing, recruitment ended", date(2025, 2, 11))
    czechia = next(country for country in record.countries if country.country == "Czechia")
    assert czechia.status == "Authorised, recruitment pending"
    assert record.outcomes[0].measure.startswith("Time to onset of 6-month confirmed disability progression")
    assert [outcome.role for outcome in record.outcomes] == ["primary", "secondary", "secondary"]


def test_trial_moved_from_eudract_names_its_eudract_number() -> None:
    record = parse_ctis_record(load(MOVED))
    assert record.secondary_ids == (
        SecondaryId("2019-004275-19", "EUDRACT_NUMBER", "EudraCT"),
        SecondaryId("ISRCTN 48211796", "OTHER", "ISRCTN"),
    )
    assert (record.overall_status, record.registry_status) == ("COMPLETED", "Ended")
    assert record.phases == ("PHASE4",)
    assert record.sex == "FEMALE"
    assert record.has_results is True  # resultsFirstReceived "Yes"
    # Ended: the actual global end (endDate 30/04/2026) wins over the EU end and the estimates.
    assert record.completion_date == PartialDate("2026-04-30", "day", "ACTUAL", date(2026, 4, 30))
    assert record.start_date == PartialDate("2020-09-14", "day", "ACTUAL", date(2020, 9, 14))


def test_eligibility_items_follow_their_numbers_and_classify_like_ctgov_text() -> None:
    record = parse_ctis_record(load(AHSCT))
    assert record.eligibility_criteria.split("\n\nExclusion Criteria:")[0] == (
        "Inclusion Criteria:\n\n"
        "* Age 18 to 50 years at randomisation\n"
        "* Relapsing-remitting multiple sclerosis according to the 2017 McDonald criteria\n"
        "* EDSS score of 2.0 to 5.5 at screening\n"
        "* At least two clinical relapses in the previous 12 months despite treatment with a "
        "disease-modifying therapy,\n  or one relapse and new MRI activity"
    )
    # The classifier reads the text as it reads ClinicalTrials.gov's: the EDSS range from the inclusion
    # criteria only, the therapies ruled out from the exclusion criteria.
    facets = {(facet.name, facet.value) for facet in classify_eligibility(record)}
    assert {
        ("edss_min", "2.0"),
        ("edss_max", "5.5"),
        ("sex", "all"),
        ("age_min", "18"),
        ("healthy_volunteers", "no"),
        ("prior_treatment", "prior_dmt_failure"),
        ("excluded_therapy", "alemtuzumab"),
        ("excluded_therapy", "ocrelizumab"),
    } <= facets


def test_an_endpoint_time_frame_is_read_when_given() -> None:
    # No real record seen so far carries one; if CTIS adds it, it is read rather than lost.
    raw = load(BTK)
    endpoints = part1(raw)["trialDetails"]["trialInformation"]["endPoint"]
    endpoints["primaryEndPoints"][0]["timeFrame"] = "Up to approximately 48 months"
    record = parse_ctis_record(raw)
    assert record.outcomes[0].time_frame == "Up to approximately 48 months"
    assert record.outcomes[1].time_frame is None


def test_what_ctis_does_not_have_stays_empty() -> None:
    record = parse_ctis_record(load(AHSCT))
    empty = (record.keywords, record.arm_groups, record.condition_mesh_terms, record.intervention_mesh_terms)
    assert empty == ((), (), (), ())
    assert (record.last_known_status, record.why_stopped, record.results_first_posted) == (None, None, None)
    assert (record.design.allocation, record.design.masking, record.detailed_description) == (
        None,
        None,
        None,
    )


def test_exclusion_only_criteria_keep_their_header() -> None:
    raw = load(MOVED)
    part1(raw)["trialDetails"]["trialInformation"]["eligibilityCriteria"]["principalInclusionCriteria"] = []
    text = parse_ctis_record(raw).eligibility_criteria
    assert text.startswith("Exclusion Criteria:\n\n* ")
    assert split_criteria(text)[0] == ""


# --- statuses -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "overall", "label"),
    [
        (1, "NOT_YET_RECRUITING", "Under evaluation"),
        (2, "NOT_YET_RECRUITING", "Authorised, recruitment pending"),
        (3, "RECRUITING", "Authorised, recruiting"),
        (4, "RECRUITING", "Ongoing, recruiting"),
        (5, "ACTIVE_NOT_RECRUITING", "Ongoing, recruitment ended"),
        (6, "SUSPENDED", "Temporarily halted"),
        (7, "SUSPENDED", "Suspended"),
        (8, "COMPLETED", "Ended"),
        (9, "WITHDRAWN", "Expired"),
        (10, "TERMINATED", "Revoked"),
        (11, "WITHDRAWN", "Not authorised"),
        (12, "WITHDRAWN", "Cancelled"),
    ],
)
def test_every_public_status_code(code: int, overall: str, label: str) -> None:
    raw = load(AHSCT)
    raw["ctStatus"] = raw["ctPublicStatusCode"] = code
    record = parse_ctis_record(raw)
    assert (record.overall_status, record.registry_status) == (overall, label)


def test_the_status_tables_cover_the_same_codes() -> None:
    assert set(STATUS_LABELS) == set(OVERALL_STATUSES) == set(range(1, 13))


@pytest.mark.parametrize("code", [0, 13, 99, -1])
def test_an_unknown_status_code_is_kept_unknown_never_guessed(code: int) -> None:
    raw = load(AHSCT)
    raw["ctStatus"] = raw["ctPublicStatusCode"] = code
    raw["trialCountries"] = ["Norway:4", f"Sweden:{code}"]
    raw["authorizedApplication"]["memberStatesConcerned"][1]["mscPublicStatusCode"] = code
    record = parse_ctis_record(raw)
    assert record.overall_status is None
    assert record.registry_status == f"unknown status code {code}"
    assert record.countries[1].status == f"unknown status code {code}"
    assert {loc.country: loc.status for loc in record.locations}["Sweden"] is None


def test_the_application_status_is_never_the_recruitment_status() -> None:
    raw = load(AHSCT)
    raw["ctStatus"] = "Authorised"  # a raw retrieve: the application status
    raw["ctPublicStatusCode"] = 5
    assert parse_ctis_record(raw).registry_status == "Ongoing, recruitment ended"
    del raw["ctPublicStatusCode"]  # and with no public code, the text is not read as one
    record = parse_ctis_record(raw)
    assert (record.overall_status, record.registry_status) == (None, None)


def test_the_search_status_is_read_when_the_retrieve_code_is_missing() -> None:
    summary = search_summary()
    assert "ctPublicStatusCode" not in summary
    assert parse_ctis_record(summary).registry_status == "Ongoing, recruiting"  # ctStatus 4


# --- search summaries and merging -----------------------------------------------------------------------


def test_a_bare_search_summary_parses_with_what_it_has() -> None:
    record = parse_ctis_record(search_summary())
    assert record.registration_id == "2025-523726-40-00"
    assert record.brief_title.startswith("A PHASE III, OPEN-LABEL, SINGLE-ARM")
    assert record.acronym == "CN46182"
    assert record.phases == ("PHASE3",)
    assert record.conditions == ("Multiple Sclerosis",)
    assert record.lead_sponsor == Organization("F. Hoffmann-La Roche AG", "INDUSTRY")
    assert record.enrollment_count == 54
    assert [item.name for item in record.interventions] == ["Ocrevus", "Ocrelizumab"]
    assert [outcome.measure for outcome in record.outcomes if outcome.role == "primary"] == [
        "Occurrence of successful self/lay caregiver administration of the Week 1 dose"
    ]
    secondary = [outcome.measure for outcome in record.outcomes if outcome.role == "secondary"]
    # Split at commas that start a new endpoint, not at those inside brackets.
    assert len(secondary) == 5
    assert secondary[1] == (
        "Occurrence and nature of injection reactions (severity, treatment, need for intervention by a "
        "healthcare professional, outcome)"
    )
    assert (record.minimum_age, record.maximum_age, record.std_ages) == ("18 Years", "64 Years", ("ADULT",))
    assert record.countries == (
        CountryStatus("Spain", "Ongoing, recruiting", date(2026, 6, 26)),
        CountryStatus("France", "Authorised, recruitment pending", date(2026, 6, 26)),
        CountryStatus("Poland", "Authorised, recruiting", date(2026, 6, 29)),
        CountryStatus("Italy", "Ongoing, recruiting", date(2026, 6, 24)),
    )
    assert record.decision_date == date(2026, 6, 24)
    assert record.start_date == PartialDate("2026-06-24", "day", None, date(2026, 6, 24))  # startDateEU
    assert record.last_update_posted == date(2026, 7, 15)


def test_merge_summary_lays_the_summary_over_the_full_record() -> None:
    full = load(AHSCT)
    summary = {k: full.pop(k) for k in ("trialPhase", "ageGroup", "lastPublicationUpdate", "trialCountries")}
    full["ctStatus"] = "Authorised"
    full["lastUpdated"] = "2026-05-05"  # ISO in a raw retrieve
    summary.update(ctNumber=AHSCT, ctStatus=4, lastUpdated="05/05/2026", decisionDate="", gender=None)
    merged = merge_summary(summary, full)
    assert merged["ctStatus"] == 4 and merged["lastUpdated"] == "05/05/2026"
    assert merged["decisionDate"] == full["decisionDate"]  # empty summary values do not overwrite
    assert merged["authorizedApplication"] is full["authorizedApplication"]
    assert parse_ctis_record(merged).phases == ("PHASE2", "PHASE3")
    assert parse_ctis_record(full).phases == ()  # the phase wording only comes with the summary


def test_merge_summary_refuses_two_different_trials() -> None:
    with pytest.raises(RecordError, match="merged into the record of"):
        merge_summary(search_summary(), load(AHSCT))


def test_a_raw_retrieve_with_iso_top_level_dates_parses_too() -> None:
    raw = load(ZANAMIVIR)
    raw.update(
        ctStatus="Authorised", lastUpdated="2025-09-15", decisionDate="2024-04-24", startDateEU="2021-01-29"
    )
    for key in ("lastPublicationUpdate", "decisionDateOverall", "trialCountries"):
        del raw[key]
    record = parse_ctis_record(raw)
    assert record.last_update_posted == date(2025, 9, 15)
    assert record.decision_date == date(2024, 4, 24)  # the earliest member-state decision
    assert record.registry_status == "Ongoing, recruiting"  # ctPublicStatusCode


# --- the content hash -----------------------------------------------------------------------------------


def test_content_hash_ignores_key_order_republication_and_translations() -> None:
    raw = load(AHSCT)
    reference = parse_ctis_record(raw).content_hash
    reordered = json.loads(json.dumps(raw, sort_keys=True))
    assert content_hash(reordered) == reference
    republished = copy.deepcopy(raw)
    republished["publishDate"] = "2026-05-08T03:40:01.000000001"
    republished["lastPublicationUpdate"] = "08/05/2026"
    assert content_hash(republished) == reference
    retranslated = copy.deepcopy(raw)
    identifiers = part1(retranslated)["trialDetails"]["clinicalTrialIdentifiers"]
    identifiers["publicTitleTranslations"][0]["attributeTranslation"] = "Stamcelletransplantasjon"
    assert content_hash(retranslated) == reference
    assert parse_ctis_record(retranslated).brief_title == parse_ctis_record(raw).brief_title


def test_content_hash_moves_with_the_content() -> None:
    raw = load(AHSCT)
    changed = copy.deepcopy(raw)
    part1(changed)["trialDetails"]["clinicalTrialIdentifiers"]["publicTitle"] += " (extended)"
    assert content_hash(changed) != content_hash(raw)
    updated = copy.deepcopy(raw)
    updated["lastUpdated"] = "06/05/2026"
    assert content_hash(updated) != content_hash(raw)


# --- malformed records ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw.pop("ctNumber"), "missing or malformed ctNumber None"),
        (lambda raw: raw.update(ctNumber="2024-510663-34"), "malformed ctNumber '2024-510663-34'"),
        (lambda raw: raw.update(ctNumber="NCT04494412"), "malformed ctNumber"),
        (
            lambda raw: raw.update(authorizedPartI=raw.pop("authorizedApplication")["authorizedPartI"]),
            "pre-June-2024 CTIS schema",
        ),
        (lambda raw: raw.update(lastUpdated="2025/09/15"), "not an ISO date: '2025/09/15'"),
        (lambda raw: raw.update(decisionDateOverall="2024-04-24"), "not a DD/MM/YYYY date"),
        (lambda raw: raw.update(decisionDateOverall="31/02/2024"), "day is out of range"),
        (lambda raw: raw.update(decisionDate="ES: 24.04.2024"), "not a DD/MM/YYYY date: '24.04.2024'"),
        (
            lambda raw: (
                raw["authorizedApplication"].update(authorizedPartsII=[]),  # so the summary's count is read
                raw.update(totalNumberEnrolled="about 50"),
            ),
            "subject count is not a number: 'about 50'",
        ),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    raw = load(ZANAMIVIR)
    mutate(raw)
    with pytest.raises(RecordError, match=message):
        parse_ctis_record(raw)


def test_a_rejected_record_names_its_ct_number() -> None:
    raw = load(ZANAMIVIR)
    raw["decisionDateOverall"] = "24-04-2024"
    with pytest.raises(RecordError) as raised:
        parse_ctis_record(raw)
    assert raised.value.registration_id == ZANAMIVIR
    assert str(raised.value).startswith(f"{ZANAMIVIR}: ")


@pytest.mark.parametrize("raw", [None, [], "2024-510663-34-00", 42])
def test_a_record_that_is_not_an_object_is_rejected(raw: object) -> None:
    with pytest.raises(RecordError, match="not an object"):
        parse_ctis_record(raw)


# --- pure helpers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phases"),
    [
        ("Human pharmacology (Phase I) - First administration to humans", ("PHASE1",)),
        ("Therapeutic exploratory (Phase II)", ("PHASE2",)),
        ("Therapeutic confirmatory  (Phase III)", ("PHASE3",)),
        ("Therapeutic use (Phase IV)", ("PHASE4",)),
        ("Phase I and Phase II (Integrated)", ("PHASE1", "PHASE2")),
        ("Phase II and Phase III (Integrated)", ("PHASE2", "PHASE3")),
        ("Phase III and phase IV (Integrated)", ("PHASE3", "PHASE4")),
        ("Phase  II", ("PHASE2",)),
        ("", ()),
        (None, ()),
        ("Other", ()),
    ],
)
def test_phases_from_the_registry_wording(text: str | None, phases: tuple[str, ...]) -> None:
    assert phases_from(text) == phases


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("24/06/2026", date(2026, 6, 24)),
        ("09/07/2026", date(2026, 7, 9)),  # day first: 9 July, not 7 September
        ("1/2/2025", date(2025, 2, 1)),
        (" 31/12/2025 ", date(2025, 12, 31)),
        ("", None),
        (None, None),
    ],
)
def test_day_first_dates(value: str | None, expected: date | None) -> None:
    assert day_first_date(value) == expected


@pytest.mark.parametrize("value", ["2026-06-24", "06/24/2026", "24.06.2026", "24/06/26", 20260624])
def test_what_is_not_a_day_first_date(value: object) -> None:
    with pytest.raises(ValueError, match="not a DD/MM/YYYY date"):
        day_first_date(value)


def test_iso_and_either_form() -> None:
    assert iso_date("2025-09-16T03:39:42.531268872") == date(2025, 9, 16)
    assert iso_date("2024-10-23T08:51:10.847") == date(2024, 10, 23)
    assert iso_date("2026-12-09") == date(2026, 12, 9)
    assert any_date("15/09/2025") == any_date("2025-09-15") == date(2025, 9, 15)
    with pytest.raises(ValueError):
        iso_date("2026-12-09 and more")


def test_country_decisions_string() -> None:
    assert country_decisions("IT: 24/06/2026, ES: 26/06/2026, PL: 29/06/2026, FR: 26/06/2026") == {
        "IT": date(2026, 6, 24),
        "ES": date(2026, 6, 26),
        "PL": date(2026, 6, 29),
        "FR": date(2026, 6, 26),
    }
    assert country_decisions("2024-04-24T15:14:59.077") == {}  # one overall date, not per country
    assert country_decisions(None) == {}
