"""diff_snapshots: one test per change kind, on real records edited the way the registry edits them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from tracker.changes import Change, diff_snapshots, parse_date_value, snapshot_of
from tracker.ctgov.parse import parse_study

STUDY = json.loads((Path(__file__).parent / "fixtures/ctgov/studies/NCT06171568.json").read_text())


def edited(edit) -> dict:  # type: ignore[no-untyped-def]
    raw = copy.deepcopy(STUDY)
    edit(raw["protocolSection"], raw)
    return raw


def changes(edit) -> list[Change]:  # type: ignore[no-untyped-def]
    return diff_snapshots(snapshot_of(parse_study(STUDY)), snapshot_of(parse_study(edited(edit))))


def test_first_sighting_is_new() -> None:
    assert diff_snapshots(None, snapshot_of(parse_study(STUDY))) == [
        Change("new", None, None, "NOT_YET_RECRUITING")
    ]


def test_identical_content_gives_nothing() -> None:
    assert changes(lambda p, r: None) == []


def test_status_change_with_why_stopped() -> None:
    def stop(protocol, _raw):  # type: ignore[no-untyped-def]
        protocol["statusModule"].update(overallStatus="TERMINATED", whyStopped="Sponsor decision")

    assert changes(stop) == [
        Change("status", "overall_status", "NOT_YET_RECRUITING", "TERMINATED"),
        Change("status", "why_stopped", None, "Sponsor decision"),
    ]


def test_phase_change() -> None:
    got = changes(lambda p, r: p["designModule"].update(phases=["PHASE2", "PHASE3"]))
    assert got == [Change("phase", "phases", None, "PHASE2, PHASE3")]


def test_each_date_moves_with_its_type() -> None:
    def slip(protocol, _raw):  # type: ignore[no-untyped-def]
        status = protocol["statusModule"]
        status["startDateStruct"] = {"date": "2024-03", "type": "ACTUAL"}
        status["primaryCompletionDateStruct"] = {"date": "2027-06-30", "type": "ESTIMATED"}
        status["completionDateStruct"] = {"date": "2028"}

    kinds = {c.kind: (c.old, c.new) for c in changes(slip)}
    assert kinds["start_date"] == ("2024-02-01 (ESTIMATED)", "2024-03 (ACTUAL)")
    assert kinds["primary_completion_date"][1] == "2027-06-30 (ESTIMATED)"
    assert kinds["completion_date"][1] == "2028"


def test_enrollment_count_and_type() -> None:
    got = changes(lambda p, r: p["designModule"].update(enrollmentInfo={"count": 12, "type": "ACTUAL"}))
    assert len(got) == 1 and got[0].kind == "enrollment"
    assert got[0].new == "12 (ACTUAL)"


def test_results_posted_carries_the_first_posted_date() -> None:
    def post(protocol, raw):  # type: ignore[no-untyped-def]
        raw["hasResults"] = True
        protocol["statusModule"]["resultsFirstPostDateStruct"] = {"date": "2026-01-15", "type": "ACTUAL"}

    assert changes(post) == [Change("results_posted", "results_first_posted", None, "2026-01-15")]


def test_any_other_content_change_is_other() -> None:
    got = changes(lambda p, r: p["identificationModule"].update(briefTitle="A new title"))
    assert got == [Change("other", None, None, None)]


def test_date_values_read_back() -> None:
    value = parse_date_value("2025-06 (ESTIMATED)")
    assert value is not None
    assert (value.raw, value.precision, value.type) == ("2025-06", "month", "ESTIMATED")
    assert parse_date_value("2025-06-30").precision == "day"  # type: ignore[union-attr]
    assert parse_date_value("soon") is None
    assert parse_date_value("2025-13") is None
    assert parse_date_value(None) is None


def test_primary_outcome_switch_is_its_own_kind() -> None:
    def switch(protocol, _raw):  # type: ignore[no-untyped-def]
        outcome = protocol["outcomesModule"]["primaryOutcomes"][0]
        outcome["measure"] = "A different measure"

    found = changes(switch)
    assert [(c.kind, c.field) for c in found] == [("primary_outcome", "primary_outcomes")]
    assert found[0].new is not None and found[0].new.startswith("A different measure")


def test_detail_edits_are_other_changes_naming_their_field() -> None:
    def edit(protocol, _raw):  # type: ignore[no-untyped-def]
        protocol["eligibilityModule"]["sex"] = "FEMALE"
        protocol["designModule"].setdefault("designInfo", {})["allocation"] = "RANDOMIZED"

    found = changes(edit)
    assert {(c.kind, c.field) for c in found} == {("other", "design"), ("other", "sex")}
    assert next(c for c in found if c.field == "sex").new == "FEMALE"
