"""Measuring the classifier against hand-labelled trials (gold labels in the dev_labels.jsonl format).

The labelled studies are read from the database and classified afresh by the rules (overrides do not
count: the point is to measure the automatic classifier, and an override of a labelled trial would only
measure itself). Headline figures:

- relevance_f1: F1 of detecting not_ms, over every labelled study found;
- mechanism_micro_f1: micro-averaged F1 over the mechanism keys of the MS trials (gold relevance ms or
  ms_plus);
- phenotype_micro_f1: the same for phenotypes, with ms_unspecified left out on both sides;
- endpoint_micro_f1: micro-averaged F1 over (trial, role, key), role primary or secondary, for the label
  lines that carry endpoint labels (`primary`, `secondary`).

A label file may hold mechanism lines, endpoint lines or both (in one line or in separate lines of the
same trial); a figure whose labels are absent is not measured (None) and has no target to meet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tracker.classify.rules import CLASSIFIER_VERSION, classify_study
from tracker.ctgov.parse import parse_study
from tracker.db.models import Study
from tracker.errors import ConfigError, RecordError

MS_RELEVANCE = ("ms", "ms_plus")
UNSPECIFIED_PHENOTYPE = "ms_unspecified"
TARGETS = {
    "relevance_f1": 0.95,
    "mechanism_micro_f1": 0.92,
    "phenotype_micro_f1": 0.92,
    "endpoint_micro_f1": 0.93,
}
ENDPOINT_ROLES = ("primary", "secondary")


@dataclass(frozen=True, slots=True)
class Labels:
    """One trial's labels. In gold labels, relevance None means no mechanism labels were given and
    endpoints None no endpoint labels."""

    nct_id: str
    relevance: str | None
    mechanisms: tuple[str, ...]
    phenotypes: tuple[str, ...]
    endpoints_primary: tuple[str, ...] | None = None
    endpoints_secondary: tuple[str, ...] | None = None

    @property
    def has_endpoints(self) -> bool:
        return self.endpoints_primary is not None or self.endpoints_secondary is not None

    def endpoints(self, role: str) -> tuple[str, ...]:
        return (self.endpoints_primary if role == "primary" else self.endpoints_secondary) or ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "nct_id": self.nct_id,
            "relevance": self.relevance,
            "mechanisms": list(self.mechanisms),
            "phenotypes": list(self.phenotypes),
            "endpoints_primary": list(self.endpoints_primary or ()),
            "endpoints_secondary": list(self.endpoints_secondary or ()),
        }


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, expected: set[str], got: set[str]) -> None:
        self.tp += len(expected & got)
        self.fp += len(got - expected)
        self.fn += len(expected - got)

    def scores(self) -> dict[str, float | int]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": self.tp + self.fn,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


@dataclass
class Evaluation:
    relevance_f1: float | None
    mechanism_micro_f1: float | None
    phenotype_micro_f1: float | None
    endpoint_micro_f1: float | None
    per_key: dict[str, dict[str, dict[str, float | int]]]
    disagreements: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    missing: list[str] = field(default_factory=list)
    classifier_version: str = CLASSIFIER_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "relevance_f1": self.relevance_f1,
            "mechanism_micro_f1": self.mechanism_micro_f1,
            "phenotype_micro_f1": self.phenotype_micro_f1,
            "endpoint_micro_f1": self.endpoint_micro_f1,
            "per_key": self.per_key,
            "disagreements": self.disagreements,
            "predictions": self.predictions,
            "missing": self.missing,
            "classifier_version": self.classifier_version,
        }

    def measured(self) -> dict[str, float]:
        """The headline figures this label file could measure."""
        return {name: getattr(self, name) for name in TARGETS if getattr(self, name) is not None}

    def meets_targets(self) -> bool:
        return all(value >= TARGETS[name] for name, value in self.measured().items())


# ---------------------------------------------------------------------------------------------------------
# Pure metrics


def evaluate(gold: Sequence[Labels], predicted: Mapping[str, Labels]) -> Evaluation:
    """Compare predictions with gold labels; gold studies without a prediction are listed as missing."""
    relevance_counts: dict[str, Counts] = {}
    mechanism_counts: dict[str, Counts] = {}
    phenotype_counts: dict[str, Counts] = {}
    not_ms = Counts()
    mechanism_micro = Counts()
    phenotype_micro = Counts()
    endpoint_counts: dict[str, Counts] = {}
    endpoint_micro = Counts()
    mechanism_gold = endpoint_gold = 0
    disagreements: list[dict[str, Any]] = []
    missing: list[str] = []
    for expected in gold:
        got = predicted.get(expected.nct_id)
        if got is None:
            missing.append(expected.nct_id)
            continue
        if expected.has_endpoints:
            endpoint_gold += 1
            _compare_endpoints(expected, got, endpoint_micro, endpoint_counts, disagreements)
        if expected.relevance is None:
            continue
        mechanism_gold += 1
        not_ms.add(_only(expected.relevance, "not_ms"), _only(got.relevance, "not_ms"))
        _per_key(relevance_counts, {expected.relevance}, {got.relevance})
        if expected.relevance != got.relevance:
            disagreements.append(
                _disagreement(expected.nct_id, "relevance", expected.relevance, got.relevance)
            )
        if expected.relevance not in MS_RELEVANCE:
            continue
        mechanisms = set(expected.mechanisms), set(got.mechanisms)
        mechanism_micro.add(*mechanisms)
        _per_key(mechanism_counts, *mechanisms)
        if mechanisms[0] != mechanisms[1]:
            disagreements.append(_disagreement(expected.nct_id, "mechanisms", *map(sorted, mechanisms)))
        phenotypes = set(expected.phenotypes), set(got.phenotypes)
        _per_key(phenotype_counts, *phenotypes)
        specific = phenotypes[0] - {UNSPECIFIED_PHENOTYPE}, phenotypes[1] - {UNSPECIFIED_PHENOTYPE}
        phenotype_micro.add(*specific)
        if phenotypes[0] != phenotypes[1]:
            disagreements.append(_disagreement(expected.nct_id, "phenotypes", *map(sorted, phenotypes)))
    found = [predicted[item.nct_id] for item in gold if item.nct_id in predicted]
    per_key = {"endpoint": _scores(endpoint_counts)} if endpoint_gold else {}
    if mechanism_gold:
        per_key = {
            "relevance": _scores(relevance_counts),
            "mechanism": _scores(mechanism_counts),
            "phenotype": _scores(phenotype_counts),
            **per_key,
        }
    return Evaluation(
        relevance_f1=float(not_ms.scores()["f1"]) if mechanism_gold else None,
        mechanism_micro_f1=float(mechanism_micro.scores()["f1"]) if mechanism_gold else None,
        phenotype_micro_f1=float(phenotype_micro.scores()["f1"]) if mechanism_gold else None,
        endpoint_micro_f1=float(endpoint_micro.scores()["f1"]) if endpoint_gold else None,
        per_key=per_key,
        disagreements=disagreements,
        predictions=[item.to_dict() for item in found],
        missing=missing,
    )


def _compare_endpoints(
    expected: Labels,
    got: Labels,
    micro: Counts,
    counts: dict[str, Counts],
    disagreements: list[dict[str, Any]],
) -> None:
    """Endpoint keys per role: each (trial, role, key) counts once."""
    for role in ENDPOINT_ROLES:
        pair = set(expected.endpoints(role)), set(got.endpoints(role))
        micro.add(*pair)
        _per_key(counts, *pair)
        if pair[0] != pair[1]:
            disagreements.append(_disagreement(expected.nct_id, f"endpoints_{role}", *map(sorted, pair)))


def _only(value: str | None, key: str) -> set[str]:
    return {key} if value == key else set()


def _per_key(counts: dict[str, Counts], expected: set[str], got: set[str]) -> None:
    for key in expected | got:
        counts.setdefault(key, Counts()).add(expected & {key}, got & {key})


def _scores(counts: dict[str, Counts]) -> dict[str, dict[str, float | int]]:
    return {key: counts[key].scores() for key in sorted(counts)}


def _disagreement(nct_id: str, dimension: str, expected: Any, got: Any) -> dict[str, Any]:
    return {"nct_id": nct_id, "dimension": dimension, "expected": expected, "got": got}


# ---------------------------------------------------------------------------------------------------------
# I/O edges


def read_gold_labels(path: Path) -> list[Labels]:
    """Read JSON Lines of {nct_id, relevance, mechanisms, phenotypes} and/or {nct_id, primary, secondary}
    (endpoint keys); other fields are ignored. Lines of the same trial are merged, in first-seen order."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read labels file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"labels file {path} is not UTF-8 text") from None
    labels: dict[str, Labels] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = _label_line(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: not a label line ({exc})") from None
        labels[item.nct_id] = _merge(labels.get(item.nct_id), item)
    if not labels:
        raise ConfigError(f"no labels in {path}")
    return list(labels.values())


def _label_line(item: dict[str, Any]) -> Labels:
    endpoint_line = "primary" in item or "secondary" in item
    if "relevance" not in item and not endpoint_line:
        raise KeyError("relevance")  # neither kind of label
    return Labels(
        nct_id=str(item["nct_id"]).strip().upper(),
        relevance=str(item["relevance"]) if "relevance" in item else None,
        mechanisms=tuple(item.get("mechanisms") or ()),
        phenotypes=tuple(item.get("phenotypes") or ()),
        endpoints_primary=tuple(item.get("primary") or ()) if endpoint_line else None,
        endpoints_secondary=tuple(item.get("secondary") or ()) if endpoint_line else None,
    )


def _merge(earlier: Labels | None, later: Labels) -> Labels:
    if earlier is None:
        return later
    mechanism_side = later if later.relevance is not None else earlier
    endpoint_side = later if later.has_endpoints else earlier
    return Labels(
        later.nct_id,
        mechanism_side.relevance,
        mechanism_side.mechanisms,
        mechanism_side.phenotypes,
        endpoint_side.endpoints_primary,
        endpoint_side.endpoints_secondary,
    )


def predict_from_database(engine: Engine, nct_ids: Iterable[str]) -> dict[str, Labels]:
    """Classify the given studies as stored in the database (automatic labels only)."""
    wanted = sorted(set(nct_ids))
    predicted: dict[str, Labels] = {}
    with Session(engine) as session:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for nct_id, raw in session.execute(
                select(Study.registration_id, Study.raw).where(Study.registration_id.in_(chunk))
            ):
                try:
                    result = classify_study(parse_study(raw))
                except RecordError:
                    continue
                predicted[nct_id] = Labels(
                    nct_id,
                    result.relevance.key,
                    result.mechanism_keys,
                    result.phenotype_keys,
                    result.endpoint_keys("primary"),
                    result.endpoint_keys("secondary"),
                )
    return predicted


def evaluate_file(engine: Engine, path: Path) -> Evaluation:
    """Score the rules on the labelled studies of `path` that are in the database."""
    gold = read_gold_labels(path)
    predicted = predict_from_database(engine, (item.nct_id for item in gold))
    if not predicted:
        # all-zero scores would read as a broken classifier rather than an empty database
        raise ConfigError(
            f"none of the {len(gold)} labelled studies in {path} is in the database "
            "(sync or import them first)"
        )
    return evaluate(gold, predicted)


def format_evaluation(evaluation: Evaluation) -> str:
    """The plain-text report: headline figures against the targets, per-key table, disagreements."""
    lines = [
        f"Classifier {evaluation.classifier_version}: {len(evaluation.predictions)} labelled studies found"
    ]
    if evaluation.missing:
        lines.append(f"Not in the database ({len(evaluation.missing)}): {', '.join(evaluation.missing)}")
    for name, value in evaluation.measured().items():
        target = TARGETS[name]
        lines.append(
            f"  {name:<20} {value:.4f}  (target {target:.2f}{'' if value >= target else ', MISSED'})"
        )
    for dimension, table in evaluation.per_key.items():
        lines.append("")
        lines.append(f"{dimension:<24} {'prec':>6} {'recall':>6} {'f1':>6} {'support':>7}")
        for key, scores in table.items():
            lines.append(
                f"  {key:<22} {scores['precision']:>6.2f} {scores['recall']:>6.2f} {scores['f1']:>6.2f} "
                f"{scores['support']:>7}"
            )
    if evaluation.disagreements:
        lines.append("")
        lines.append(f"Disagreements ({len(evaluation.disagreements)}):")
        for item in evaluation.disagreements:
            lines.append(
                f"  {item['nct_id']} {item['dimension']}: expected {item['expected']}, got {item['got']}"
            )
    return "\n".join(lines)
