"""The pure classifier, rule by rule, on small study fragments written in the API v2 shape."""

from __future__ import annotations

from typing import Any

import pytest

from tracker.classify.dictionary import (
    canonical,
    compile_dictionary,
    load_agents_data,
    load_dictionary,
    normalise,
)
from tracker.classify.model import ClassificationResult
from tracker.classify.rules import CLASSIFIER_VERSION, classify_study, inclusion_criteria
from tracker.ctgov.parse import parse_study
from tracker.taxonomy import load_taxonomy

_counter = iter(range(10_000_000, 99_999_999))


def study(
    *,
    title: str = "A Study",
    official_title: str | None = None,
    conditions: tuple[str, ...] = ("Multiple Sclerosis",),
    keywords: tuple[str, ...] = (),
    interventions: tuple[Any, ...] = (),
    arms: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
    summary: str | None = None,
    eligibility: str | None = None,
    maximum_age: str | None = None,
    study_type: str = "INTERVENTIONAL",
    condition_mesh: tuple[str, ...] = (),
) -> ClassificationResult:
    """Classify a study built from fragments. An intervention is "NAME", ("TYPE", "NAME") or a dict."""
    items = []
    for item in interventions:
        if isinstance(item, str):
            item = {"type": "DRUG", "name": item}
        elif isinstance(item, tuple):
            item = {"type": item[0], "name": item[1]}
        items.append(item)
    for label, _type, names in arms:
        for item in items:
            if item["name"] in names:
                item.setdefault("armGroupLabels", []).append(label)
    protocol: dict[str, Any] = {
        "identificationModule": {"nctId": f"NCT{next(_counter)}", "briefTitle": title},
        "conditionsModule": {"conditions": list(conditions), "keywords": list(keywords)},
        "designModule": {"studyType": study_type},
        "armsInterventionsModule": {
            "interventions": items,
            "armGroups": [
                {"label": label, "type": arm_type, "interventionNames": list(names)}
                for label, arm_type, names in arms
            ],
        },
        "eligibilityModule": {"eligibilityCriteria": eligibility, "maximumAge": maximum_age},
        "descriptionModule": {"briefSummary": summary},
    }
    if official_title:
        protocol["identificationModule"]["officialTitle"] = official_title
    raw: dict[str, Any] = {"protocolSection": protocol}
    if condition_mesh:
        raw["derivedSection"] = {"conditionBrowseModule": {"meshes": [{"term": t} for t in condition_mesh]}}
    return classify_study(parse_study(raw))


def mechanisms(result: ClassificationResult) -> set[str]:
    return set(result.mechanism_keys)


def phenotypes(result: ClassificationResult) -> set[str]:
    return set(result.phenotype_keys)


# ---------------------------------------------------------------------------------------------------------
# Dictionary


@pytest.mark.parametrize(
    "written", ["SAR442168", "SAR-442168", "SAR 442168", "sar442168 60 mg", "Tolebrutinib"]
)
def test_code_names_match_however_spaced(written: str) -> None:
    assert mechanisms(study(interventions=(written,))) == {"btk_inhibitor"}


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("Ocrevus®", "anti_cd20"),
        ("Kesimpta", "anti_cd20"),
        ("ofatunumab", "anti_cd20"),  # misspelling
        ("Gilenya", "s1p_modulator"),
        ("FTY720", "s1p_modulator"),
        ("BAF312", "s1p_modulator"),
        ("Betaferon/Betaseron", "interferon_beta"),
        ("IFN-β-1a (Rebif®)", "interferon_beta"),
        ("Copolymer 1", "glatiramer"),
        ("BG00012", "fumarate"),
        ("Teriflunomide (HMR1726)", "dhodh_inhibitor"),
        ("Tysabri", "anti_integrin"),
        ("A4I Antagonist", "anti_integrin"),
        ("MabCampath-1h", "anti_cd52"),
        ("Mavenclad®", "cladribine"),
        ("Fampridine-SR", "symptomatic"),
        ("3,4-diaminopyridine", "symptomatic"),
        ("Vitamin D3", "vitamin_d"),
        ("BIIB033 (opicinumab)", "remyelination"),
        ("GNbAC1", "neuroprotection"),
        ("KYV-101 anti-CD19 CAR-T cell therapy", "car_t"),
        ("Autologous mesenchymal stem cells", "msc_cell_therapy"),
        ("25(OH)D3", "vitamin_d"),
        ("Nicotinamid riboside", "diet_supplement"),  # misspelling
        ("Vivomixx®", "diet_supplement"),
        ("Propionic acid 1000 mg capsule", "diet_supplement"),
        ("Coenzyme Q", "diet_supplement"),
    ],
)
def test_brand_names_codes_and_misspellings(written: str, key: str) -> None:
    assert mechanisms(study(interventions=(written,))) == {key}


