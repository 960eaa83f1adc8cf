"""Registry identifiers in free text: the messy forms registries and sponsors write; what a record carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracker.ctgov.parse import SecondaryId, parse_study
from tracker.ctis.parse import parse_ctis_record
from tracker.identifiers import RegistryId, carried_ids, own_id, registry_id, registry_ids_in

FIXTURES = Path(__file__).parent / "fixtures"


def nct(value: str) -> RegistryId:
    return RegistryId("nct", value)


def euct(value: str) -> RegistryId:
    return RegistryId("euct", value)


def eudract(value: str) -> RegistryId:
    return RegistryId("eudract", value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the canonical forms
        ("NCT04494412", nct("NCT04494412")),
        ("2024-510663-34-00", euct("2024-510663-34-00")),
        ("2019-001588-63", eudract("2019-001588-63")),
        # case and spacing around the NCT prefix
        ("nct04494412", nct("NCT04494412")),
        (" NCT 04494412 ", nct("NCT04494412")),
        ("NCT-04494412", nct("NCT04494412")),
        ("NCT: 04494412", nct("NCT04494412")),
        ("ClinicalTrials.gov Identifier:NCT04494412", nct("NCT04494412")),
        ("https://clinicaltrials.gov/study/NCT04494412?tab=history", nct("NCT04494412")),
        # prefixes glued on or spelled out
        ("EudraCT No. 2019-001588-63", eudract("2019-001588-63")),
        ("EudraCT number: 2019-001588-63", eudract("2019-001588-63")),
        ("EudraCT2019-001588-63", eudract("2019-001588-63")),
        ("EUDRACT #2019-001588-63", eudract("2019-001588-63")),
        ("EU CT: 2024-510663-34-00", euct("2024-510663-34-00")),
        ("EU-CT number 2024-510663-34-00", euct("2024-510663-34-00")),
        ("EUCT2024-510663-34-00", euct("2024-510663-34-00")),
        ("CTIS 2024-510663-34-00", euct("2024-510663-34-00")),
        # dashes that word processors and PDFs put in place of the hyphen, and spaces around them
        ("2019\u2013001588\u201363", eudract("2019-001588-63")),  # en-dash
        ("2019\u2014001588\u201463", eudract("2019-001588-63")),  # em-dash
        ("2024\u2011510663\u201134\u201100", euct("2024-510663-34-00")),  # non-breaking hyphen
        ("2024\u2212510663\u221234\u221200", euct("2024-510663-34-00")),  # minus sign
        ("2019 - 001588 - 63", eudract("2019-001588-63")),
        ("2024 \u2013 510663 \u2013 34 \u2013 00", euct("2024-510663-34-00")),
        # in parentheses and after punctuation
        ("(EudraCT: 2019-001588-63)", eudract("2019-001588-63")),
        ("EudraCT:2019-001588-63.", eudract("2019-001588-63")),
    ],
)
def test_one_identifier_in_messy_text(text: str, expected: RegistryId) -> None:
    assert registry_ids_in(text) == (expected,)
    assert registry_id(text) == expected


def test_the_eu_ct_number_is_matched_before_its_eudract_shaped_prefix() -> None:
    # A naive EudraCT pattern run first would report 2024-510663-34 as a EudraCT number.
    assert registry_ids_in("2024-510663-34-00") == (euct("2024-510663-34-00"),)
    assert registry_ids_in("EU CT 2024-510663-34-00 (was EudraCT 2019-001588-63)") == (
        euct("2024-510663-34-00"),
        eudract("2019-001588-63"),
    )


def test_several_identifiers_come_back_in_order_each_once() -> None:
    text = "NCT04494412; EudraCT 2019-001588-63; nct 04494412; 2019\u2013001588\u201363; NCT01234567"
    assert registry_ids_in(text) == (nct("NCT04494412"), eudract("2019-001588-63"), nct("NCT01234567"))
    assert registry_id(text) is None  # several: not one identifier


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "N/A",
        "not registered",
        "NCT0449441",  # seven digits
        "NCT044944120",  # nine digits
        "xNCT04494412",  # part of a longer word
        "12019-001588-63",  # more digits before
        "2019-01588-63",  # five-digit middle group
        "1999-001588-63",  # not a 20xx year
        "2019 001588 63",  # spaces alone are not separators
        "ISRCTN48211796",
        "U1111-1281-4920",
        "75,061; 125,097",
    ],
)
def test_text_without_an_identifier(text: str | None) -> None:
    assert registry_ids_in(text) == ()
    assert registry_id(text) is None


def test_a_number_after_a_eudract_number_does_not_lengthen_it() -> None:
    assert registry_ids_in("EudraCT 2019-001588-63 12 sites") == (eudract("2019-001588-63"),)
    assert registry_ids_in("2019-001588-63/IT") == (eudract("2019-001588-63"),)


def test_identifiers_on_separate_lines_are_not_joined() -> None:
    assert registry_ids_in("2019-001588-63\n-00") == (eudract("2019-001588-63"),)


def test_registry_ids_compare_and_print_canonically() -> None:
    assert registry_id("nct 04494412") == registry_id("NCT04494412")
    assert str(registry_id("EudraCT 2019\u2013001588\u201363")) == "2019-001588-63"
    assert sorted({euct("2024-510663-34-00"), nct("NCT04494412")})[0].scheme == "euct"


# --- what a record carries ------------------------------------------------------------------------------


def ctgov_record(secondary: list[dict[str, str]]):  # type: ignore[no-untyped-def]
    ident = {"nctId": "NCT04494412", "secondaryIdInfos": secondary}
    return parse_study({"protocolSection": {"identificationModule": ident}})


def test_own_id_of_each_registry() -> None:
    assert own_id(ctgov_record([])) == nct("NCT04494412")
    raw = json.loads((FIXTURES / "ctis" / "retrieve_2024-510663-34-00.json").read_text())
    assert own_id(parse_ctis_record(raw)) == euct("2024-510663-34-00")


def test_own_id_refuses_an_id_of_the_wrong_shape() -> None:
    record = ctgov_record([])
    record.registry = "ctis"  # an NCT ID is not a CTIS registration ID
    with pytest.raises(ValueError, match="not a ctis registration ID"):
        own_id(record)


def test_carried_ids_read_every_secondary_id_whatever_its_declared_type() -> None:
    record = ctgov_record(
        [
            {"id": "2019-001588-63", "type": "EUDRACT_NUMBER"},
            {"id": "2024-510663-34-00", "type": "EUDRACT_NUMBER"},  # a CTIS number filed as EudraCT
            {"id": "EU CT number: 2023\u2013505613\u201324\u201300", "type": "OTHER", "domain": "CTIS"},
            {"id": "200925", "type": "OTHER", "domain": "GSK study number"},
            {"id": "EudraCT", "type": "OTHER", "domain": "2020-000123-45"},  # swapped fields
        ]
    )
    assert carried_ids(record) == {
        nct("NCT04494412"),
        eudract("2019-001588-63"),
        euct("2024-510663-34-00"),
        euct("2023-505613-24-00"),
        eudract("2020-000123-45"),
    }


def test_carried_ids_of_a_ctis_record_link_its_twin_and_its_eudract_number() -> None:
    raw = json.loads((FIXTURES / "ctis" / "retrieve_2024-510663-34-00.json").read_text())
    assert carried_ids(parse_ctis_record(raw)) == {
        euct("2024-510663-34-00"),
        nct("NCT04494412"),
        eudract("2019-001588-63"),
    }


def test_carried_ids_of_the_two_registrations_of_one_trial_meet() -> None:
    ctis = parse_ctis_record(json.loads((FIXTURES / "ctis" / "retrieve_2025-520148-33-00.json").read_text()))
    ctgov = ctgov_record([{"id": "2025-520148-33-00", "type": "CTIS"}])
    ctgov.registration_id = "NCT06123456"
    assert own_id(ctgov) in carried_ids(ctis)
    assert own_id(ctis) in carried_ids(ctgov)


def test_a_record_without_secondary_ids_carries_its_own_id_only() -> None:
    record = ctgov_record([])
    record.secondary_ids = (SecondaryId("", None, None),)
    assert carried_ids(record) == {nct("NCT04494412")}
