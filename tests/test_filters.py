"""TrialFilter: validation, dict and URL round trips, and application to the trial frame."""

from __future__ import annotations

import pandas as pd
import pytest

from tracker.errors import FilterError
from tracker.filters import TrialFilter, apply_filter


def frame() -> pd.DataFrame:
    rows = [
        (
            "NCT00000001",
            "ms",
            ("btk_inhibitor",),
            ("spms",),
            ("PHASE3",),
            "RECRUITING",
            "INDUSTRY",
            2023,
            True,
            False,
            ("United States", "Korea, Republic of"),
            "Novartis, Inc.",
        ),
        (
            "NCT00000002",
            "ms_plus",
            ("anti_cd20", "interferon_beta"),
            ("rms", "ppms"),
            ("PHASE2", "PHASE3"),
            "COMPLETED",
            "NIH",
            2015,
            False,
            True,
            ("Germany",),
            "NINDS",
        ),
        (
            "NCT00000003",
            "not_ms",
            ("other",),
            (),
            ("NA",),
            "RECRUITING",
            "OTHER",
            2020,
            False,
            False,
            (),
            "University",
        ),
    ]
    columns = [
        "registration_id",
        "relevance",
        "mechanisms",
        "phenotypes",
        "phases",
        "overall_status",
        "lead_sponsor_class",
        "start_year",
        "has_results",
        "multi_disease",
        "countries",
        "lead_sponsor_name",
    ]
    data = pd.DataFrame(rows, columns=columns)
    data["sponsor_category"] = data["lead_sponsor_class"].map(
        {"INDUSTRY": "industry", "NIH": "government", "OTHER": "academic_other"}
    )
    # the second trial compares its anti-CD20 antibody with interferon beta
    data["comparator_mechanisms"] = [(), ("interferon_beta",), ()]
    data["investigational_mechanisms"] = [("btk_inhibitor",), ("anti_cd20",), ("other",)]
    data["study_type"] = "INTERVENTIONAL"
    data["removed"] = [False, False, False]
    data["search_text"] = (data["registration_id"] + " tolebrutinib " + data["lead_sponsor_name"]).str.lower()
    return data


def ids(trial_filter: TrialFilter) -> list[str]:
    return list(apply_filter(frame(), trial_filter)["registration_id"])


def test_default_hides_not_ms() -> None:
    assert ids(TrialFilter()) == ["NCT00000001", "NCT00000002"]
    assert len(ids(TrialFilter(relevance=()))) == 3


@pytest.mark.parametrize(
    ("trial_filter", "expected"),
    [
        (TrialFilter(mechanisms=("btk_inhibitor", "s1p_modulator")), ["NCT00000001"]),
        (TrialFilter(phenotypes=("ppms",)), ["NCT00000002"]),
        (TrialFilter(phases=("PHASE3",)), ["NCT00000001", "NCT00000002"]),
        (TrialFilter(statuses=("active",)), ["NCT00000001"]),
        (TrialFilter(sponsor_classes=("government",)), ["NCT00000002"]),
        (TrialFilter(countries=("Korea, Republic of",)), ["NCT00000001"]),
        (TrialFilter(start_year_min=2016, start_year_max=2024), ["NCT00000001"]),
        (TrialFilter(has_results=True), ["NCT00000001"]),
        (TrialFilter(multi_disease=True), ["NCT00000002"]),
        (TrialFilter(text="NINDS"), ["NCT00000002"]),
        (TrialFilter(lead_sponsors=("Novartis, Inc.",), phenotypes=("rms",)), []),
    ],
)
def test_each_field_narrows(trial_filter: TrialFilter, expected: list[str]) -> None:
    assert ids(trial_filter.validate()) == expected


def test_removed_trials_are_hidden_unless_asked_for() -> None:
    data = frame()
    data.loc[0, "removed"] = True
    assert list(apply_filter(data, TrialFilter())["registration_id"]) == ["NCT00000002"]
    assert len(apply_filter(data, TrialFilter(include_removed=True))) == 2