def test_every_dictionary_mechanism_is_a_taxonomy_key() -> None:
    valid = {item.key for item in load_taxonomy().mechanisms} | {"premedication"}
    data = load_agents_data()
    assert {agent["mechanism"] for agent in data["agents"]} <= valid
    assert set(data["intervention_terms"]) <= valid
    assert set(data["type_fallback"].values()) <= valid


def test_every_agent_named_in_the_taxonomy_is_in_the_dictionary() -> None:
    named = {
        "anti_cd20": ["ocrelizumab", "ofatumumab", "ublituximab", "rituximab", "inebilizumab"],
        "btk_inhibitor": [
            "tolebrutinib",
            "evobrutinib",
            "M2951",
            "GDC-0853",
            "LOU064",
            "orelabrutinib",
            "BIIB091",
        ],
        "s1p_modulator": ["fingolimod", "siponimod", "ozanimod", "RPC1063", "ponesimod", "ceralifimod"],
        "interferon_beta": ["Avonex", "Rebif", "Betaseron", "Betaferon", "Extavia", "Plegridy"],
        "glatiramer": ["Copaxone", "Glatopa"],
        "fumarate": ["dimethyl fumarate", "BG-12", "Tecfidera", "diroximel fumarate", "monomethyl fumarate"],
        "dhodh_inhibitor": ["teriflunomide", "leflunomide", "vidofludimus calcium", "IMU-838"],
        "anti_cd52": ["Lemtrada", "Campath"],
        "immunosuppressant": ["mitoxantrone", "azathioprine", "methotrexate", "mycophenolate", "tacrolimus"],
        "antigen_specific": [
            "ATX-MS-1467",
            "dirucotide",
            "MBP8298",
            "BHT-3009",
            "tolerogenic dendritic cells",
        ],
        "other_immunomodulator": [
            "frexalimab",
            "laquinimod",
            "daclizumab",
            "masitinib",
            "abatacept",
            "ustekinumab",
        ],
        "car_t": ["ATA188"],
        "remyelination": [
            "clemastine",
            "opicinumab",
            "bexarotene",
            "PIPE-307",
            "elezanumab",
            "liothyronine",
            "CNM-Au8",
        ],
        "neuroprotection": [
            "ibudilast",
            "lipoic acid",
            "MD1003",
            "amiloride",
            "riluzole",
            "fluoxetine",
            "phenytoin",
        ],
        "neurotrophic_factor": ["BDNF", "erythropoietin", "IGF-1"],
        "relapse_treatment": [
            "methylprednisolone",
            "prednisone",
            "dexamethasone",
            "Acthar",
            "plasma exchange",
        ],
        "symptomatic": [
            "dalfampridine",
            "nabiximols",
            "baclofen",
            "tizanidine",
            "botulinum toxin",
            "modafinil",
        ],
        "vitamin_d": ["cholecalciferol", "calcitriol", "ergocalciferol"],
        "antiviral_vaccine": ["tenofovir"],
    }
    dictionary = load_dictionary()
    for key, names in named.items():
        for name in names:
            found = [m.agent.mechanism for m in dictionary.specific_agents.find(normalise(name))]
            assert found[:1] == [key], (name, found)


def test_dictionary_refuses_one_name_for_two_mechanisms() -> None:
    data = load_agents_data()
    clash = {"name": "fingolimod clash", "mechanism": "anti_cd20", "synonyms": ["FTY-720"]}
    with pytest.raises(ValueError, match="FTY-720"):
        compile_dictionary({**data, "agents": [*data["agents"], clash]})


