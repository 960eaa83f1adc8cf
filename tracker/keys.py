"""`tracker keys`: the values each filter flag takes, with labels and how many stored trials carry each.

One table (`KEY_DIMENSIONS`) says, per dimension, which flag takes its keys, where the valid keys and
their labels come from, and which trial-frame column holds them; a new dimension is one more row.
Endpoint keys are counted in either role; `--primary-endpoint` takes endpoint families, counted over the
trials with a primary endpoint in each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from tracker.errors import FilterError
from tracker.filters import ACTIVE_SHORTCUT, PHASES, STATUSES, STUDY_TYPES, TrialFilter
from tracker.taxonomy import family_key, load_taxonomy

# (key, label, family key or None)
KeyLabels = Callable[[], list[tuple[str, str, str | None]]]
# Added to a copy of the trial frame by `list_keys`: endpoint keys of either role, and the endpoint
# families of the primary endpoints.
ENDPOINT_COLUMN = "endpoints"
PRIMARY_FAMILY_COLUMN = "primary_endpoint_families"


def _taxonomy_keys(dimension: str) -> KeyLabels:
    def keys() -> list[tuple[str, str, str | None]]:
        items = load_taxonomy().keys(dimension)  # type: ignore[arg-type]
        # Endpoint keys show their family's key: families are what --primary-endpoint filters on.
        return [
            (
                item.key,
                item.label,
                family_key(item.family) if dimension == "endpoint" and item.family else None,
            )
            for item in items
        ]

    return keys


def _endpoint_family_keys() -> list[tuple[str, str, str | None]]:
    return [(family.key, family.label, None) for family in load_taxonomy().family_groups("endpoint")]


def _status_keys() -> list[tuple[str, str, str | None]]:
    shortcut = (
        ACTIVE_SHORTCUT,
        "Any active status (not yet recruiting, recruiting, by invitation, active)",
        None,
    )
    return [(status, status.replace("_", " ").capitalize(), None) for status in STATUSES] + [shortcut]


def _phase_keys() -> list[tuple[str, str, str | None]]:
    from tracker.query import PHASE_LABELS

    return [(phase, PHASE_LABELS.get(phase, phase), None) for phase in PHASES]


def _study_type_keys() -> list[tuple[str, str, str | None]]:
    return [(value, value.replace("_", " ").capitalize(), None) for value in STUDY_TYPES]


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
        KeyDimension("primary-endpoint", "--primary-endpoint", PRIMARY_FAMILY_COLUMN, _endpoint_family_keys),
    )
}


@dataclass(frozen=True, slots=True)
class KeyRow:
    key: str
    label: str
    trials: int
    family: str | None = None  # endpoint keys: the family key --primary-endpoint takes them under

    def to_dict(self) -> dict[str, Any]:
        row = {"key": self.key, "label": self.label, "trials": self.trials}
        return row if self.family is None else {**row, "family": self.family}


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
    return [KeyRow(key, label, counts[key], family) for key, label, family in dimension.labelled_keys()]


def list_keys(engine: Engine, dimensions: list[KeyDimension]) -> dict[str, list[KeyRow]]:
    """Keys per dimension, counted over the trials the default filter shows (MS trials, still listed by
    the registry); the relevance dimension counts every stored trial, since it is what that filter picks."""
    from tracker.filters import apply_filter
    from tracker.query import load_trial_frame

    frame = with_endpoint_columns(load_trial_frame(engine))
    default = apply_filter(frame, TrialFilter())
    everything = apply_filter(frame, TrialFilter(relevance=()))
    return {
        dimension.name: key_rows(everything if dimension.name == "relevance" else default, dimension)
        for dimension in dimensions
    }


def with_endpoint_columns(frame: Any) -> Any:
    """Pure: a copy of the trial frame with ENDPOINT_COLUMN (keys of either role) and PRIMARY_FAMILY_COLUMN
    (family keys of the primary endpoint keys)."""
    families = {
        key: family.key for family in load_taxonomy().family_groups("endpoint") for key in family.members
    }
    primary, secondary = frame["endpoints_primary"], frame["endpoints_secondary"]
    return frame.assign(
        **{
            ENDPOINT_COLUMN: [
                tuple(dict.fromkeys((*p, *s))) for p, s in zip(primary, secondary, strict=True)
            ],
            PRIMARY_FAMILY_COLUMN: [
                tuple(dict.fromkeys(families[k] for k in p if k in families)) for p in primary
            ],
        }
    )


def format_keys(listing: dict[str, list[KeyRow]]) -> str:
    lines: list[str] = []
    for name, rows in listing.items():
        dimension = KEY_DIMENSIONS[name]
        if lines:
            lines.append("")
        scope = "all stored trials" if name == "relevance" else "MS trials"
        lines.append(f"{name} ({dimension.flag}; trials counted over {scope})")
        width = max((len(row.key) for row in rows), default=0)
        lines.extend(
            f"  {row.key:<{width}}  {row.trials:>6}  {row.label}"
            + (f"  (family {row.family})" if row.family else "")
            for row in rows
        )
    return "\n".join(lines)