def test_comparator_mechanisms_match_only_when_asked_for() -> None:
    assert ids(TrialFilter(mechanisms=("interferon_beta",))) == []
    assert ids(TrialFilter(mechanisms=("interferon_beta",), include_comparators=True)) == ["NCT00000002"]
    assert ids(TrialFilter(mechanisms=("anti_cd20",))) == ["NCT00000002"]


def test_include_comparators_round_trips() -> None:
    trial_filter = TrialFilter(include_comparators=True)
    assert trial_filter.to_dict() == {"include_comparators": True}
    assert TrialFilter.from_dict(trial_filter.to_dict()) == trial_filter
    assert TrialFilter.from_query_params(trial_filter.to_query_params()) == (trial_filter, [])
    assert "comparators" in trial_filter.describe()
    assert trial_filter.mechanism_column == "mechanisms"
    assert TrialFilter().mechanism_column == "investigational_mechanisms"


def test_active_shortcut_expands() -> None:
    assert TrialFilter(statuses=("active", "COMPLETED")).expanded_statuses == (
        "NOT_YET_RECRUITING",
        "RECRUITING",
        "ENROLLING_BY_INVITATION",
        "ACTIVE_NOT_RECRUITING",
        "COMPLETED",
    )


@pytest.mark.parametrize(
    "data",
    [
        {"mechanisms": ["nope"]},
        {"phases": ["PHASE7"]},
        {"statuses": ["sleeping"]},
        {"start_year_min": "soon"},
        {"has_results": "maybe"},
        {"start_year_min": 2030, "start_year_max": 2020},
        {"colour": "blue"},
    ],
)
def test_bad_values_are_refused_with_one_line(data: dict) -> None:
    with pytest.raises(FilterError) as caught:
        TrialFilter.from_dict(data)
    assert "\n" not in str(caught.value)


def test_unknown_mechanism_error_lists_valid_keys() -> None:
    with pytest.raises(FilterError, match="btk_inhibitor"):
        TrialFilter.from_dict({"mechanisms": ["btk"]})


def test_dict_and_query_param_round_trips() -> None:
    original = TrialFilter(
        text="tolebrutinib",
        relevance=(),
        mechanisms=("btk_inhibitor",),
        statuses=("active",),
        lead_sponsors=("Novartis, Inc.",),
        countries=("Korea, Republic of",),
        start_year_min=2018,
        has_results=False,
        include_removed=True,
    )
    assert TrialFilter.from_dict(original.to_dict()) == original
    parsed, warnings = TrialFilter.from_query_params(original.to_query_params())
    assert (parsed, warnings) == (original, [])
    assert TrialFilter().to_dict() == {}


def test_bad_url_parameters_fall_back_with_a_notice() -> None:
    parsed, warnings = TrialFilter.from_query_params(
        {"mechanisms": "anti_cd20", "phases": "PHASE9", "start_year_min": "x", "trial": "NCT00000001"}
    )
    assert parsed == TrialFilter(mechanisms=("anti_cd20",))
    assert len(warnings) == 2


def test_describe_names_the_filter() -> None:
    assert TrialFilter().describe() == "all MS trials"
    text = TrialFilter(mechanisms=("btk_inhibitor",), phenotypes=("spms",)).describe()
    assert "BTK inhibitor" in text and "Secondary progressive MS" in text


def test_relevance_all_means_every_relevance_in_dicts_and_links() -> None:
    assert TrialFilter.from_dict({"relevance": "all"}) == TrialFilter(relevance=())
    assert TrialFilter.from_dict({"relevance": ["ALL"]}) == TrialFilter(relevance=())
    assert TrialFilter(relevance=()).to_query_params() == {"relevance": "all"}
    assert TrialFilter.from_query_params({"relevance": "all"}) == (TrialFilter(relevance=()), [])
    # "all" among other keys is not the shortcut: it is an unknown key.
    _parsed, warnings = TrialFilter.from_query_params({"relevance": ["ms", "all"]})
    assert warnings