def test_canonical_form_ignores_spacing_and_trade_marks() -> None:
    assert canonical("SAR 442168®") == canonical("sar-442168") == "sar442168"


def test_classifier_version_carries_the_taxonomy_version() -> None:
    assert CLASSIFIER_VERSION.startswith(load_taxonomy().version + "+")
    assert len(CLASSIFIER_VERSION) <= 20  # classifications.taxonomy_version is String(20)


# ---------------------------------------------------------------------------------------------------------
# Mechanism rules


def test_placebo_sham_and_usual_care_add_nothing() -> None:
    result = study(interventions=("Ocrelizumab", "Placebo to match ocrelizumab", ("DEVICE", "Sham tDCS")))
    assert mechanisms(result) == {"anti_cd20"}
    assert mechanisms(study(interventions=(("OTHER", "Standard of care"), ("OTHER", "Usual DMT")))) == {
        "none"
    }


def test_no_intervention_listed_is_none() -> None:
    result = study(interventions=(), study_type="OBSERVATIONAL")
    assert result.mechanism_keys == ("none",)


def test_combination_names_are_split_but_placebo_parts_stay_neutral() -> None:
    assert mechanisms(study(interventions=("Placebo plus interferon beta-1a (Rebif)",))) == {
        "interferon_beta"
    }
    assert mechanisms(study(interventions=("Dexrazoxane plus Mitoxantrone",))) == {
        "other",
        "immunosuppressant",
    }


def test_premedication_adds_nothing_but_steroids_always_count() -> None:
    result = study(
        interventions=("Ocrelizumab", "Methylprednisolone", "Antihistamine", "Paracetamol", "rHuPH20")
    )
    assert mechanisms(result) == {"anti_cd20", "relapse_treatment"}


@pytest.mark.parametrize("name", ["Plasma exchange", "IVIG", "Acthar Gel", "Dexamethasone"])
def test_relapse_treatments(name: str) -> None:
    assert mechanisms(study(interventions=(name,))) == {"relapse_treatment"}


def test_conditioning_belongs_to_the_transplant_it_prepares() -> None:
    result = study(
        interventions=(
            ("PROCEDURE", "Autologous hematopoietic stem cell transplantation"),
            "Cyclophosphamide",
            "Anti-thymocyte globulin",
            "Filgrastim",
            "Acyclovir",
        )
    )
    assert mechanisms(result) == {"ahsct"}


def test_conditioning_named_with_the_transplant_only_in_the_title() -> None:
    result = study(title="AHSCT With Fludarabine-based Conditioning in MS", interventions=("Fludarabine",))
    assert mechanisms(result) == {"ahsct"}


def test_cyclophosphamide_outside_a_transplant_is_an_immunosuppressant() -> None:
    assert mechanisms(study(interventions=("Cyclophosphamide",))) == {"immunosuppressant"}


def test_lymphodepletion_belongs_to_the_car_t() -> None:
    result = study(interventions=("KYV-101", "Fludarabine", "Cyclophosphamide"))
    assert mechanisms(result) == {"car_t"}


def test_other_cell_infusions_and_allogeneic_transplants() -> None:
    assert mechanisms(study(interventions=(("BIOLOGICAL", "Allogeneic NK cells"),))) == {"msc_cell_therapy"}
    assert mechanisms(study(interventions=(("PROCEDURE", "Allogeneic stem cell transplantation"),))) == {
        "ahsct"
    }


def test_anti_integrin_and_b_cell_depletion_classes() -> None:
    assert mechanisms(study(interventions=("Firategrast",))) == {"anti_integrin"}
    assert mechanisms(study(interventions=("Inebilizumab",))) == {"anti_cd20"}


def test_measurements_are_diagnostic_and_questionnaires_other() -> None:
    result = study(
        interventions=(
            ("PROCEDURE", "Lumbar puncture"),
            ("DIAGNOSTIC_TEST", "Brain MRI"),
            ("OTHER", "Blood sample"),
            ("OTHER", "Quality of life questionnaire"),
        ),
        study_type="OBSERVATIONAL",
    )
    assert mechanisms(result) == {"diagnostic", "other"}


