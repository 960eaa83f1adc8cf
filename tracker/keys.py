"""`tracker keys`: the values each filter flag takes, with labels and how many stored trials carry each.

One table (`KEY_DIMENSIONS`) says, per dimension, which flag takes its keys, where the valid keys and
their labels come from, and which trial-frame column holds them; a new dimension is one more row.
Endpoint keys are not a trial-frame column (nor a filter): they are read from the stored labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from tracker.errors import FilterError
from tracker.filters import ACTIVE_SHORTCUT, PHASES, STATUSES, STUDY_TYPES, TrialFilter
from tracker.taxonomy import load_taxonomy

KeyLabels = Callable[[], list[tuple[str, str]]]
ENDPOINT_COLUMN = "endpoints"  # added to a copy of the trial frame by `list_keys`, from the stored labels


def _taxonomy_keys(dimension: str) -> KeyLabels:
    def keys() -> list[tuple[str, str]]:
        return [(item.key, item.label) for item in load_taxonomy().keys(dimension)]  # type: ignore[arg-type]

    return keys


def _status_keys() -> list[tuple[str, str]]:
    shortcut = (ACTIVE_SHORTCUT, "Any active status (not yet recruiting, recruiting, by invitation, active)")
    return [(status, status.replace("_", " ").capitalize()) for status in STATUSES] + [shortcut]


def _phase_keys() -> list[tuple[str, str]]:
    from tracker.query import PHASE_LABELS

    return [(phase, PHASE_LABELS.get(phase, phase)) for phase in PHASES]


def _study_type_keys() -> list[tuple[str, str]]:
    return [(value, value.replace("_", " ").capitalize()) for value in STUDY_TYPES]


@dataclass(frozen=True, slots=True)
class KeyDimension:
    name: str
    flag: str
    column: str  # in tracker.query's trial frame; tuple columns count each key once per trial
    labelled_keys: KeyLabels


KEY_DIMENSIONS: dict[str, KeyDimension] = {
    dimension.name: dimension
    for dimension in (
        KeyDimension("mechanism", "--mechanism", "mechanisms", _taxonomy_keys("mechanism")),
        KeyDimension("phenotype", "--phenotype", "phenotypes", _taxonomy_keys("phenotype")),
        KeyDimension("relevance", "--relevance", "relevance", _taxonomy_keys("relevance")),
        KeyDimension("status", "--status", "overall_status", _status_keys),
        KeyDimension("phase", "--phase", "phases", _phase_keys),
        KeyDimension("study-type", "--study-type", "study_type", _study_type_keys),
        KeyDimension(
            "endpoint",
            "override --endpoint-primary/--endpoint-secondary",
            ENDPOINT_COLUMN,
            _taxonomy_keys("endpoint"),
        ),
    )
}


@dataclass(frozen=True, slots=True)
class KeyRow:
    key: str
    label: str
    trials: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "trials": self.trials}


def dimension_named(name: str) -> KeyDimension:
    folded = name.strip().lower().replace("_", "-")
    if folded not in KEY_DIMENSIONS:
        raise FilterError(f"unknown key dimension {name!r}; choose from: {', '.join(KEY_DIMENSIONS)}")
    return KEY_DIMENSIONS[folded]


def key_rows(frame: Any, dimension: KeyDimension) -> list[KeyRow]:
    """Pure: each key of the dimension with its label and the number of trials in `frame` carrying it."""
    values = frame[dimension.column] if len(frame) else []
    counts: Counter[str] = Counter()
    for value in values:
        if isinstance(value, (tuple, list)):
            counts.update(set(value))
        elif isinstance(value, str):
            counts[value] += 1
    if dimension.name == "status":
        from tracker.ctgov.parse import STATUSES_ACTIVE

        counts[ACTIVE_SHORTCUT] = sum(counts[status] for status in STATUSES_ACTIVE)
    return [KeyRow(key, label, counts[key]) for key, label in dimension.labelled_keys()]


def list_keys(engine: Engine, dimensions: list[KeyDimension]) -> dict[str, list[KeyRow]]:
    """Keys per dimension, counted over the trials the default filter shows (MS trials, still listed by
    the registry); the relevance dimension counts every stored trial, since it is what that filter picks."""
    from tracker.filters import apply_filter
    from tracker.query import load_trial_frame

    frame = load_trial_frame(engine)
    if any(dimension.column == ENDPOINT_COLUMN for dimension in dimensions):
        endpoints = stored_endpoints(engine)
        frame = frame.assign(
            **{
                ENDPOINT_COLUMN: [
                    endpoints.get(registration_id, ()) for registration_id in frame["registration_id"]
                ]
            }
        )
    default = apply_filter(frame, TrialFilter())
    everything = apply_filter(frame, TrialFilter(relevance=()))
    return {
        dimension.name: key_rows(everything if dimension.name == "relevance" else default, dimension)
        for dimension in dimensions
    }


def stored_endpoints(engine: Engine) -> dict[str, tuple[str, ...]]:
    """Per study, its endpoint keys (primary or secondary) from the effective labels."""
    from sqlalchemy import select

    from tracker.db.models import StudyLabel
    from tracker.db.session import transaction

    keys: dict[str, list[str]] = {}
    with transaction(engine) as session:
        rows = session.execute(
            select(StudyLabel.registration_id, StudyLabel.key).where(StudyLabel.dimension == "endpoint")
        ).all()
    for registration_id, key in rows:
        keys.setdefault(registration_id, []).append(key)
    return {registration_id: tuple(values) for registration_id, values in keys.items()}


def format_keys(listing: dict[str, list[KeyRow]]) -> str:
    lines: list[str] = []
    for name, rows in listing.items():
        dimension = KEY_DIMENSIONS[name]
        if lines:
            lines.append("")
        scope = "all stored trials" if name == "relevance" else "MS trials"
        lines.append(f"{name} ({dimension.flag}; trials counted over {scope})")
        width = max((len(row.key) for row in rows), default=0)
        lines.extend(f"  {row.key:<{width}}  {row.trials:>6}  {row.label}" for row in rows)
    return "\n".join(lines)
