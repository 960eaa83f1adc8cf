"""Eligibility facets on realistic MS criteria fragments, and on a whole record."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from tracker.classify.eligibility import classify_eligibility, edss_range, prior_treatment, split_criteria
from tracker.ctgov.parse import parse_study

FIXTURES = Path(__file__).parent / "fixtures"


def edss(inclusion: str) -> dict[str, str]:
    return {facet.name: facet.value for facet in edss_range(inclusion)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("* EDSS 0–5.5 inclusive at screening", {"edss_min": "0.0", "edss_max": "5.5"}),
        ("* EDSS score between 3.0 and 6.5 inclusive", {"edss_min": "3.0", "edss_max": "6.5"}),
        ("* EDSS ≤ 6.0 at screening", {"edss_max": "6.0"}),
        ("- have an EDSS of 2.0 to 6.5 at baseline", {"edss_min": "2.0", "edss_max": "6.5"}),
        (
            "3. Expanded Disability Status Scale (EDSS) score of 3.0-6.5 points, inclusive",
            {"edss_min": "3.0", "edss_max": "6.5"},
        ),
        ("* EDSS score >= 2.0 and <= 6.5", {"edss_min": "2.0", "edss_max": "6.5"}),
        ("* EDSS score of 5.5 or less", {"edss_max": "5.5"}),
        ("* EDSS < 6", {"edss_max": "5.5"}),  # strictly below 6.0: the last EDSS step is 5.5
        ("* EDSS > 3.0", {"edss_min": "3.5"}),
        ("* Aged 18-55 years with an EDSS of at least 3.0", {"edss_min": "3.0"}),
        ("* Diagnosis of RRMS (McDonald 2017)", {}),
        ("* Able to walk 100 m (EDSS assessed at screening)", {}),
    ],
)
def test_edss_range_from_inclusion_text(text: str, expected: dict[str, str]) -> None:
    assert edss(text) == expected


def test_the_widest_range_over_several_mentions() -> None:
    text = "* RRMS: EDSS 0-5.5\n* SPMS: EDSS 3.0-6.5\n"
    assert edss(text) == {"edss_min": "0.0", "edss_max": "6.5"}


def test_exclusion_criteria_edss_does_not_count() -> None:
    criteria = (
        "Inclusion Criteria:\n* Relapsing MS\n* Age 18 to 55 years\n\n"
        "Exclusion Criteria:\n* EDSS > 5.5 at screening\n* EDSS score of 7.0 or more\n"
    )
    inclusion, exclusion = split_criteria(criteria)
    assert "EDSS" in exclusion and "EDSS" not in inclusion
    assert edss(inclusion) == {}


def test_evidence_quotes_the_inclusion_words() -> None:
    (low, high) = edss_range("* EDSS score between 3.0 and 6.5 inclusive at screening")
    assert low.evidence[0].field == "eligibility_criteria.inclusion"
    assert "between 3.0 and 6.5" in high.evidence[0].text


def facets(inclusion: str, exclusion: str = "") -> set[tuple[str, str]]:
    return {(facet.name, facet.value) for facet in prior_treatment(inclusion, exclusion)}


def test_treatment_naive_required() -> None:
    assert facets("* Treatment-naive patients with early RRMS") == {("prior_treatment", "treatment_naive")}
    assert facets("* Never been treated with any disease-modifying therapy") == {
        ("prior_treatment", "treatment_naive")
    }
    assert facets("", "* Any prior treatment with a disease-modifying therapy") == {
        ("prior_treatment", "treatment_naive")
    }


def test_a_washout_is_not_treatment_naive() -> None:
    assert facets("", "* Any previous disease-modifying therapy within 3 months of baseline") == set()


def test_prior_dmt_failure_required() -> None:
    text = "* Inadequate response to at least one prior DMT (interferon beta or glatiramer acetate)"
    assert facets(text) == {("prior_treatment", "prior_dmt_failure")}
    assert facets("* Breakthrough disease despite treatment with a first-line therapy") == {
        ("prior_treatment", "prior_dmt_failure")
    }
    assert facets("* Failed the screening visit") == set()  # no therapy named


def test_named_prior_therapies_excluded() -> None:
    exclusion = (
        "* Prior treatment with alemtuzumab, ocrelizumab or cladribine\n"
        "* Known allergy to paracetamol\n"
        "* Current use of natalizumab is allowed\n"
    )
    found = facets("", exclusion)
    assert {value for name, value in found if name == "excluded_therapy"} >= {
        "alemtuzumab",
        "ocrelizumab",
        "cladribine",
    }
    assert not any("paracetamol" in value for _, value in found)


def record_with(criteria: str, **eligibility: Any) -> Any:
    with gzip.open(FIXTURES / "endpoint_dev_studies.jsonl.gz", "rt") as lines:
        raw = json.loads(next(iter(lines)))
    raw = copy.deepcopy(raw)
    module = raw["protocolSection"].setdefault("eligibilityModule", {})
    module.clear()
    module.update({"eligibilityCriteria": criteria, **eligibility})
    return parse_study(raw)


def test_whole_record_facets_with_structured_fields_and_escaped_markdown() -> None:
    record = record_with(
        "Inclusion Criteria:\n\n* Diagnosis of relapsing MS\n* EDSS score \\>= 1.0 and \\<= 5.5\n\n"
        "Exclusion Criteria:\n\n* EDSS \\> 6.5\n* Previous treatment with rituximab\n",
        minimumAge="18 Years",
        maximumAge="55 Years",
        sex="FEMALE",
        healthyVolunteers=False,
    )
    result = {(facet.name, facet.value) for facet in classify_eligibility(record)}
    assert result == {
        ("age_min", "18"),
        ("age_max", "55"),
        ("sex", "female"),
        ("healthy_volunteers", "no"),
        ("edss_min", "1.0"),
        ("edss_max", "5.5"),
        ("excluded_therapy", "rituximab"),
    }


def test_a_record_without_criteria_has_only_its_structured_facets() -> None:
    assert {facet.name for facet in classify_eligibility(record_with("", sex="ALL"))} == {"sex"}