def test_an_activity_questionnaire_is_not_rehabilitation() -> None:
    result = study(
        interventions=(("OTHER", "International Physical Activity Questionnaire, 6 minute walk test"),)
    )
    assert mechanisms(result) == {"diagnostic", "other"}


@pytest.mark.parametrize(
    ("item", "key"),
    [
        (("BEHAVIORAL", "Aerobic exercise training"), "rehabilitation"),
        (("OTHER", "Robot-assisted gait training (Lokomat)"), "rehabilitation"),
        (("BEHAVIORAL", "Cognitive behavioral therapy for fatigue"), "behavioural"),
        (("BEHAVIORAL", "Mindfulness-based stress reduction"), "behavioural"),
        (("DEVICE", "Transcranial direct current stimulation"), "neuromodulation_device"),
        (("DEVICE", "Cooling vest"), "neuromodulation_device"),
        (("OTHER", "Modified ketogenic diet"), "diet_supplement"),
        (("DIETARY_SUPPLEMENT", "Omega-3 fish oil"), "diet_supplement"),
        (("BIOLOGICAL", "Seasonal influenza vaccine"), "antiviral_vaccine"),
    ],
)
def test_non_drug_interventions(item: tuple[str, str], key: str) -> None:
    assert mechanisms(study(interventions=(item,))) == {key}


@pytest.mark.parametrize(
    ("item", "key"),
    [
        (("OTHER", "Computerized CT (Cognitive Training)"), "rehabilitation"),
        (("DEVICE", "CT-100-D-004-A"), "neuromodulation_device"),  # a code name, not a CT scan
        (("DIAGNOSTIC_TEST", "18F-florbetaben PET/CT"), "diagnostic"),
        (("BEHAVIORAL", "JASPER"), "behavioural"),
        (("OTHER", "Neuropsychological and emotional evaluation"), "diagnostic"),
        (("BEHAVIORAL", "Emotional processing training"), "behavioural"),
    ],
)
def test_abbreviations_and_words_that_mean_two_things(item: tuple[str, str], key: str) -> None:
    assert mechanisms(study(interventions=(item,))) == {key}


def test_follow_up_is_diagnostic_only_when_nothing_else_is_named() -> None:
    assert mechanisms(study(interventions=(("OTHER", "Clinical follow-up"),))) == {"diagnostic"}
    assert mechanisms(study(interventions=(("BEHAVIORAL", "Nurse follow-up coaching calls"),))) == {
        "behavioural"
    }


def test_background_drug_named_only_in_the_title_adds_nothing() -> None:
    result = study(
        title="Ponesimod Add-on in Patients Treated With Dimethyl Fumarate (Tecfidera)",
        interventions=("Ponesimod", "Placebo"),
    )
    assert mechanisms(result) == {"s1p_modulator"}


def test_unknown_drug_falls_back_to_other_with_its_name_as_evidence() -> None:
    result = study(interventions=("XYZ-12345",))
    (label,) = result.mechanisms
    assert label.key == "other"
    assert label.evidence[0].text == "XYZ-12345"


def test_description_is_read_when_the_name_says_nothing() -> None:
    item = {"type": "DRUG", "name": "IDP-9999", "description": "An oral Bruton's tyrosine kinase inhibitor."}
    assert mechanisms(study(interventions=(item,))) == {"btk_inhibitor"}


def test_other_names_are_read() -> None:
    item = {"type": "DRUG", "name": "Study drug A", "otherNames": ["SAR442168"]}
    assert mechanisms(study(interventions=(item,))) == {"btk_inhibitor"}


def test_roles_come_from_arm_groups() -> None:
    result = study(
        interventions=("Remibrutinib", "Teriflunomide", "Placebo"),
        arms=(
            ("Remibrutinib arm", "EXPERIMENTAL", ("Remibrutinib", "Placebo")),
            ("Teriflunomide arm", "ACTIVE_COMPARATOR", ("Teriflunomide", "Placebo")),
        ),
    )
    roles = {label.key: label.role for label in result.mechanisms}
    assert roles == {"btk_inhibitor": "investigational", "dhodh_inhibitor": "comparator"}


