"""Which registrations are one trial: hand-made pairs through the pure linking rules."""

from __future__ import annotations

import itertools

from tracker.identifiers import RegistryId
from tracker.linking import LinkDecision, RegistrationIds, link_trials

NCT_A, NCT_B = "NCT04494412", "NCT05000001"
EUCT_A, EUCT_B = "2024-510663-34-00", "2025-523726-40-00"
EUDRACT_A, EUDRACT_B = "2019-001588-63", "2020-004321-11"


def ctgov(nct: str, *carried: RegistryId) -> RegistrationIds:
    return RegistrationIds(nct, "ctgov", frozenset({RegistryId("nct", nct), *carried}))


def ctis(euct: str, *carried: RegistryId) -> RegistrationIds:
    return RegistrationIds(euct, "ctis", frozenset({RegistryId("euct", euct), *carried}))


def nct(value: str) -> RegistryId:
    return RegistryId("nct", value)


def euct(value: str) -> RegistryId:
    return RegistryId("euct", value)


def eudract(value: str) -> RegistryId:
    return RegistryId("eudract", value)


def test_a_ctis_record_naming_its_nct_twin_joins_it_under_the_nct_id() -> None:
    trials = link_trials([ctis(EUCT_A, nct(NCT_A)), ctgov(NCT_A)])
    assert trials == {EUCT_A: NCT_A, NCT_A: NCT_A}


def test_a_ctgov_record_naming_the_eudract_number_a_ctis_trial_moved_from() -> None:
    trials = link_trials([ctgov(NCT_A, eudract(EUDRACT_A)), ctis(EUCT_A, eudract(EUDRACT_A))])
    assert trials[EUCT_A] == NCT_A


def test_a_ctgov_record_naming_the_ctis_number() -> None:
    assert link_trials([ctgov(NCT_A, euct(EUCT_A)), ctis(EUCT_A)])[EUCT_A] == NCT_A


def test_conflicting_eudract_numbers_never_link() -> None:
    # The CTIS record names NCT_A as its twin, but the two carry different EudraCT numbers.
    trials = link_trials([ctis(EUCT_A, nct(NCT_A), eudract(EUDRACT_B)), ctgov(NCT_A, eudract(EUDRACT_A))])
    assert trials == {EUCT_A: EUCT_A, NCT_A: NCT_A}


def test_a_ctgov_record_naming_another_ctis_number_is_not_linked_to_a_record_naming_it() -> None:
    trials = link_trials([ctis(EUCT_A, nct(NCT_A)), ctis(EUCT_B), ctgov(NCT_A, euct(EUCT_B))])
    assert trials == {EUCT_A: EUCT_A, EUCT_B: NCT_A, NCT_A: NCT_A}


def test_two_registrations_of_one_registry_never_become_one_trial() -> None:
    # Two ClinicalTrials.gov records that share a EudraCT number (a parent study and its extension).
    trials = link_trials([ctgov(NCT_A, eudract(EUDRACT_A)), ctgov(NCT_B, eudract(EUDRACT_A))])
    assert trials == {NCT_A: NCT_A, NCT_B: NCT_B}


def test_an_ambiguous_eudract_number_links_the_ctis_record_to_the_one_it_names() -> None:
    trials = link_trials(
        [
            ctgov(NCT_A, eudract(EUDRACT_A)),
            ctgov(NCT_B, eudract(EUDRACT_A)),
            ctis(EUCT_A, eudract(EUDRACT_A), nct(NCT_B)),
        ]
    )
    assert trials == {NCT_A: NCT_A, NCT_B: NCT_B, EUCT_A: NCT_B}


def test_the_outcome_never_depends_on_the_order_registrations_arrive_in() -> None:
    registrations = [
        ctgov(NCT_A, eudract(EUDRACT_A)),
        ctgov(NCT_B, eudract(EUDRACT_A)),
        ctis(EUCT_A, eudract(EUDRACT_A)),
        ctis(EUCT_B, nct(NCT_B)),
    ]
    outcomes = {
        tuple(sorted(link_trials(list(order)).items())) for order in itertools.permutations(registrations)
    }
    assert len(outcomes) == 1


def test_a_manual_link_joins_what_the_identifiers_do_not_and_an_unlink_separates() -> None:
    registrations = [ctgov(NCT_A), ctis(EUCT_A, nct(NCT_A)), ctis(EUCT_B)]
    linked = link_trials(registrations, [LinkDecision(EUCT_B, NCT_A, "link")])
    assert linked[EUCT_B] == NCT_A
    apart = link_trials(registrations, [LinkDecision(EUCT_A, NCT_A, "unlink")])
    assert apart == {NCT_A: NCT_A, EUCT_A: EUCT_A, EUCT_B: EUCT_B}


def test_a_ctis_only_trial_is_its_own_trial() -> None:
    assert link_trials([ctis(EUCT_A)]) == {EUCT_A: EUCT_A}
