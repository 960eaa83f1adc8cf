"""Endpoint rules on small measure fragments, the union per role, and the dev set evaluation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker.classify.endpoints import ENDPOINT_KEYS, classify_outcome, trial_endpoints
from tracker.classify.evaluate import TARGETS, read_gold_labels
from tracker.cli import main
from tracker.ctgov.parse import OutcomeMeasure
from tracker.taxonomy import load_taxonomy

FIXTURES = Path(__file__).parent / "fixtures"
ENDPOINT_LABELS = FIXTURES / "endpoint_dev_labels.jsonl"
ENDPOINT_STUDIES = FIXTURES / "endpoint_dev_studies.jsonl.gz"


def keys(measure: str, description: str | None = None, *, drugs: tuple[str, ...] = ()) -> set[str]:
    outcome = OutcomeMeasure("primary", measure, description, None, 0)
    return set(classify_outcome(outcome, drugs).keys)


def test_the_taxonomy_has_20_endpoint_keys_in_8_families() -> None:
    taxonomy = load_taxonomy()
    assert len(taxonomy.endpoints) == 20
    assert len(taxonomy.families("endpoint")) == 8
    assert tuple(item.key for item in taxonomy.endpoints) == ENDPOINT_KEYS


@pytest.mark.parametrize(
    ("measure", "expected"),
    [
        ("Time to 12-week confirmed disability progression (CDP) on EDSS", {"disability_progression"}),
        ("Change from baseline in Expanded Disability Status Scale score", {"disability_progression"}),
        ("Proportion of participants with PIRA events", {"disability_progression"}),
        ("Annualized relapse rate (ARR)", {"relapse"}),
        ("Time to first protocol-defined exacerbation", {"relapse"}),
        ("Cumulative number of new gadolinium-enhancing T1 lesions", {"mri_lesions"}),
        ("Number of new or newly enlarging T2 hyperintense lesions", {"mri_lesions"}),
        ("Percent brain volume change (PBVC) from baseline", {"mri_atrophy"}),
        ("Change in thalamic volume", {"mri_atrophy"}),
        ("Number of paramagnetic rim lesions on susceptibility-weighted imaging", {"smouldering_lesions"}),
        ("Volume of slowly expanding lesions (SEL)", {"smouldering_lesions"}),
        ("Change in magnetization transfer ratio in lesions", {"myelin_repair"}),
        ("Visual evoked potential latency of the affected eye", {"myelin_repair"}),
        ("Low-contrast letter acuity (2.5% Sloan charts)", {"vision"}),
        ("OCT retinal nerve fiber layer thickness", {"vision"}),
        ("Timed 25-Foot Walk (T25FW)", {"walking_mobility"}),
        ("Berg Balance Scale", {"walking_mobility"}),
        ("Nine-Hole Peg Test time, dominant hand", {"upper_limb"}),
        ("Symbol Digit Modalities Test (SDMT) score", {"cognition"}),
        ("Modified Fatigue Impact Scale (MFIS)", {"symptom_scale"}),
        ("Modified Ashworth Scale for spasticity", {"symptom_scale"}),
        ("Number of urge urinary incontinence episodes", {"symptom_scale"}),
        ("Multiple Sclerosis Impact Scale (MSIS-29)", {"quality_of_life"}),
        ("EQ-5D-5L index", {"quality_of_life"}),
        ("Serum neurofilament light chain (sNfL) concentration", {"fluid_biomarker"}),
        ("Percentage of participants with NEDA-3", {"neda"}),
        ("Number of participants with treatment-emergent adverse events", {"safety"}),
        ("Maximum plasma concentration (Cmax) and AUC", {"pharmacology"}),
        ("Seroconversion rate after influenza vaccination", {"vaccine_response"}),
        ("Recruitment and retention rates", {"feasibility"}),
        ("Inter-rater reliability of the app-based test", {"diagnostic_accuracy"}),
        ("VO2 max", {"other"}),
    ],
)
def test_one_key_per_domain(measure: str, expected: set[str]) -> None:
    assert keys(measure) == expected


def test_a_measure_can_carry_several_keys() -> None:
    assert keys("Change in EDSS and relapse rate") == {"disability_progression", "relapse"}
    assert keys("Adverse events and pharmacokinetics (PK)") == {"safety", "pharmacology"}


def test_msfc_parts_named_alone_go_to_their_domains_and_a_composite_stays_whole() -> None:
    assert keys("Time to 6-month confirmed worsening by 20% in the T25FW") == {"walking_mobility"}
    assert keys("Time to 6-month confirmed worsening of SDMT") == {"cognition"}
    assert keys("Change in MSFC z-score") == {"disability_progression"}
    composite = "Time to composite confirmed disability progression (EDSS, T25FW or 9HPT)"
    assert keys(composite) == {"disability_progression"}


def test_recovery_after_a_relapse_is_relapse() -> None:
    assert keys("Recovery of EDSS 3 months after the relapse") == {"relapse"}


def test_progression_independent_of_relapse_is_not_a_relapse_measure() -> None:
    assert keys("Time to progression independent of relapse activity") == {"disability_progression"}


def test_cell_counts_are_pharmacology_when_they_show_the_drug_effect() -> None:
    assert keys("CD19+ B-cell counts in blood") == {"fluid_biomarker"}
    assert keys("CD19+ B-cell depletion after ocrelizumab infusion") == {"pharmacology"}
    assert keys("Change in CD19+ B cells under treatment", drugs=("ublituximab",)) == {"pharmacology"}
    assert keys("Number of B cells in CSF after ublituximab", drugs=("ublituximab",)) == {"pharmacology"}


def test_anti_drug_antibodies_are_pharmacology() -> None:
    assert keys("Percentage of participants with anti-drug antibodies (ADA)") == {"pharmacology"}
    assert keys("Neutralizing antibodies to interferon beta") == {"pharmacology"}


def test_global_impression_and_treatment_satisfaction_are_quality_of_life() -> None:
    assert keys("Patient Global Impression of Change (PGIC)") == {"quality_of_life"}
    assert keys("Treatment Satisfaction Questionnaire for Medication (TSQM)") == {"quality_of_life"}
    assert keys("Satisfaction with the telerehabilitation programme") == {"feasibility"}


def test_bare_mri_is_lesions_and_diffusion_is_repair_and_stool_is_other() -> None:
    assert keys("Brain MRI") == {"mri_lesions"}
    assert keys("Diffusion tensor imaging fractional anisotropy") == {"myelin_repair"}
    assert keys("Gut microbiome composition in stool samples") == {"other"}


def test_every_word_of_a_symptom_pattern_is_tried_not_only_the_first() -> None:
    # "pruritus|itch" was once one pattern, gated by its first word: itching alone was never seen
    assert keys("Itching severity (numeric rating scale)") == {"symptom_scale"}
    assert keys("Swallowing function (DYMUS score)") == {"symptom_scale"}
    assert keys("Pruritis at the application site") == {"symptom_scale"}
    assert keys("Proportion of participants switching therapy") == {"other"}


def test_a_pattern_with_a_top_level_alternative_is_refused() -> None:
    from tracker.classify.endpoints import _Branches

    with pytest.raises(ValueError, match="top-level alternative"):
        _Branches({"symptom_scale": (r"pruritus|itch",)})
    _Branches({"symptom_scale": (r"(?:pruritus|itch)", r"[|]", r"\|")})  # grouped, in a class, escaped


def test_vague_measures_are_other_whatever_the_description_says() -> None:
    assert keys("Efficacy", "Annualised relapse rate at week 96") == {"other"}
    assert keys("Clinical effects") == {"other"}


def test_the_description_is_read_when_the_measure_names_no_domain() -> None:
    assert keys("Functional capacity", "Timed 25-foot walk at week 24") == {"walking_mobility"}
    assert keys("Change in MRI burden", "Measured by the Expanded Disability Status Scale") == {"mri_lesions"}


def test_evidence_names_the_outcome_and_the_words() -> None:
    outcome = OutcomeMeasure("secondary", "Annualized relapse rate and EDSS change", None, None, 3)
    result = classify_outcome(outcome)
    assert result.keys == ("disability_progression", "relapse")
    assert [(e.field, e.text) for e in result.evidence] == [
        ("outcomes.secondary[3].measure", "edss"),
        ("outcomes.secondary[3].measure", "relapse"),
    ]


def test_trial_union_keeps_roles_apart_and_leaves_other_outcomes_out() -> None:
    outcomes = [
        classify_outcome(
            OutcomeMeasure("primary", "Time to confirmed disability progression", None, None, 0)
        ),
        classify_outcome(OutcomeMeasure("secondary", "Annualised relapse rate", None, None, 0)),
        classify_outcome(OutcomeMeasure("secondary", "Confirmed disability worsening", None, None, 1)),
        classify_outcome(OutcomeMeasure("other", "Serum NfL", None, None, 0)),
    ]
    labels = {(label.role, label.key) for label in trial_endpoints(outcomes)}
    assert labels == {
        ("primary", "disability_progression"),
        ("secondary", "relapse"),
        ("secondary", "disability_progression"),
    }
    assert trial_endpoints([]) == ()


def test_dev_set_endpoint_evaluation_meets_the_target(sqlite_url: str, tmp_path: Path) -> None:
    studies = tmp_path / "studies.jsonl"
    studies.write_text(gzip.decompress(ENDPOINT_STUDIES.read_bytes()).decode("utf-8"))
    runner = CliRunner()
    assert runner.invoke(main, ["--database-url", sqlite_url, "import", str(studies)]).exit_code == 0
    result = runner.invoke(
        main, ["--database-url", sqlite_url, "classify", "--evaluate", str(ENDPOINT_LABELS), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["missing"] == [] and len(data["predictions"]) == 129
    assert data["endpoint_micro_f1"] >= TARGETS["endpoint_micro_f1"], data["per_key"]["endpoint"]
    assert data["mechanism_micro_f1"] is None  # endpoint labels only: nothing to say about mechanisms
    assert set(data["per_key"]) == {"endpoint"}
    assert {"endpoints_primary", "endpoints_secondary"} <= set(data["predictions"][0])

    text = runner.invoke(main, ["--database-url", sqlite_url, "classify", "--evaluate", str(ENDPOINT_LABELS)])
    assert "endpoint_micro_f1" in text.output and "mechanism_micro_f1" not in text.output


def test_endpoint_and_mechanism_lines_of_one_trial_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"nct_id": "NCT00000001", "relevance": "ms", "mechanisms": ["anti_cd20"], "phenotypes": ["rms"]}\n'
        '{"nct_id": "nct00000001", "primary": ["relapse"], "secondary": []}\n'
        '{"nct_id": "NCT00000002", "primary": ["safety"]}\n'
    )
    first, second = read_gold_labels(path)
    assert (first.relevance, first.mechanisms, first.endpoints_primary) == (
        "ms",
        ("anti_cd20",),
        ("relapse",),
    )
    assert (second.relevance, second.endpoints_primary, second.endpoints_secondary) == (None, ("safety",), ())