def test_role_is_none_without_arm_groups() -> None:
    (label,) = study(interventions=("Natalizumab",)).mechanisms
    assert label.role is None
    assert label.evidence[0].field == "interventions[0].name"


# ---------------------------------------------------------------------------------------------------------
# Relevance


@pytest.mark.parametrize(
    "conditions",
    [
        ("Tuberous Sclerosis Complex", "Epilepsy"),
        ("Amyotrophic Lateral Sclerosis",),
        ("Systemic Sclerosis", "Digital Ulcers"),
        ("Diffuse Cutaneous Systemic Sclerosis",),
        ("Primary Lateral Sclerosis",),
    ],
)
def test_sclerosis_diseases_that_are_not_ms(conditions: tuple[str, ...]) -> None:
    result = study(title="A Trial", conditions=conditions, interventions=("Everolimus",))
    assert result.relevance.key == "not_ms"
    assert result.phenotypes == ()
    assert result.multi_disease is False


def test_ms_trial_with_evidence() -> None:
    result = study(conditions=("Multiple Sclerosis, Relapsing-Remitting",))
    assert result.relevance.key == "ms"
    assert result.relevance.evidence[0].field == "conditions[0]"


@pytest.mark.parametrize(
    "conditions",
    [
        ("Multiple Sclerosis", "Myasthenia Gravis", "CIDP"),
        ("MS (Multiple Sclerosis)", "NMO Spectrum Disorder"),
        ("Parkinson Disease", "Multiple Sclerosis"),
        ("Spinal Cord Injuries", "Stroke", "Multiple Sclerosis"),
    ],
)
def test_multi_disease_trials_keep_their_ms_phenotype(conditions: tuple[str, ...]) -> None:
    result = study(conditions=(*conditions, "Relapsing Multiple Sclerosis"))
    assert result.relevance.key == "ms_plus"
    assert result.multi_disease is True
    assert phenotypes(result) == {"rms"}


def test_other_diseases_named_in_the_title_group_make_ms_plus() -> None:
    result = study(official_title="Intrathecal Rituximab in Multiple Sclerosis and Other Autoimmune Diseases")
    assert result.relevance.key == "ms_plus"


@pytest.mark.parametrize(
    ("official_title", "relevance"),
    [
        ("Detection of Spinal Cord Injuries in Patients With Multiple Sclerosis by MRI", "ms"),
        ("Cognition in Clinically Isolated Syndrome Suggestive of MS: the SCI-COG Study", "ms"),
        ("Botulinum Toxin for Allodynic Pain in SCI and MS", "ms_plus"),
        ("Robot-Assisted Gait Training in Stroke and Multiple Sclerosis", "ms_plus"),
    ],
)
def test_a_title_naming_what_happens_within_the_ms_population_is_not_another_cohort(
    official_title: str, relevance: str
) -> None:
    assert study(official_title=official_title).relevance.key == relevance


def test_ms_symptoms_and_comorbidities_are_not_other_diseases() -> None:
    result = study(
        conditions=("Multiple Sclerosis", "Fatigue", "Depression", "Neuropathic Pain", "Spasticity")
    )
    assert result.relevance.key == "ms"
    comorbidity = study(conditions=("Obstructive Sleep Apnea in Multiple Sclerosis Patients",))
    assert comorbidity.relevance.key == "ms"
    symptom = study(conditions=("Primary Progressive Multiple Sclerosis", "Hemiparesis"))
    assert symptom.relevance.key == "ms"


def test_ms_only_among_keywords_of_another_disease_trial_is_not_ms() -> None:
    result = study(
        conditions=("Asthma",), keywords=("multiple sclerosis", "FTY720"), interventions=("FTY720",)
    )
    assert result.relevance.key == "not_ms"


def test_healthy_volunteer_trial_of_an_ms_drug_is_ms() -> None:
    result = study(conditions=("Healthy Volunteers",), keywords=("Multiple Sclerosis", "GNbAC1"))
    assert result.relevance.key == "ms"


