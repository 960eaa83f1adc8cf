"""Classification storage and manual overrides on SQLite and Postgres, through the real store and CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, update
from support import stored_classification

from tracker import store
from tracker.classify.rules import CLASSIFIER_VERSION
from tracker.classify.store import classify_pending, clear_override, set_override
from tracker.cli import main
from tracker.db.models import Classification, Override, StudyLabel
from tracker.db.session import transaction
from tracker.errors import FilterError, TrackerError

FIXTURES = Path(__file__).parent / "fixtures"
STUDIES = {
    raw["protocolSection"]["identificationModule"]["nctId"]: raw
    for raw in map(json.loads, (FIXTURES / "gold_dev_studies.jsonl").read_text().splitlines())
}
OCRELIZUMAB_RMS_PPMS = "NCT02688985"  # fixture: ocrelizumab + lumbar puncture, RMS and PPMS
OPTIC_NEURITIS = "NCT00000146"  # fixture: methylprednisolone for optic neuritis
TSC = "NCT06160310"  # fixture: tuberous sclerosis registry


def load(engine: Engine, studies: list[Any]) -> None:
    run = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)
    store.ingest_page(engine, run, studies)
    store.finish_run(engine, run, outcome="success")


def labels(engine: Engine, registration_id: str) -> set[tuple[str, str, str | None, str]]:
    with transaction(engine) as session:
        rows = session.execute(
            select(StudyLabel.dimension, StudyLabel.key, StudyLabel.role, StudyLabel.source).where(
                StudyLabel.registration_id == registration_id
            )
        )
        return {tuple(row) for row in rows}  # type: ignore[misc]


def keys(engine: Engine, registration_id: str, dimension: str) -> set[str]:
    return {key for dim, key, _role, _source in labels(engine, registration_id) if dim == dimension}


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    load(engine, [STUDIES[OCRELIZUMAB_RMS_PPMS], STUDIES[OPTIC_NEURITIS], STUDIES[TSC]])
    classify_pending(engine)
    return engine


def test_classify_pending_stores_result_and_effective_labels(loaded: Engine) -> None:
    with transaction(loaded) as session:
        row = session.get(Classification, OCRELIZUMAB_RMS_PPMS)
        assert row is not None
        assert row.taxonomy_version == CLASSIFIER_VERSION
        assert row.relevance == "ms"
        mechanisms = {item["key"] for item in row.result["mechanisms"]}
        assert {"anti_cd20", "diagnostic", "relapse_treatment"} <= mechanisms
        assert all(item["evidence"] for item in row.result["mechanisms"])
    assert keys(loaded, OCRELIZUMAB_RMS_PPMS, "phenotype") == {"rms", "ppms"}
    assert keys(loaded, TSC, "relevance") == {"not_ms"}
    assert keys(loaded, TSC, "phenotype") == set()
    assert {source for *_, source in labels(loaded, OPTIC_NEURITIS)} == {"auto"}


def test_nothing_pending_after_a_run_and_changes_are_picked_up(loaded: Engine) -> None:
    assert classify_pending(loaded) == 0
    changed = copy.deepcopy(STUDIES[OPTIC_NEURITIS])
    changed["protocolSection"]["conditionsModule"]["conditions"].append(
        "Relapsing Remitting Multiple Sclerosis"
    )
    load(loaded, [changed])
    assert classify_pending(loaded) == 1
    assert keys(loaded, OPTIC_NEURITIS, "phenotype") == {"rms", "cis"}
    assert classify_pending(loaded, all_studies=True) == 3


def test_a_new_classifier_version_reclassifies(loaded: Engine) -> None:
    with transaction(loaded) as session:
        session.execute(update(Classification).values(taxonomy_version="old"))
    assert classify_pending(loaded) == 3


def test_override_wins_and_survives_resync_and_reclassification(loaded: Engine) -> None:
    set_override(loaded, OPTIC_NEURITIS, phenotypes=["cis", "rms"], note="ONTT enrolled acute optic neuritis")
    expected = {("phenotype", "cis", None, "manual"), ("phenotype", "rms", None, "manual")}
    assert expected <= labels(loaded, OPTIC_NEURITIS)
    assert ("mechanism", "relapse_treatment", None, "auto") in labels(loaded, OPTIC_NEURITIS)

    changed = copy.deepcopy(STUDIES[OPTIC_NEURITIS])
    changed["protocolSection"]["identificationModule"]["briefTitle"] = "ONTT (updated title)"
    load(loaded, [changed])  # a re-sync bringing a changed record
    assert classify_pending(loaded) == 1
    assert expected <= labels(loaded, OPTIC_NEURITIS)
    classify_pending(loaded, all_studies=True)
    assert keys(loaded, OPTIC_NEURITIS, "phenotype") == {"cis", "rms"}
    with transaction(loaded) as session:
        override = session.get(Override, OPTIC_NEURITIS)
        assert override is not None and override.note == "ONTT enrolled acute optic neuritis"


def test_override_of_one_dimension_keeps_the_others_automatic(loaded: Engine) -> None:
    set_override(
        loaded, OCRELIZUMAB_RMS_PPMS, mechanisms=["anti_cd20"], note="premedication is not treatment"
    )
    assert keys(loaded, OCRELIZUMAB_RMS_PPMS, "mechanism") == {"anti_cd20"}
    mechanism_rows = [row for row in labels(loaded, OCRELIZUMAB_RMS_PPMS) if row[0] == "mechanism"]
    assert mechanism_rows == [("mechanism", "anti_cd20", None, "manual")]
    assert {row[3] for row in labels(loaded, OCRELIZUMAB_RMS_PPMS) if row[0] != "mechanism"} == {"auto"}
    set_override(loaded, OCRELIZUMAB_RMS_PPMS, relevance="ms_plus", note="second note")
    assert keys(loaded, OCRELIZUMAB_RMS_PPMS, "mechanism") == {"anti_cd20"}  # earlier override kept
    assert ("relevance", "ms_plus", None, "manual") in labels(loaded, OCRELIZUMAB_RMS_PPMS)


def test_relevance_override_to_not_ms_drops_phenotypes_and_back(loaded: Engine) -> None:
    set_override(loaded, OCRELIZUMAB_RMS_PPMS, relevance="not_ms", note="test")
    assert keys(loaded, OCRELIZUMAB_RMS_PPMS, "phenotype") == set()
    set_override(loaded, TSC, relevance="ms", note="test")
    assert keys(loaded, TSC, "phenotype") == {"ms_unspecified"}


def test_clear_restores_automatic_labels(loaded: Engine) -> None:
    before = labels(loaded, OPTIC_NEURITIS)
    set_override(loaded, OPTIC_NEURITIS, mechanisms=["other"], relevance="ms_plus", note="x")
    assert clear_override(loaded, OPTIC_NEURITIS) is True
    assert labels(loaded, OPTIC_NEURITIS) == before
    assert clear_override(loaded, OPTIC_NEURITIS) is False


def test_unknown_keys_are_refused_with_the_valid_list(loaded: Engine) -> None:
    with pytest.raises(FilterError, match="unknown mechanism key.*bogus.*valid keys: anti_cd20"):
        set_override(loaded, OPTIC_NEURITIS, mechanisms=["bogus"], note="x")
    with pytest.raises(FilterError, match="unknown relevance key"):
        set_override(loaded, OPTIC_NEURITIS, relevance="maybe", note="x")
    with transaction(loaded) as session:
        assert session.get(Override, OPTIC_NEURITIS) is None


def test_unknown_study_and_missing_note_are_clear_errors(loaded: Engine) -> None:
    with pytest.raises(TrackerError, match="NCT09999999 is not in the database"):
        set_override(loaded, "NCT09999999", phenotypes=["rms"], note="x")
    with pytest.raises(TrackerError, match="needs a --note"):
        set_override(loaded, OPTIC_NEURITIS, phenotypes=["rms"], note=" ")


def test_override_before_classification_classifies_first(engine: Engine) -> None:
    load(engine, [STUDIES[OPTIC_NEURITIS]])
    set_override(engine, OPTIC_NEURITIS, relevance="ms_plus", note="x")
    assert keys(engine, OPTIC_NEURITIS, "mechanism") == {"relapse_treatment"}
    assert ("relevance", "ms_plus", None, "manual") in labels(engine, OPTIC_NEURITIS)


# ---------------------------------------------------------------------------------------------------------
# CLI


def invoke(url: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["--database-url", url, *args], catch_exceptions=False)


def test_cli_classify_and_override(sqlite_url: str, tmp_path: Path) -> None:
    source = tmp_path / "studies.jsonl"
    source.write_text(
        "\n".join(json.dumps(STUDIES[n]) for n in (OPTIC_NEURITIS, OCRELIZUMAB_RMS_PPMS, TSC)) + "\n"
    )
    assert invoke(sqlite_url, "import", str(source)).exit_code == 0
    result = invoke(sqlite_url, "classify", "--all", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) == {"classified": 3, "classifier_version": CLASSIFIER_VERSION}
    assert "Classified 0 studies" in invoke(sqlite_url, "classify").output

    result = invoke(sqlite_url, "override", OPTIC_NEURITIS, "--phenotype", "cis,rms", "--note", "ONTT")
    assert result.exit_code == 0, result.output
    assert "saved (manual): phenotypes=cis,rms" in result.output

    result = invoke(
        sqlite_url, "override", OPTIC_NEURITIS, "--mechanism", "anti_cd20,nonsense", "--note", "x"
    )
    assert result.exit_code == 2
    assert "unknown mechanism key(s): nonsense; valid keys: anti_cd20" in result.output
    assert "Traceback" not in result.output

    result = invoke(sqlite_url, "override", "NCT09999999", "--relevance", "ms", "--note", "x")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: NCT09999999 is not in the database (sync or import it first)"

    result = invoke(sqlite_url, "override", OPTIC_NEURITIS, "--clear", "--relevance", "ms")
    assert result.exit_code == 2
    assert invoke(sqlite_url, "override", OPTIC_NEURITIS, "--clear").output.startswith("Override of")


def test_endpoint_labels_are_stored_per_role_with_evidence(loaded: Engine) -> None:
    assert keys(loaded, OCRELIZUMAB_RMS_PPMS, "endpoint") == {"fluid_biomarker", "pharmacology"}
    assert {role for dim, _key, role, _src in labels(loaded, OCRELIZUMAB_RMS_PPMS) if dim == "endpoint"} == {
        "primary"
    }
    with transaction(loaded) as session:
        row = session.get(Classification, OCRELIZUMAB_RMS_PPMS)
        assert row is not None
        outcomes = row.result["outcome_endpoints"]
        assert outcomes and all(item["evidence"] for item in outcomes)
        assert outcomes[0]["evidence"][0]["field"] == "outcomes.primary[0].measure"


def test_endpoint_and_facet_overrides_survive_resync_and_reclassification(loaded: Engine) -> None:
    set_override(
        loaded,
        OCRELIZUMAB_RMS_PPMS,
        endpoints_primary=["fluid_biomarker"],
        eligibility={"edss_max": ["6.5"]},
        note="B cells in CSF are the disease question here",
    )
    expected = {
        ("endpoint", "fluid_biomarker", "primary", "manual"),
        ("edss_max", "6.5", None, "manual"),
    }
    assert expected <= labels(loaded, OCRELIZUMAB_RMS_PPMS)
    assert ("endpoint", "pharmacology", "primary", "auto") not in labels(loaded, OCRELIZUMAB_RMS_PPMS)

    changed = copy.deepcopy(STUDIES[OCRELIZUMAB_RMS_PPMS])
    changed["protocolSection"]["outcomesModule"]["secondaryOutcomes"] = [
        {"measure": "Annualized relapse rate", "timeFrame": "96 weeks"}
    ]
    load(loaded, [changed])  # a re-sync bringing a changed record
    assert classify_pending(loaded) == 1
    classify_pending(loaded, all_studies=True)
    after = labels(loaded, OCRELIZUMAB_RMS_PPMS)
    assert expected <= after
    assert ("endpoint", "relapse", "secondary", "auto") in after  # the role not overridden stays automatic
    assert keys(loaded, OCRELIZUMAB_RMS_PPMS, "mechanism")  # other dimensions untouched

    set_override(loaded, OCRELIZUMAB_RMS_PPMS, eligibility={"sex": ["female"]}, note="second facet")
    assert {"edss_max", "sex"} <= {dim for dim, *_ in labels(loaded, OCRELIZUMAB_RMS_PPMS)}
    assert clear_override(loaded, OCRELIZUMAB_RMS_PPMS)
    assert ("endpoint", "pharmacology", "primary", "auto") in labels(loaded, OCRELIZUMAB_RMS_PPMS)


def test_unknown_endpoint_keys_and_bad_facets_are_refused(loaded: Engine) -> None:
    with pytest.raises(FilterError, match="unknown endpoint key"):
        set_override(loaded, OCRELIZUMAB_RMS_PPMS, endpoints_primary=["edss"], note="x")
    with pytest.raises(FilterError, match="unknown eligibility facet"):
        set_override(loaded, OCRELIZUMAB_RMS_PPMS, eligibility={"bmi": ["30"]}, note="x")
    with pytest.raises(FilterError, match="takes a number"):
        set_override(loaded, OCRELIZUMAB_RMS_PPMS, eligibility={"edss_max": ["six"]}, note="x")


def test_cli_endpoint_and_facet_override(sqlite_url: str, tmp_path: Path) -> None:
    source = tmp_path / "studies.jsonl"
    source.write_text(json.dumps(STUDIES[OCRELIZUMAB_RMS_PPMS]) + "\n")
    assert invoke(sqlite_url, "import", str(source)).exit_code == 0
    result = invoke(
        sqlite_url,
        "override",
        OCRELIZUMAB_RMS_PPMS,
        "--endpoint-primary",
        "fluid_biomarker",
        "--endpoint-secondary",
        "safety,pharmacology",
        "--facet",
        "edss_max=6.5",
        "--facet",
        "prior_treatment=treatment_naive",
        "--note",
        "checked by hand",
    )
    assert result.exit_code == 0, result.output
    assert "endpoints_primary=fluid_biomarker" in result.output
    assert "endpoints_secondary=safety,pharmacology" in result.output
    assert "edss_max=6.5" in result.output
    result = invoke(sqlite_url, "override", OCRELIZUMAB_RMS_PPMS, "--endpoint-primary", "edss", "--note", "x")
    assert result.exit_code == 2
    assert "unknown endpoint key(s): edss; valid keys: disability_progression" in result.output
    result = invoke(sqlite_url, "override", OCRELIZUMAB_RMS_PPMS, "--facet", "edss_max", "--note", "x")
    assert result.exit_code == 2 and "NAME=VALUE" in result.output and "Traceback" not in result.output


def test_classifying_in_child_processes_stores_exactly_what_one_process_stores(db_url: str) -> None:
    """`classify --all` on a big store hands batches to forked children; the stored rows are the same."""
    import json
    from pathlib import Path

    from tracker import store
    from tracker.classify.store import classify_pending, set_override
    from tracker.db.migrate import upgrade_to_head
    from tracker.db.session import make_engine

    sample = Path(__file__).parent / "fixtures" / "ms_sample.jsonl"
    raws = [json.loads(line) for line in sample.read_text().splitlines()]
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    run = store.begin_run(engine, mode="import", query=None, source="t", data_timestamp=None)
    store.ingest_page(engine, run, raws)
    store.finish_run(engine, run, outcome="success")
    first = raws[0]["protocolSection"]["identificationModule"]["nctId"]
    set_override(engine, first, mechanisms=["anti_cd20"], note="test")

    assert classify_pending(engine, all_studies=True, batch_size=20, workers=1) == len(raws)
    one = stored_classification(engine)
    assert classify_pending(engine, all_studies=True, batch_size=20, workers=2) == len(raws)
    assert stored_classification(engine) == one
    assert "anti_cd20" in {key for rid, dim, key, _ in one[1] if rid == first and dim == "mechanism"}
    engine.dispose()


def test_only_a_study_classified_before_has_labels_deleted_and_its_old_ones_are_gone(engine: Engine) -> None:
    # Labels are written only with a classification: a new study has none to delete, and a bulk import
    # must not ask for a delete (Postgres, with no statistics yet, read the whole label table for it).
    from sqlalchemy import event

    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    def label_deletes() -> int:
        found = sum(statement.startswith("DELETE FROM study_labels") for statement in statements)
        statements.clear()
        return found

    load(engine, [STUDIES[OPTIC_NEURITIS], STUDIES[TSC]])
    assert classify_pending(engine) == 2
    assert label_deletes() == 0
    assert keys(engine, TSC, "relevance") == {"not_ms"}
    now_ms = copy.deepcopy(STUDIES[TSC])
    now_ms["protocolSection"]["conditionsModule"]["conditions"] = ["Relapsing Multiple Sclerosis"]
    now_ms["protocolSection"]["identificationModule"]["briefTitle"] = (
        "Registry of relapsing multiple sclerosis"
    )
    load(engine, [now_ms])
    assert classify_pending(engine) == 1
    assert label_deletes() == 1
    relevance = keys(engine, TSC, "relevance")
    assert len(relevance) == 1 and "not_ms" not in relevance  # the old label deleted, not left beside it
    assert keys(engine, TSC, "phenotype") == {"rms"}
