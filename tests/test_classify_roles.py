"""Arm roles without arm groups: comparators read from titles and from the interventions' own words."""

from __future__ import annotations

import pytest

from tests.test_classify_rules import study
from tracker.classify.dictionary import load_dictionary
from tracker.classify.model import ClassificationResult
from tracker.classify.roles import title_roles


def roles(result: ClassificationResult) -> dict[str, str | None]:
    return {label.key: label.role for label in result.mechanisms}


def from_title(title: str) -> dict[str, str]:
    return {key: cue.role for key, cue in title_roles(load_dictionary(), [("brief_title", title)]).items()}


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (
            "A Study of Fenebrutinib Compared With Ocrelizumab in Adults With PPMS",
            {"btk_inhibitor": "investigational", "anti_cd20": "comparator"},
        ),
        (
            "Ponesimod Versus Teriflunomide",
            {"s1p_modulator": "investigational", "dhodh_inhibitor": "comparator"},
        ),
        (
            "Daily fingolimod vs. weekly Avonex",
            {"s1p_modulator": "investigational", "interferon_beta": "comparator"},
        ),
        (
            "Daily fingolimod vs weekly Avonex",
            {"s1p_modulator": "investigational", "interferon_beta": "comparator"},
        ),
        (
            "Ocrelizumab in Comparison With Interferon Beta-1a (Rebif) in RMS",
            {"anti_cd20": "investigational", "interferon_beta": "comparator"},
        ),
        (
            "A Study Comparing SAR442168 to Teriflunomide (Aubagio) in RMS",
            {"btk_inhibitor": "investigational", "dhodh_inhibitor": "comparator"},
        ),
        (
            "A Randomized, Double-blind, Interferon Beta-1a-controlled Study",
            {"interferon_beta": "comparator"},
        ),
        ("A Placebo and Avonex Controlled Dose Finding Study", {"interferon_beta": "comparator"}),
        ("A Placebo-Controlled Study of Ibudilast in Progressive MS", {"neuroprotection": "investigational"}),
        # one class on both sides compares members of the class: no comparator
        ("Rituximab Versus Ocrelizumab in Relapsing MS", {"anti_cd20": "investigational"}),
    ],
)
def test_roles_from_title_fragments(title: str, expected: dict[str, str]) -> None:
    assert from_title(title) == expected


@pytest.mark.parametrize(
    "title",
    [
        "Double-blind Versus Placebo Study Evaluating Cholecalciferol in CIS",  # the comparator is placebo
        "Ocrelizumab Versus Standard of Care",
        "A Study of Natalizumab in RRMS",
        "Effect of Fingolimod With Fish Oil Compared to Fingolimod With Placebo",
        "Comparing Patients Changing From Glatiramer Acetate to Interferon Beta-1a",
    ],
)
def test_titles_that_name_no_comparator(title: str) -> None:
    assert "comparator" not in from_title(title).values()


def test_the_comparator_of_a_title_is_not_counted_as_studied() -> None:
    result = study(
        title="Fenebrutinib Compared With Ocrelizumab in Primary Progressive MS",
        interventions=("Fenebrutinib", "Ocrelizumab", "Placebo matched to ocrelizumab"),
    )
    assert roles(result) == {"btk_inhibitor": "investigational", "anti_cd20": "comparator"}
    (anti_cd20,) = [label for label in result.mechanisms if label.key == "anti_cd20"]
    assert anti_cd20.role_evidence[0].field == "brief_title"
    assert anti_cd20.role_evidence[0].text == "fenebrutinib compared with ocrelizumab"
    # the evidence survives the stored JSON
    stored = ClassificationResult.from_dict(result.to_dict())
    assert stored.mechanisms == result.mechanisms


def test_official_title_decides_when_the_brief_title_does_not_compare() -> None:
    result = study(
        title="Study of Evobrutinib in RMS",
        official_title="An Active Controlled Study of Evobrutinib Compared With Teriflunomide, in RMS",
        interventions=("Evobrutinib", "Teriflunomide"),
    )
    assert roles(result) == {"btk_inhibitor": "investigational", "dhodh_inhibitor": "comparator"}
    assert result.mechanisms[0].role_evidence[0].field == "official_title"


def test_an_intervention_named_as_the_comparator() -> None:
    result = study(
        title="Visual Recovery After Optic Neuritis",
        interventions=("Verum arm receiving Gilenya", "Active Comparator receiving Extavia"),
    )
    assert roles(result) == {"s1p_modulator": None, "interferon_beta": "comparator"}


def test_an_intervention_described_as_the_comparator() -> None:
    item = {"type": "DRUG", "name": "Interferon beta-1a", "description": "Reference drug, 30 mcg weekly"}
    result = study(title="A Study of RNS60 in RRMS", interventions=("RNS60", item))
    assert roles(result)["interferon_beta"] == "comparator"


def test_a_class_is_a_comparator_only_when_each_of_its_interventions_is() -> None:
    result = study(
        title="Telerehabilitation of Cognitive Impairment",
        interventions=("Telerehabilitation: active procedure", "Telerehabilitation: comparator procedure"),
    )
    assert roles(result) == {"rehabilitation": None}


def test_sham_comparator_is_not_an_active_comparator() -> None:
    result = study(title="tDCS in MS", interventions=("tDCS", "Sham Comparator: sham tDCS"))
    assert roles(result) == {"neuromodulation_device": None}


def test_an_inference_that_leaves_nothing_investigated_is_dropped() -> None:
    # a biosimilar "versus" its reference product: both natalizumab, neither side is only a comparator
    result = study(title="PB006 Versus Tysabri in RRMS", interventions=("Natalizumab (reference product)",))
    assert roles(result) == {"anti_integrin": None}


def test_arm_groups_win_over_the_title() -> None:
    result = study(
        title="Teriflunomide Versus Remibrutinib",  # the registry's arms say otherwise
        interventions=("Remibrutinib", "Teriflunomide"),
        arms=(
            ("Remibrutinib arm", "EXPERIMENTAL", ("Remibrutinib",)),
            ("Teriflunomide arm", "ACTIVE_COMPARATOR", ("Teriflunomide",)),
        ),
    )
    assert roles(result) == {"btk_inhibitor": "investigational", "dhodh_inhibitor": "comparator"}
    assert result.mechanisms[0].role_evidence[0].field == "interventions[0].arm_group_labels"