def test_mesh_terms_count_when_present() -> None:
    result = study(conditions=("Demyelinating lesions",), condition_mesh=("Multiple Sclerosis",))
    assert result.relevance.key == "ms"


# ---------------------------------------------------------------------------------------------------------
# Phenotypes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Relapsing-Remitting Multiple Sclerosis", {"rms"}),
        ("Relapsing Forms of Multiple Sclerosis", {"rms"}),
        ("RRMS", {"rms"}),
        ("Secondary Progressive Multiple Sclerosis", {"spms"}),
        ("Non-Active Secondary Progressive Multiple Sclerosis", {"spms"}),
        ("nrSPMS", {"spms"}),
        ("Primary Progressive Multiple Sclerosis", {"ppms"}),
        ("Multiple Progressive Primary Sclerosis", {"ppms"}),
        ("Progressive Multiple Sclerosis", {"progressive_unspecified"}),
        ("Multiple Sclerosis, Chronic Progressive", {"progressive_unspecified"}),
        ("Clinically Isolated Syndrome", {"cis"}),
        ("Radiologically Isolated Syndrome (RIS)", {"ris"}),
        ("Pediatric Multiple Sclerosis", {"pediatric"}),
        ("Multiple Sclerosis", {"ms_unspecified"}),
    ],
)
def test_phenotype_words(text: str, expected: set[str]) -> None:
    assert phenotypes(study(conditions=("Multiple Sclerosis", text))) == expected


def test_progressive_ms_is_dropped_when_the_type_is_named() -> None:
    result = study(
        conditions=("Primary Progressive Multiple Sclerosis", "Secondary Progressive MS"),
        keywords=("Progressive Multiple Sclerosis",),
    )
    assert phenotypes(result) == {"ppms", "spms"}


def test_disability_progression_is_not_progressive_ms() -> None:
    result = study(
        title="Effect of Ocrelizumab on Confirmed Disability Progression in Multiple Sclerosis",
        summary="Time to 12-week confirmed disability progression; progressive muscle weakness is recorded.",
    )
    assert phenotypes(result) == {"ms_unspecified"}
    relaxation = study(title="Progressive Muscle Relaxation for People With Multiple Sclerosis")
    assert phenotypes(relaxation) == {"ms_unspecified"}


def test_progressive_multifocal_leukoencephalopathy_is_not_progressive_ms() -> None:
    result = study(keywords=("progressive multifocal leukoencephalopathy", "natalizumab"))
    assert phenotypes(result) == {"ms_unspecified"}


def test_exclusion_criteria_do_not_count() -> None:
    eligibility = (
        "Inclusion Criteria:\n* Diagnosis of relapsing-remitting multiple sclerosis\n\n"
        "Exclusion Criteria:\n* Primary progressive MS\n* Clinically isolated syndrome"
    )
    assert phenotypes(study(eligibility=eligibility)) == {"rms"}
    assert "Primary progressive" not in (inclusion_criteria(eligibility) or "")


def test_a_summary_adds_phenotypes_only_when_conditions_and_titles_name_none() -> None:
    summary = "Ocrelizumab is approved for relapsing MS; this trial asks whether it slows PPMS further."
    named = study(title="Higher-Dose Ocrelizumab in Primary Progressive Multiple Sclerosis", summary=summary)
    assert phenotypes(named) == {"ppms"}
    unnamed = study(title="Higher-Dose Ocrelizumab in Multiple Sclerosis", summary=summary)
    assert phenotypes(unnamed) == {"rms", "ppms"}
    inclusion = "Inclusion Criteria:\n* Relapsing-remitting or secondary progressive multiple sclerosis"
    assert phenotypes(study(eligibility=inclusion)) == {"rms", "spms"}
    paediatric = study(title="Ofatumumab in Paediatric Multiple Sclerosis", eligibility=inclusion)
    assert phenotypes(paediatric) == {"pediatric", "rms", "spms"}


