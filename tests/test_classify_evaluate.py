"""Evaluation metrics, and the classifier scored on the 140 hand-labelled development trials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker import store
from tracker.classify.evaluate import (
    TARGETS,
    Labels,
    evaluate,
    evaluate_file,
    format_evaluation,
    read_gold_labels,
)
from tracker.classify.store import classify_pending
from tracker.cli import main
from tracker.db.migrate import upgrade_to_head
from tracker.db.session import make_engine
from tracker.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"
GOLD = FIXTURES / "gold_dev_labels.jsonl"
STUDIES = FIXTURES / "gold_dev_studies.jsonl"


def labels(nct_id: str, relevance: str, mechanisms: tuple[str, ...], phenotypes: tuple[str, ...]) -> Labels:
    return Labels(nct_id, relevance, mechanisms, phenotypes)


def test_metrics_on_a_hand_made_example() -> None:
    gold = [
        labels("NCT00000001", "ms", ("anti_cd20",), ("rms",)),
        labels("NCT00000002", "ms", ("anti_cd20", "diagnostic"), ("ms_unspecified",)),
        labels("NCT00000003", "not_ms", ("other",), ()),
        labels("NCT00000004", "ms", ("none",), ("ppms",)),
    ]
    predicted = {
        "NCT00000001": labels("NCT00000001", "ms", ("anti_cd20",), ("rms", "cis")),
        "NCT00000002": labels("NCT00000002", "ms", ("anti_cd20",), ("ms_unspecified",)),
        "NCT00000003": labels("NCT00000003", "ms", ("symptomatic",), ("ms_unspecified",)),
    }
    result = evaluate(gold, predicted)
    assert result.missing == ["NCT00000004"]
    assert result.relevance_f1 == 0.0  # the one not_ms trial was missed
    # MS trials only: tp 2 (anti_cd20 twice), fn 1 (diagnostic); the not_ms trial's mechanisms do not count
    assert result.mechanism_micro_f1 == pytest.approx(0.8)
    # ms_unspecified left out: tp 1 (rms), fp 1 (cis)
    assert result.phenotype_micro_f1 == pytest.approx(2 / 3, abs=1e-4)
    assert result.per_key["mechanism"]["diagnostic"]["recall"] == 0.0
    assert result.per_key["phenotype"]["ms_unspecified"]["f1"] == 1.0
    dimensions = {(d["nct_id"], d["dimension"]) for d in result.disagreements}
    assert dimensions == {
        ("NCT00000001", "phenotypes"),
        ("NCT00000002", "mechanisms"),
        ("NCT00000003", "relevance"),
    }
    assert [p["nct_id"] for p in result.predictions] == ["NCT00000001", "NCT00000002", "NCT00000003"]


def test_bad_label_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"nct_id": "NCT00000001", "relevance": "ms"}\nnot json\n')
    with pytest.raises(ConfigError, match="labels.jsonl:2: not a label line"):
        read_gold_labels(bad)


def test_dev_set_meets_the_targets(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade_to_head(engine)
    run = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)
    outcome = store.ingest_page(engine, run, [json.loads(line) for line in STUDIES.read_text().splitlines()])
    store.finish_run(engine, run, outcome="success")
    assert outcome.inserted == 140
    assert classify_pending(engine) == 140

    result = evaluate_file(engine, GOLD)
    engine.dispose()
    assert result.missing == []
    assert len(result.predictions) == 140
    report = format_evaluation(result)
    assert set(result.measured()) == set(TARGETS) - {"endpoint_micro_f1"}  # mechanism labels only
    for name, value in result.measured().items():
        assert value >= TARGETS[name], report


# Held-out check: 68 snapshot trials outside the development set whose interventions are non-drug or coded
# (59 drawn at random among them, 9 chosen from the classes of misses a hidden set showed: walking devices,
# telerehabilitation systems, stimulation named by its programme, coded antibodies and biosimilars). Their
# mechanism labels are maintainers' labels from taxonomy.md, written before the rules were generalised;
# only the mechanism figure is checked (relevance and phenotypes there were not labelled with care).
HELD_OUT_GOLD = FIXTURES / "heldout_mechanism_labels.jsonl"
HELD_OUT_STUDIES = FIXTURES / "heldout_mechanism_studies.jsonl"
HELD_OUT_MECHANISM_TARGET = 0.90


def test_held_out_mechanisms_generalise(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade_to_head(engine)
    run = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)
    studies = [json.loads(line) for line in HELD_OUT_STUDIES.read_text().splitlines()]
    store.ingest_page(engine, run, studies)
    store.finish_run(engine, run, outcome="success")
    result = evaluate_file(engine, HELD_OUT_GOLD)
    engine.dispose()
    assert result.missing == [] and len(result.predictions) == 68
    assert result.mechanism_micro_f1 >= HELD_OUT_MECHANISM_TARGET, format_evaluation(result)


def test_cli_evaluate_json(sqlite_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--database-url", sqlite_url, "import", str(STUDIES)]).exit_code == 0
    result = runner.invoke(
        main, ["--database-url", sqlite_url, "classify", "--evaluate", str(GOLD), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {
        "relevance_f1",
        "mechanism_micro_f1",
        "phenotype_micro_f1",
        "per_key",
        "disagreements",
        "predictions",
    } <= set(data)
    assert {
        "nct_id",
        "relevance",
        "mechanisms",
        "phenotypes",
        "endpoints_primary",
        "endpoints_secondary",
    } == set(data["predictions"][0])
    text = runner.invoke(main, ["--database-url", sqlite_url, "classify", "--evaluate", str(GOLD)])
    assert "mechanism_micro_f1" in text.output and "140 labelled studies found" in text.output


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "no labels in"), (b"\n\n", "no labels in"), (b"\xff\xfe{", "is not UTF-8 text")],
    ids=["empty", "blank", "binary"],
)
def test_a_label_file_without_labels_is_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        read_gold_labels(path)


def test_evaluating_labels_none_of_which_is_stored_fails_in_one_line(sqlite_url: str, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"nct_id": "NCT00000001", "relevance": "ms", "mechanisms": [], "phenotypes": []}\n')

    result = CliRunner().invoke(main, ["--database-url", sqlite_url, "classify", "--evaluate", str(labels)])

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: none of the 1 labelled studies in {labels} is in the database (sync or import them first)"
    ]