def test_exclusion_only_phenotype_leaves_ms_unspecified() -> None:
    eligibility = "Inclusion Criteria:\n* Multiple sclerosis\nExclusion Criteria:\n* Primary progressive MS"
    assert phenotypes(study(eligibility=eligibility)) == {"ms_unspecified"}


def test_active_spms_counts_as_relapsing() -> None:
    result = study(
        conditions=("Relapsing Multiple Sclerosis",),
        keywords=("active secondary progressive multiple sclerosis SPMS", "RRMS"),
    )
    assert phenotypes(result) == {"rms"}


def test_relapse_treatment_trials_enrol_relapsing_ms() -> None:
    result = study(title="High-dose Oral Steroids for Acute Relapses of Multiple Sclerosis")
    assert phenotypes(result) == {"rms"}


def test_acute_optic_neuritis_is_cis() -> None:
    result = study(conditions=("Acute Optic Neuritis",), interventions=("Methylprednisolone",))
    assert result.relevance.key == "ms"
    assert phenotypes(result) == {"cis"}


def test_a_first_attack_as_the_outcome_of_a_ris_trial_is_not_cis() -> None:
    result = study(
        title="Assessment of Tecfidera in Radiologically Isolated Syndrome (RIS)",
        official_title="Assessment of Dimethyl Fumarate in Extending the Time to a First Attack in RIS",
        conditions=("Multiple Sclerosis",),
    )
    assert phenotypes(result) == {"ris"}
    first_episode = study(title="Cell Therapy in Patients With a First Clinical Episode Suggestive of MS")
    assert phenotypes(first_episode) == {"cis"}


def test_pediatric_by_maximum_age() -> None:
    result = study(conditions=("Relapsing Remitting Multiple Sclerosis",), maximum_age="17 Years")
    assert phenotypes(result) == {"rms", "pediatric"}


def test_pediatric_word_of_another_disease_does_not_count() -> None:
    result = study(conditions=("Multiple Sclerosis", "Celiac Disease in Children"))
    assert "pediatric" not in phenotypes(result)


def test_not_ms_gets_no_phenotypes() -> None:
    result = study(
        conditions=("Amyotrophic Lateral Sclerosis",), title="Primary progressive muscle weakness in ALS"
    )
    assert result.phenotypes == ()


def test_result_round_trips_through_json() -> None:
    result = study(interventions=("Ocrelizumab",), conditions=("Relapsing Multiple Sclerosis",))
    assert ClassificationResult.from_dict(result.to_dict()) == result


def test_non_relapsing_progressive_forms_are_not_relapsing() -> None:
    result = study(
        official_title="CAR T Therapy in Non-relapsing and Progressive Forms of Multiple Sclerosis",
        conditions=("Multiple Sclerosis, Primary Progressive", "Multiple Sclerosis, Secondary Progressive"),
    )
    assert phenotypes(result) == {"ppms", "spms"}


def test_pms_in_a_title_is_not_progressive_ms() -> None:
    result = study(title="A Postmarketing Surveillance (PMS) Study of an Injector in Multiple Sclerosis")
    assert phenotypes(result) == {"ms_unspecified"}


def test_optic_neuritis_as_a_keyword_of_an_rms_trial_is_not_cis() -> None:
    result = study(conditions=("Relapsing Multiple Sclerosis",), keywords=("Optic Neuritis", "Remyelination"))
    assert phenotypes(result) == {"rms"}


def test_children_of_people_with_ms_are_not_paediatric_ms() -> None:
    result = study(title="Immune System Effects in Children Born to Women With Multiple Sclerosis")
    assert phenotypes(result) == {"ms_unspecified"}
    first_attack = study(title="Avonex Therapy Following a First Attack of Multiple Sclerosis")
    assert phenotypes(first_attack) == {"cis"}


def test_uninformative_comparator_names_add_nothing() -> None:
    result = study(
        interventions=("Ocrelizumab", ("OTHER", "Active comparator"), ("BEHAVIORAL", "Control group B"))
    )
    assert mechanisms(result) == {"anti_cd20"}


def test_a_drug_delivery_device_adds_nothing_to_its_drug() -> None:
    result = study(interventions=("Cannabis, Medical", ("DEVICE", "RYAH-Medtech Inhaler")))
    assert mechanisms(result) == {"symptomatic"}
    injector = study(interventions=(("DEVICE", "Single-use autoinjector"), "BG9418 (interferon beta-1a)"))
    assert mechanisms(injector) == {"interferon_beta"}


def test_an_unnamed_device_in_an_assessment_battery_measures() -> None:
    result = study(
        interventions=(
            ("OTHER", "Questionnaires"),
            ("BIOLOGICAL", "Blood sample"),
            ("DEVICE", "Capacity of muscular oxygen extraction"),
        )
    )
    assert mechanisms(result) == {"diagnostic", "other"}
    therapy = study(interventions=(("DEVICE", "Exopulse Mollii suit"), ("DEVICE", "NovelStim 3000")))
    assert mechanisms(therapy) == {"neuromodulation_device"}


def test_optic_neuritis_said_not_to_be_ms_is_not_ms() -> None:
    result = study(
        title="Optical Coherence Tomography and Optic Neuritis Not Related to Multiple Sclerosis",
        conditions=("Optic Neuritis",),
    )
    assert result.relevance.key == "not_ms"


# --- unnamed programmes, devices and codes: the title as context -------------------------------------------


@pytest.mark.parametrize(
    ("title", "intervention", "expected"),
    [
        ("Pilates Training in Multiple Sclerosis", ("OTHER", "MSFIT"), {"rehabilitation"}),
        (
            "A Multicomponent Walking Aid Program for People With MS",
            ("BEHAVIORAL", "ADSTEP"),
            {"rehabilitation"},
        ),
        (
            "Physical Telerehabilitation in MS",
            ("DEVICE", "Home Automated Telemanagement system"),
            {"rehabilitation"},
        ),
        (
            "Spinal Direct Current Stimulation for Pain in MS",
            ("OTHER", "Experimental treatment"),
            {"neuromodulation_device"},
        ),
        (
            "Online Sleep Programme Using Cognitive Behavioural Therapy",
            ("BEHAVIORAL", "iSLEEP"),
            {"behavioural"},
        ),
        ("Firategrast Formulations in MS", ("DRUG", "Formulation A"), {"anti_integrin"}),
        ("Biosimilar Natalizumab XB-123 Versus Tysabri", ("BIOLOGICAL", "XB-123"), {"anti_integrin"}),
    ],
)
def test_the_title_names_an_unnamed_intervention(
    title: str, intervention: tuple[str, str], expected: set[str]
) -> None:
    assert mechanisms(study(title=title, interventions=(intervention,))) == expected


def test_the_title_does_not_name_a_background_drug() -> None:
    result = study(title="A Study of XR-101 in Patients Treated With Natalizumab", interventions=("XR-101",))
    assert mechanisms(result) == {"other"}


def test_title_words_a_named_intervention_accounts_for_are_not_reused() -> None:
    result = study(
        title="Expiratory Muscle Conditioning Using Magnetic Stimulation",
        interventions=(("OTHER", "Functional Magnetic Stimulation"), ("OTHER", "Resistive Muscle Training")),
    )
    assert mechanisms(result) == {"neuromodulation_device", "rehabilitation"}


def test_a_title_about_a_measure_names_no_intervention() -> None:
    result = study(
        title="Validity and Reliability of the Dual-task Questionnaire",
        interventions=(("PROCEDURE", "validity and reliability study"),),
    )
    assert mechanisms(result) == {"other"}


def test_electrotherapy_is_electrical_stimulation() -> None:
    assert mechanisms(study(interventions=(("DEVICE", "Electrotherapy"),))) == {"neuromodulation_device"}


def test_a_word_inside_a_longer_match_is_part_of_it() -> None:
    # "withdrawal" alone is stopping a drug (other); in "blood withdrawal" it is sampling
    assert mechanisms(study(interventions=(("PROCEDURE", "Blood withdrawal"),))) == {"diagnostic"}


def test_an_apheresis_is_a_plasma_exchange() -> None:
    assert mechanisms(study(interventions=(("OTHER", "Apheresis therapy"),))) == {"relapse_treatment"}
