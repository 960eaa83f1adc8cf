"""The read side: the only place that turns stored rows into what the dashboard, exports and digests show.

`load_trial_frame` builds one denormalised row per study (labels, countries, interventions folded into
tuples); `tracker.filters.apply_filter` narrows it. Everything that presents trials goes through here, so
a filter means the same thing on the dashboard, in an export and in a digest.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, Select, func, literal_column, or_, select
from sqlalchemy import select as sql_select
from sqlalchemy.exc import SQLAlchemyError

from tracker import frame_snapshot
from tracker.changes import format_arm, format_outcome
from tracker.db.models import (
    ArmGroup,
    ChangeEvent,
    Classification,
    Collaborator,
    Condition,
    Intervention,
    Keyword,
    Location,
    OutcomeMeasure,
    Override,
    RegistrationCountry,
    RegistrationLink,
    RegistryChangeEvent,
    RegistryHistory,
    RegistryVersion,
    SecondaryId,
    Study,
    StudyLabel,
    StudyVersion,
    SyncRun,
)
from tracker.db.session import batched, one_line, transaction
from tracker.errors import FilterError, TrackerError
from tracker.filters import TrialFilter, apply_filter, sponsor_category

# The store's runs, data date and change events: Core-only reads that `status` and `changes` use alone.
from tracker.ledger import (  # noqa: F401  (re-exported: tracker.query is the read side's one door)
    CHANGE_EVENT_COLUMNS,
    DataDate,
    change_events,
    data_as_of,
    latest_run,
    run_as_dict,
    study_titles,
)
from tracker.linking import trial_sort_key
from tracker.registries import registration_url

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

PHASE_ORDER = ("EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4")
PHASE_LABELS = {
    "EARLY_PHASE1": "Early Phase 1",
    "PHASE1": "Phase 1",
    "PHASE2": "Phase 2",
    "PHASE3": "Phase 3",
    "PHASE4": "Phase 4",
    "NA": "Not applicable",
}

# What a trial's registrations add to the row of the registration that stands for it (`trial_values`).
REGISTRATION_COLUMNS = ("trial_id", "registries", "registration_ids", "eu_countries", "eu_decision_date")

# From the registry's own version history (`tracker history`); missing until a trial is backfilled.
HISTORY_COLUMNS = (
    "versions",
    "pcd_changes",
    "pcd_total_slip_days",
    "original_enrollment",
    "primary_outcome_changed_after_start",
    "primary_outcome_changed_on",
)

# Effective labels the trial frame carries beside relevance, mechanisms and phenotypes: the endpoint keys
# per role, and the eligibility facets the registry's own fields do not give (age range, sex and healthy
# volunteers are study columns already). Manual overrides are in `study_labels` like automatic labels.
LABEL_COLUMNS = (
    "endpoints_primary",
    "endpoints_secondary",
    "edss_min",
    "edss_max",
    "prior_treatment",
    "excluded_therapies",
)
EDSS = ("edss_min", "edss_max")
# (dimension, role) of a label → its key-tuple column
_KEY_COLUMNS = {
    ("endpoint", "primary"): "endpoints_primary",
    ("endpoint", "secondary"): "endpoints_secondary",
    ("prior_treatment", None): "prior_treatment",
    ("excluded_therapy", None): "excluded_therapies",
}
_LABEL_DIMENSIONS = frozenset({*EDSS, *(dimension for dimension, _role in _KEY_COLUMNS)})

_STUDY_COLUMNS = (
    Study.registration_id,
    Study.brief_title,
    Study.official_title,
    Study.acronym,
    Study.overall_status,
    Study.last_known_status,
    Study.why_stopped,
    Study.phases,
    Study.study_type,
    Study.enrollment_count,
    Study.enrollment_type,
    Study.start_date,
    Study.start_date_raw,
    Study.start_date_type,
    Study.primary_completion_date,
    Study.primary_completion_date_raw,
    Study.primary_completion_date_type,
    Study.completion_date,
    Study.completion_date_raw,
    Study.completion_date_type,
    Study.first_posted,
    Study.last_update_posted,
    Study.results_first_posted,
    Study.has_results,
    Study.lead_sponsor_name,
    Study.lead_sponsor_class,
    Study.removed_at,
)
DATE_COLUMNS = (
    "start_date",
    "primary_completion_date",
    "completion_date",
    "first_posted",
    "last_update_posted",
    "results_first_posted",
)
TRIAL_FRAME_COLUMNS = (
    *(column.key for column in _STUDY_COLUMNS if column.key != "removed_at"),
    "phase_label",
    "highest_phase",
    "start_year",
    "sponsor_category",
    "conditions",
    "interventions",
    "countries",
    "relevance",
    "mechanisms",
    "investigational_mechanisms",
    "comparator_mechanisms",
    "mechanism_roles",
    "phenotypes",
    *LABEL_COLUMNS,
    "multi_disease",
    "manual",
    "taxonomy_version",
    "removed",
    "url",
    "search_text",
    *HISTORY_COLUMNS,
    *REGISTRATION_COLUMNS,
)


# One row per study in `studies` beyond the trial frame: what a review's data-extraction form asks for.
_DETAIL_COLUMNS = (
    Study.registration_id,
    Study.brief_summary,
    Study.allocation,
    Study.intervention_model,
    Study.masking,
    Study.primary_purpose,
    Study.eligibility_criteria,
    Study.minimum_age,
    Study.maximum_age,
    Study.minimum_age_years,
    Study.maximum_age_years,
    Study.sex,
    Study.healthy_volunteers,
    Study.std_ages,
)
# The columns `with_details` adds to a trial frame (folded child rows as tuples of display strings).
DETAIL_FRAME_COLUMNS = (
    *(column.key for column in _DETAIL_COLUMNS if column.key != "registration_id"),
    "arms",
    "intervention_details",
    "primary_outcomes",
    "secondary_outcomes",
    "other_outcomes",
    "collaborators",
    "site_count",
    "secondary_ids",
)


@dataclass(frozen=True, slots=True)
class DetailTables:
    """The registry details of many studies, one DataFrame per kind of row, ordered as registered.

    studies: _DETAIL_COLUMNS; outcomes: registration_id, role, position, measure, description, time_frame;
    arms: registration_id, position, label, type, description, intervention_names (tuple);
    interventions: registration_id, position, name, type, arm_role;
    secondary_ids: registration_id, identifier, type, domain;
    collaborators: registration_id, name, agency_class; site_counts: registration_id → number of listed sites.
    """

    studies: pd.DataFrame
    outcomes: pd.DataFrame
    arms: pd.DataFrame
    interventions: pd.DataFrame
    secondary_ids: pd.DataFrame
    collaborators: pd.DataFrame
    site_counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class DetailRows:
    """The same details as plain tuples in DetailTables' column order: what the streaming export folds
    without building a frame (and without importing pandas)."""

    studies: list[tuple[Any, ...]]
    outcomes: list[tuple[Any, ...]]
    arms: list[tuple[Any, ...]]
    interventions: list[tuple[Any, ...]]
    secondary_ids: list[tuple[Any, ...]]
    collaborators: list[tuple[Any, ...]]
    site_counts: dict[str, int]


_OUTCOME_COLUMNS = ["registration_id", "role", "position", "measure", "description", "time_frame"]
_ARM_COLUMNS = ["registration_id", "position", "label", "type", "description", "intervention_names"]
_INTERVENTION_COLUMNS = ["registration_id", "position", "name", "type", "arm_role"]
_SECONDARY_ID_COLUMNS = ["registration_id", "identifier", "type", "domain"]
_COLLABORATOR_COLUMNS = ["registration_id", "name", "agency_class"]


def read_detail_rows(engine: Engine, nct_range: tuple[str, str] | None = None) -> DetailRows:
    """Every stored study's details as plain rows; with `nct_range` (first, last), only those of the
    studies whose registration ID lies in it."""

    def select(*columns: Any) -> Select[Any]:  # shadows sqlalchemy's here: the queries below read as before
        statement = sql_select(*columns)
        if nct_range is None:
            return statement
        return statement.where(columns[0].between(*nct_range))  # each query selects registration_id first

    def tuples(statement: Select[Any]) -> list[tuple[Any, ...]]:
        # Core, not the session: an ORM result builds its rows through the ORM's loading machinery
        return [tuple(row) for row in connection.execute(statement)]

    def children(model: Any, names: Sequence[str], order: Any) -> list[tuple[Any, ...]]:
        """A child table's rows: `names` (registration ID first), in registry order within each study."""
        return tuples(
            select(*(getattr(model, name) for name in names)).order_by(model.registration_id, order)
        )

    with engine.connect() as connection:
        studies = tuples(select(*_DETAIL_COLUMNS).order_by(Study.registration_id))
        outcomes = children(OutcomeMeasure, _OUTCOME_COLUMNS, OutcomeMeasure.id)
        arms = children(ArmGroup, _ARM_COLUMNS, ArmGroup.position)
        interventions = children(Intervention, _INTERVENTION_COLUMNS, Intervention.position)
        secondary_ids = children(SecondaryId, _SECONDARY_ID_COLUMNS, SecondaryId.position)
        collaborators = children(Collaborator, _COLLABORATOR_COLUMNS, Collaborator.position)
        site_counts = {
            str(registration_id): int(count)
            for registration_id, count in connection.execute(
                select(Location.registration_id, func.count()).group_by(Location.registration_id)
            )
        }
    std_ages = len(_DETAIL_COLUMNS) - 1  # the last detail column
    return DetailRows(
        studies=[(*row[:std_ages], tuple(row[std_ages] or ())) for row in studies],
        outcomes=outcomes,
        arms=[(*row[:-1], tuple(row[-1] or ())) for row in arms],
        interventions=interventions,
        secondary_ids=secondary_ids,
        collaborators=collaborators,
        site_counts=site_counts,
    )


def load_detail_tables(engine: Engine, nct_range: tuple[str, str] | None = None) -> DetailTables:
    """Every stored study's details as frames (the dashboard's downloads cut them to their trials); with
    `nct_range` (first, last), only those of the studies whose NCT ID lies in it."""
    import pandas as pd

    rows = read_detail_rows(engine, nct_range)

    def frame(records: list[tuple[Any, ...]], columns: list[str]) -> pd.DataFrame:
        return pd.DataFrame.from_records(records, columns=columns)

    return DetailTables(
        studies=frame(rows.studies, [c.key for c in _DETAIL_COLUMNS]),
        outcomes=frame(rows.outcomes, _OUTCOME_COLUMNS),
        arms=frame(rows.arms, _ARM_COLUMNS),
        interventions=frame(rows.interventions, _INTERVENTION_COLUMNS),
        secondary_ids=frame(rows.secondary_ids, _SECONDARY_ID_COLUMNS),
        collaborators=frame(rows.collaborators, _COLLABORATOR_COLUMNS),
        site_counts=rows.site_counts,
    )


# An outcome measure: (NCT ID, role, position within the role from 0), as `outcome_measures` has it.
OutcomeRef = tuple[str, str, int]


def outcome_endpoint_keys(
    engine: Engine, registration_ids: Iterable[str]
) -> dict[OutcomeRef, tuple[str, ...]]:
    """The endpoint keys of each outcome measure of the given studies, from their automatic classification
    (`classifications.result`, its "outcome_endpoints"). Per-measure keys are never overridden: overrides
    replace a trial's set per role. Read for the workbook only, so a CSV export parses no classification."""
    found: dict[OutcomeRef, tuple[str, ...]] = {}
    outcomes = Classification.result["outcome_endpoints"]
    with transaction(engine) as session:
        for batch in batched(sorted(set(registration_ids))):
            rows = session.execute(
                select(Classification.registration_id, outcomes).where(
                    Classification.registration_id.in_(batch)
                )
            )
            for registration_id, items in rows:
                for item in items or ():
                    found[registration_id, item["role"], int(item["order"])] = tuple(item["keys"])
    return found


def _folded(rows: Iterable[tuple[Any, ...]], text: Callable[..., str]) -> dict[str, tuple[str, ...]]:
    """Child rows (registration ID first) as one tuple of display strings per study, in row order."""
    folded: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        folded[row[0]].append(text(*row))
    return {registration_id: tuple(values) for registration_id, values in folded.items()}


def intervention_text(name: str, intervention_type: str | None, arm_role: str | None) -> str:
    """ "Ocrelizumab", "DRUG", "active_comparator" → "Ocrelizumab (DRUG; active_comparator)"."""
    parts = [part for part in (intervention_type, arm_role) if part]
    return f"{name} ({'; '.join(parts)})" if parts else name


def secondary_id_text(identifier: str, id_type: str | None) -> str:
    return f"{identifier} ({id_type})" if id_type else identifier


def _plain_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """A frame's rows as tuples with missing values as None whatever dtype pandas inferred (its string
    dtype reads NULL as NaN, which would print as "nan")."""
    return list(frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None))


def detail_values(tables: DetailTables) -> dict[str, dict[str, Any]]:
    """Each study's DETAIL_FRAME_COLUMNS values (plain Python: text, numbers, tuples of display strings)."""
    return fold_details(
        DetailRows(
            studies=_plain_rows(tables.studies),
            outcomes=_plain_rows(tables.outcomes),
            arms=_plain_rows(tables.arms),
            interventions=_plain_rows(tables.interventions),
            secondary_ids=_plain_rows(tables.secondary_ids),
            collaborators=_plain_rows(tables.collaborators),
            site_counts=tables.site_counts,
        )
    )


def fold_details(rows: DetailRows) -> dict[str, dict[str, Any]]:
    """Pure: each study's DETAIL_FRAME_COLUMNS values from its detail rows."""
    by_role: dict[str, list[tuple[Any, ...]]] = {"primary": [], "secondary": [], "other": []}
    for outcome in rows.outcomes:
        if outcome[1] in by_role:
            by_role[outcome[1]].append(outcome)
    folded = {
        f"{role}_outcomes": _folded(
            outcomes,
            lambda _id, _role, _position, measure, _description, time_frame: format_outcome(
                measure, time_frame
            ),
        )
        for role, outcomes in by_role.items()
    }
    folded["arms"] = _folded(
        rows.arms, lambda _id, _position, label, arm_type, *_: format_arm(label, arm_type)
    )
    folded["intervention_details"] = _folded(
        rows.interventions, lambda _id, _position, name, kind, role: intervention_text(name, kind, role)
    )
    folded["collaborators"] = _folded(rows.collaborators, lambda _id, name, _class: name)
    folded["secondary_ids"] = _folded(
        rows.secondary_ids, lambda _id, identifier, kind, _domain: secondary_id_text(identifier, kind)
    )
    names = [column.key for column in _DETAIL_COLUMNS[1:]]
    values: dict[str, dict[str, Any]] = {}
    for registration_id, *study in rows.studies:
        record = dict(zip(names, study, strict=True))
        record["std_ages"] = record["std_ages"] if isinstance(record["std_ages"], tuple) else ()
        record.update({name: column.get(registration_id, ()) for name, column in folded.items()})
        record["site_count"] = rows.site_counts.get(registration_id, 0)
        values[registration_id] = record
    return values


# The details of a study with no stored row (never the case for a stored study; keeps rows complete).
EMPTY_DETAILS: dict[str, Any] = {
    name: ()
    if name in ("std_ages", "arms", "intervention_details", "collaborators", "secondary_ids")
    else None
    for name in DETAIL_FRAME_COLUMNS
} | {"primary_outcomes": (), "secondary_outcomes": (), "other_outcomes": (), "site_count": 0}


def with_details(frame: pd.DataFrame, tables: DetailTables) -> pd.DataFrame:
    """Pure: a trial frame with DETAIL_FRAME_COLUMNS added, the same values `detail_values` gives."""
    result = frame.copy()
    values = detail_values(tables)
    ids = result["registration_id"]
    for column in DETAIL_FRAME_COLUMNS:
        result[column] = ids.map(lambda i, c=column: (values.get(i) or EMPTY_DETAILS)[c])
    return result


def study_url(registration_id: str, registry: str = "ctgov") -> str:
    return registration_url(registry, registration_id)


def phase_label(phases: Iterable[str]) -> str:
    """["PHASE1", "PHASE2"] → "Phase 1/2"; no phases → "—"."""
    phases = list(phases)
    numbered = [p for p in PHASE_ORDER if p in phases]
    if numbered:
        if len(numbered) == 1:
            return PHASE_LABELS[numbered[0]]
        return "Phase " + "/".join(PHASE_LABELS[p].split()[-1] for p in numbered)
    return PHASE_LABELS["NA"] if "NA" in phases else "—"


def highest_phase(phases: Iterable[str]) -> str | None:
    ranked = [p for p in PHASE_ORDER if p in phases]
    if ranked:
        return ranked[-1]
    return "NA" if "NA" in phases else None


def investigational_mechanisms(keys: tuple[str, ...], comparators: tuple[str, ...]) -> tuple[str, ...]:
    """The keys a landscape counts by default: all but the comparators' — unless every key is a
    comparator's (a comparative-effectiveness trial of approved drugs studies them all)."""
    if not comparators:
        return keys
    kept = tuple(key for key in keys if key not in comparators)
    return kept or keys


def label_values(labels: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """One study's LABEL_COLUMNS from its (dimension, key, role) label rows, in stored order: key tuples,
    and the EDSS bounds as numbers (the widest when an override gives several)."""
    keys: dict[str, list[str]] = {column: [] for column in _KEY_COLUMNS.values()}
    bounds: dict[str, list[float]] = {name: [] for name in EDSS}
    for dimension, key, role in labels:
        if dimension in bounds:
            with contextlib.suppress(TypeError, ValueError):  # facet overrides are checked numbers
                bounds[dimension].append(float(key))
            continue
        column = _KEY_COLUMNS.get((dimension, role if dimension == "endpoint" else None))
        if column is not None and key not in keys[column]:
            keys[column].append(key)
    return {
        **{column: tuple(values) for column, values in keys.items()},
        "edss_min": min(bounds["edss_min"], default=None),
        "edss_max": max(bounds["edss_max"], default=None),
    }


EMPTY_LABEL_VALUES = label_values(())


def load_trial_frame(engine: Engine) -> pd.DataFrame:
    """One row per stored study with its effective labels; columns in TRIAL_FRAME_COLUMNS.

    Built from the rows `iter_trial_rows` streams (one query in which the database folds each study's
    children and labels into JSON arrays), column by column: no ORM objects, no per-table dictionaries,
    and a row is the same whether it is streamed to an export or loaded into the dashboard's frame."""
    import pandas as pd

    # search_text is rebuilt below with pandas' own lowering, which folds a few letters (the Turkish "İ")
    # unlike str.lower: the frame keeps the text it always had
    names = [name for name in TRIAL_FRAME_COLUMNS if name != "search_text"]
    values: dict[str, list[Any]] = {name: [] for name in names}
    columns = [(values[name].append, name) for name in names]
    for row in iter_trial_rows(engine, _EVERY_TRIAL):
        for append, name in columns:
            append(row[name])
    if not values["registration_id"]:
        return pd.DataFrame(columns=list(TRIAL_FRAME_COLUMNS))
    frame = pd.DataFrame(values, columns=names)
    values.clear()  # the lists are copied into the frame's blocks; free them before the conversions
    frame["search_text"] = (
        frame["registration_id"]
        + " "
        + frame["brief_title"].fillna("")
        + " "
        + frame["official_title"].fillna("")
        + " "
        + frame["acronym"].fillna("")
        + " "
        + frame["interventions"].map(" ".join)
        + " "
        + frame["lead_sponsor_name"].fillna("")
    ).str.lower() + frame["registration_ids"].map(_other_ids_text)
    for column in (*DATE_COLUMNS, "eu_decision_date"):
        frame[column] = pd.to_datetime(frame[column], errors="coerce")
    frame["start_year"] = frame["start_date"].dt.year.astype("Int64")
    for column in ("multi_disease", "manual", "removed", "has_results"):
        frame[column] = frame[column].astype(bool)
    for column in EDSS:  # numbers even when no trial has a bound (all None would make them objects)
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    _typed_history_columns(frame)
    return frame.sort_values("registration_id", ignore_index=True)[list(TRIAL_FRAME_COLUMNS)]


# The stored trial frame (`tracker.frame_snapshot`): its row in `frame_snapshots`, and the modules whose
# source decides what the frame holds (a change to any of them rebuilds the stored frame once).
TRIAL_FRAME_SNAPSHOT = "trial_frame"
_TRIAL_FRAME_MODULES = (
    "tracker.query",
    "tracker.filters",
    "tracker.registries",
    "tracker.linking",
    "tracker.frame_snapshot",
)


@functools.cache
def trial_frame_format() -> int:
    return frame_snapshot.frame_format(TRIAL_FRAME_COLUMNS, _TRIAL_FRAME_MODULES)


def load_trial_frame_snapshot(
    engine: Engine, version: Sequence[Any] | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """`load_trial_frame`, from the stored snapshot when it was built from the current data (`version`,
    read here when not given) by the current code; otherwise built and stored for the next process.
    With `columns` (of TRIAL_FRAME_COLUMNS), only those, in that order: a stored frame is read no further.

    Storing is best effort: a read-only database, or any failure to write, logs one warning and the
    built frame is returned all the same."""
    version_text = frame_snapshot.version_text(data_version(engine) if version is None else version)
    frame = frame_snapshot.read_snapshot(
        engine, TRIAL_FRAME_SNAPSHOT, version_text, trial_frame_format(), columns
    )
    if frame is not None:
        return frame
    frame = load_trial_frame(engine)
    _store_trial_frame(engine, frame, version_text)
    return frame if columns is None else frame[list(columns)]


def refresh_trial_frame_snapshot(engine: Engine) -> str:
    """Build and store the trial frame unless the stored one is current (the scheduler calls this after a
    sync lands, so the next dashboard process finds it ready); one line saying what happened."""
    version_text = frame_snapshot.version_text(data_version(engine))
    frame_format = trial_frame_format()
    if frame_snapshot.stored_version(engine, TRIAL_FRAME_SNAPSHOT) == (version_text, frame_format):
        return "trial frame snapshot already current"
    frame = load_trial_frame(engine)
    size = _store_trial_frame(engine, frame, version_text)
    if size is None:
        return "trial frame snapshot not stored"
    return f"trial frame snapshot stored ({len(frame)} trials, {size / 1e6:.1f} MB)"


def _store_trial_frame(engine: Engine, frame: pd.DataFrame, version_text: str) -> int | None:
    """Store a frame built from data version `version_text`, unless the data moved on while it was built
    (it would be stale at once); the payload's size, or None when nothing was stored."""
    try:
        if frame_snapshot.version_text(data_version(engine)) != version_text:
            return None
        return frame_snapshot.write_snapshot(
            engine, TRIAL_FRAME_SNAPSHOT, frame, version_text, trial_frame_format()
        )
    except (SQLAlchemyError, TrackerError, ValueError, TypeError, OSError) as exc:
        # pyarrow's conversion errors are ValueError / TypeError subclasses
        log.warning("could not store the trial frame snapshot: %s", one_line(exc))
        return None


# Every stored trial: the filter `load_trial_frame` streams rows through (the frame is filtered later).
_EVERY_TRIAL = TrialFilter(relevance=(), include_removed=True)


def _typed_history_columns(frame: pd.DataFrame) -> None:
    """The registry history's answers as nullable types; <NA> where the trial has none (yet)."""
    import pandas as pd

    for column in ("versions", "pcd_changes", "pcd_total_slip_days", "original_enrollment"):
        frame[column] = frame[column].astype("Int64")
    changed = frame["primary_outcome_changed_after_start"]
    frame["primary_outcome_changed_after_start"] = changed.astype(object).astype("boolean")
    frame["primary_outcome_changed_on"] = pd.to_datetime(
        frame["primary_outcome_changed_on"].astype(object), errors="coerce"
    )


def stored_names(engine: Engine) -> dict[str, list[str]]:
    """The free-text filter values the store holds: lead sponsor names and site countries."""
    with transaction(engine) as session:
        sponsors = session.scalars(
            select(Study.lead_sponsor_name).where(Study.lead_sponsor_name.is_not(None)).distinct()
        ).all()
        countries = session.scalars(
            select(Location.country).where(Location.country.is_not(None)).distinct()
        ).all()
    return {"lead_sponsors": sorted(sponsors), "countries": sorted(countries)}


def resolve_names(engine: Engine, trial_filter: TrialFilter) -> TrialFilter:
    """The filter with each --country / --lead-sponsor spelled as stored (any case); a name the store
    does not hold is a FilterError suggesting the closest stored names, not a silent empty result."""
    import difflib

    wanted = {"lead_sponsors": trial_filter.lead_sponsors, "countries": trial_filter.countries}
    if not any(wanted.values()):
        return trial_filter
    names = stored_names(engine)
    flags = {"lead_sponsors": "--lead-sponsor", "countries": "--country"}
    resolved: dict[str, tuple[str, ...]] = {}
    for field, values in wanted.items():
        by_fold = {name.casefold(): name for name in names[field]}
        spelled: list[str] = []
        for value in values:
            stored = by_fold.get(value.strip().casefold())
            if stored is None:
                close = difflib.get_close_matches(
                    value, names[field], n=3, cutoff=0.6
                ) or difflib.get_close_matches(value.casefold(), list(by_fold), n=3, cutoff=0.6)
                suggestion = (
                    f"; closest: {', '.join(by_fold.get(name, name) for name in close)}"
                    if close
                    else f"; none of the {len(names[field])} stored names is close"
                )
                raise FilterError(f"{flags[field]} {value!r} matches no stored trial{suggestion}")
            spelled.append(stored)
        resolved[field] = tuple(spelled)
    return trial_filter.with_changes(**resolved)


# Per study, the child values the trial frame folds into tuples, aggregated by the database as JSON arrays
# in position (or label id) order: (table, value expression, order) for SQLite / PostgreSQL.
_AGGREGATES = {
    "conditions": ("conditions", "name", "position"),
    "interventions": ("interventions", "name", "position"),
    "countries": ("locations", "country", "position"),
    "labels": ("study_labels", "{array}(dimension, key, role)", "id"),
}


def _aggregate_sql(dialect: str, table: str, value: str, order: str) -> str:
    if dialect == "postgresql":
        value = value.format(array="json_build_array")
        return (
            f"(SELECT json_agg({value} ORDER BY {order}) FROM {table} t"
            " WHERE t.registration_id = studies.registration_id)"
        )
    value = value.format(array="json_array")
    # json(v) keeps nested arrays arrays after the ordering subquery; a plain value stays as it is.
    item = "json(v)" if value.startswith("json_array") else "v"
    return (
        f"(SELECT json_group_array({item}) FROM (SELECT {value} AS v FROM {table} t"
        f" WHERE t.registration_id = studies.registration_id ORDER BY {order}))"
    )


def _json_list(value: Any) -> list[Any]:
    """An aggregated JSON array as the driver returns it: text (SQLite), a list (psycopg), None (no rows)."""
    if value is None:
        return []
    return orjson.loads(value) if isinstance(value, (str, bytes)) else list(value)


def _distinct(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(value for value in values if value is not None))


def iter_trial_rows(
    engine: Engine,
    trial_filter: TrialFilter,
    *,
    batch: int = 1000,
    span: tuple[str, str] | None = None,
    registrations: dict[str, tuple[Registration, ...]] | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows of `select_trials`, as dicts, one at a time and in NCT ID order, from one query that the
    database aggregates; no frame and no ORM objects, so memory stays flat however many trials there are.
    Each dict carries the trial frame's columns (dates as `date`, missing values as None). With `span`
    (first, last), only the trials whose registration ID lies in it (`registration_spans`); a walk shared
    among processes passes the `registrations` (`load_registrations`) it read once for all its spans."""
    dialect = engine.dialect.name
    aggregates = [
        literal_column(_aggregate_sql(dialect, *spec)).label(name) for name, spec in _AGGREGATES.items()
    ]
    statement = (
        select(
            *_STUDY_COLUMNS,
            Classification.multi_disease,
            Classification.taxonomy_version,
            Override.registration_id.is_not(None).label("manual"),
            *aggregates,
            *_HISTORY_SELECT,
        )
        .outerjoin(Classification, Classification.registration_id == Study.registration_id)
        .outerjoin(Override, Override.registration_id == Study.registration_id)
        .outerjoin(RegistryHistory, RegistryHistory.registration_id == Study.registration_id)
        .order_by(Study.registration_id)
    )
    if span is not None:
        statement = statement.where(Study.registration_id.between(*span))
    if registrations is None:
        registrations = load_registrations(engine)
    followers = _followers(registrations)
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=batch).execute(statement)
        keys = list(result.keys())
        for values in result:
            record = dict(zip(keys, values, strict=True))  # a plain dict reads faster than a RowMapping
            if record["registration_id"] in followers:
                continue
            row = _trial_row(record)
            row.update(trial_values(row["registration_id"], registrations.get(row["registration_id"])))
            _merge_trial_values(row)  # the URL, countries and search text of every registration
            if trial_filter.matches(row):
                yield row


def registration_spans(engine: Engine, size: int) -> list[tuple[str, str]]:
    """The stored registration IDs in order, cut into (first, last) spans of `size`: ranges that together
    cover every registration once, for readers that share a walk among processes."""
    with engine.connect() as connection:
        ids = list(connection.scalars(select(Study.registration_id).order_by(Study.registration_id)))
    return [(ids[start], ids[min(start + size, len(ids)) - 1]) for start in range(0, len(ids), size)]


# The registry-history columns of a streamed row, labelled by their trial-frame names.
_HISTORY_SELECT = tuple(
    column.label(f"history_{name}")
    for name, column in zip(
        HISTORY_COLUMNS,
        (
            RegistryHistory.version_count,
            RegistryHistory.pcd_changes,
            RegistryHistory.pcd_total_slip_days,
            RegistryHistory.original_enrollment_count,
            RegistryHistory.primary_outcome_changed_after_start,
            RegistryHistory.primary_outcome_changed_on,
        ),
        strict=True,
    )
)


def _trial_row(row: dict[str, Any]) -> dict[str, Any]:
    """One study's row of the trial frame, built as `load_trial_frame` builds it, in place from the
    streamed record (its aggregate and history columns become the frame's)."""
    registration_id = row["registration_id"]
    phases = tuple(row["phases"] or ())
    interventions = _distinct(_json_list(row["interventions"]))
    mechanisms: list[str] = []
    roles: list[str] = []
    comparator_keys: list[str] = []
    phenotypes: list[str] = []
    other_labels: list[tuple[str, str, str | None]] = []
    relevance = "unclassified"
    for dimension, key, role in _json_list(row.pop("labels")):
        if dimension in _LABEL_DIMENSIONS:
            other_labels.append((dimension, key, role))
        elif dimension == "relevance":
            relevance = key
        elif dimension == "mechanism":
            if key not in mechanisms:
                mechanisms.append(key)
            roles.append(f"{key}:{role}" if role else key)
            if role == "comparator":
                comparator_keys.append(key)
        elif dimension == "phenotype" and key not in phenotypes:
            phenotypes.append(key)
    classified = row["taxonomy_version"] is not None
    comparators = tuple(k for k in mechanisms if k in comparator_keys) if comparator_keys else ()
    start_date = row["start_date"]
    row.update(
        phases=phases,
        phase_label=phase_label(phases),
        highest_phase=highest_phase(phases),
        start_year=start_date.year if start_date is not None else None,
        sponsor_category=sponsor_category(row["lead_sponsor_class"]),
        conditions=_distinct(_json_list(row["conditions"])),
        interventions=interventions,
        countries=_distinct(_json_list(row["countries"])),
        relevance=relevance,
        mechanisms=tuple(mechanisms),
        comparator_mechanisms=comparators,
        investigational_mechanisms=investigational_mechanisms(tuple(mechanisms), comparators),
        mechanism_roles=tuple(roles),
        phenotypes=tuple(phenotypes),
        **(label_values(other_labels) if other_labels else EMPTY_LABEL_VALUES),
        multi_disease=bool(row["multi_disease"]) if classified else False,
        manual=bool(row["manual"]),
        removed=row.pop("removed_at") is not None,
        has_results=bool(row["has_results"]),
        search_text=" ".join(
            (
                registration_id,
                row["brief_title"] or "",
                row["official_title"] or "",
                row["acronym"] or "",
                " ".join(interventions),
                row["lead_sponsor_name"] or "",
            )
        ).lower(),
    )
    for name in HISTORY_COLUMNS:
        row[name] = row.pop(f"history_{name}")
    return row


# --- trials: the registrations of one trial folded into one row ---------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    """One registration of a trial as the trial view shows it."""

    registration_id: str
    registry: str
    trial_id: str
    status: str | None  # in the ClinicalTrials.gov vocabulary every registry is mapped to
    registry_status: str | None  # the registry's own label, where it has its own codes (CTIS)
    decision_date: date | None
    countries: tuple[tuple[str, str | None, date | None], ...]  # (country, status, decision date)

    @property
    def url(self) -> str:
        return registration_url(self.registry, self.registration_id)

    def as_dict(self) -> dict[str, Any]:
        """The trial page's form: plain values, the URL, countries as dicts."""
        return {
            "registration_id": self.registration_id,
            "registry": self.registry,
            "status": self.status,
            "registry_status": self.registry_status,
            "decision_date": self.decision_date,
            "url": self.url,
            "countries": [
                {"country": country, "status": status, "decision_date": decided}
                for country, status, decided in self.countries
            ],
        }


def load_registrations(engine: Engine) -> dict[str, tuple[Registration, ...]]:
    """Trial ID → its registrations (the one that stands for the trial first), for every trial that is
    not a single ClinicalTrials.gov registration; a store of one registry costs one empty query."""
    linked = select(Study.trial_id).where(Study.trial_id != Study.registration_id)
    with transaction(engine) as session:
        return _registrations(session, or_(Study.registry_name != "ctgov", Study.trial_id.in_(linked)))


def _registrations(session: Session, where: Any) -> dict[str, tuple[Registration, ...]]:
    """Trial ID → the registrations `where` selects, each trial's standing registration first."""
    rows = session.execute(
        select(
            Study.registration_id,
            Study.registry_name,
            Study.trial_id,
            Study.overall_status,
            Study.registry_status,
            Study.decision_date,
        ).where(where)
    ).all()
    countries: dict[str, list[tuple[str, str | None, date | None]]] = defaultdict(list)
    for chunk in batched([row.registration_id for row in rows]):
        for rid, country, status, decided in session.execute(
            select(
                RegistrationCountry.registration_id,
                RegistrationCountry.country,
                RegistrationCountry.status,
                RegistrationCountry.decision_date,
            )
            .where(RegistrationCountry.registration_id.in_(chunk))
            .order_by(RegistrationCountry.registration_id, RegistrationCountry.position)
        ):
            countries[rid].append((country, status, decided))
    trials: dict[str, list[Registration]] = defaultdict(list)
    for row in rows:
        trial = row.trial_id or row.registration_id
        trials[trial].append(
            Registration(
                row.registration_id,
                row.registry_name,
                trial,
                row.overall_status,
                row.registry_status,
                row.decision_date,
                tuple(countries.get(row.registration_id, ())),
            )
        )
    return {
        trial: tuple(
            sorted(
                items,
                key=lambda r: (r.registration_id != trial, *trial_sort_key(r.registration_id, r.registry)),
            )
        )
        for trial, items in trials.items()
    }


def _followers(registrations: dict[str, tuple[Registration, ...]]) -> set[str]:
    """Registrations that do not stand for their trial: their trial's row carries them."""
    return {
        r.registration_id
        for items in registrations.values()
        for r in items
        if r.registration_id != r.trial_id
    }


def trial_values(trial_id: str, registrations: tuple[Registration, ...] | None) -> dict[str, Any]:
    """The REGISTRATION_COLUMNS of one trial (a lone ClinicalTrials.gov registration has no entry)."""
    if not registrations:
        return {
            "trial_id": trial_id,
            "registries": ("ctgov",),
            "registration_ids": (trial_id,),
            "eu_countries": (),
            "eu_decision_date": None,
        }
    eu = [r for r in registrations if r.registry == "ctis"]
    decisions = [r.decision_date for r in eu if r.decision_date is not None]
    return {
        "trial_id": trial_id,
        "registries": tuple(dict.fromkeys(r.registry for r in registrations)),
        "registration_ids": tuple(r.registration_id for r in registrations),
        "eu_countries": tuple(
            f"{country}: {status}" if status else country for r in eu for country, status, _ in r.countries
        ),
        "eu_decision_date": min(decisions) if decisions else None,
    }


def _merge_trial_values(row: dict[str, Any]) -> None:
    """A trial's countries, URL and search text cover every registration's (a streamed row, in place)."""
    if not row["eu_countries"] and len(row["registration_ids"]) == 1:  # most trials: one registration
        row["url"] = registration_url(row["registries"][0], row["registration_id"])
        return
    eu_countries = tuple(text.split(": ", 1)[0] for text in row["eu_countries"])
    row["countries"] = _distinct((*row["countries"], *eu_countries))
    row["url"] = registration_url(row["registries"][0], row["registration_id"])
    row["search_text"] += _other_ids_text(row["registration_ids"])


def _other_ids_text(registration_ids: tuple[str, ...]) -> str:
    """The trial's other registration IDs for its search text: an EU CT number finds its NCT twin."""
    return "".join(f" {rid.lower()}" for rid in registration_ids[1:])


def select_trials(engine: Engine, trial_filter: TrialFilter) -> pd.DataFrame:
    return apply_filter(load_trial_frame(engine), trial_filter)


def change_events_frame(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Collection[str] | None = None,
    trial_ids: Collection[str] | None = None,
    include_baseline: bool = True,
) -> pd.DataFrame:
    """Change events, newest first, within [since, until), as a frame (see `change_events`); with
    `trial_ids`, the events of every registration of those trials."""
    import pandas as pd

    rows = change_events(engine, since=since, until=until, kinds=kinds, include_baseline=include_baseline)
    frame = pd.DataFrame.from_records(rows, columns=list(CHANGE_EVENT_COLUMNS))
    if trial_ids is not None:
        frame = frame[frame["trial_id"].isin(set(trial_ids))]
    frame["detected_at"] = pd.to_datetime(frame["detected_at"])
    frame["baseline"] = frame["baseline"].astype(bool)
    return frame.reset_index(drop=True)


REGISTRY_EVENT_COLUMNS = (
    "id",
    "registration_id",
    "version",
    "effective_date",
    "kind",
    "field",
    "old_value",
    "new_value",
    "days",
    "found_at",
    "baseline",
    "polled",
)


def registry_events_frame(
    engine: Engine,
    *,
    found_since: datetime | None = None,
    found_until: datetime | None = None,
    registration_ids: Collection[str] | None = None,
    include_baseline: bool = True,
    include_polled: bool = True,
) -> pd.DataFrame:
    """Registry change events (from the version history), by effective date then version.

    `include_polled=False` leaves out those a polled change event already stands for, so a caller that
    shows both kinds counts each change once.
    """
    import pandas as pd

    statement = select(
        RegistryChangeEvent.id,
        RegistryChangeEvent.registration_id,
        RegistryChangeEvent.version,
        RegistryChangeEvent.effective_date,
        RegistryChangeEvent.kind,
        RegistryChangeEvent.field,
        RegistryChangeEvent.old_value,
        RegistryChangeEvent.new_value,
        RegistryChangeEvent.days,
        RegistryChangeEvent.found_at,
        RegistryChangeEvent.baseline,
        RegistryChangeEvent.change_event_id.is_not(None).label("polled"),
    ).order_by(RegistryChangeEvent.effective_date, RegistryChangeEvent.version, RegistryChangeEvent.id)
    if found_since is not None:
        statement = statement.where(RegistryChangeEvent.found_at >= found_since)
    if found_until is not None:
        statement = statement.where(RegistryChangeEvent.found_at < found_until)
    if not include_baseline:
        statement = statement.where(RegistryChangeEvent.baseline.is_(False))
    if not include_polled:
        statement = statement.where(RegistryChangeEvent.change_event_id.is_(None))
    with transaction(engine) as session:
        if (
            registration_ids is not None and len(registration_ids) <= 50
        ):  # one trial's page: let the index do the work
            statement = statement.where(RegistryChangeEvent.registration_id.in_(list(registration_ids)))
        rows = session.execute(statement).all()
    frame = pd.DataFrame.from_records(rows, columns=list(REGISTRY_EVENT_COLUMNS))
    if registration_ids is not None:
        frame = frame[frame["registration_id"].isin(set(registration_ids))]
    frame["effective_date"] = pd.to_datetime(frame["effective_date"])
    frame["found_at"] = pd.to_datetime(frame["found_at"])
    frame["days"] = frame["days"].astype("Int64")
    frame["baseline"] = frame["baseline"].astype(bool)
    frame["polled"] = frame["polled"].astype(bool)
    return frame.reset_index(drop=True)


def registry_timeline(engine: Engine, registration_id: str) -> pd.DataFrame:
    """One trial's versions from the registry history: version, date, status (empty when not backfilled)."""
    import pandas as pd

    with transaction(engine) as session:
        rows = session.execute(
            select(
                RegistryVersion.version,
                RegistryVersion.version_date,
                RegistryVersion.overall_status,
                RegistryVersion.primary_completion_date_raw,
                RegistryVersion.primary_completion_date_type,
            )
            .where(RegistryVersion.registration_id == registration_id)
            .order_by(RegistryVersion.version)
        ).all()
    frame = pd.DataFrame.from_records(
        rows, columns=["version", "date", "overall_status", "primary_completion_date", "pcd_type"]
    )
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def data_version(engine: Engine) -> tuple[Any, ...]:
    """Changes whenever anything the trial frame shows lands: a sync or import, a classification, an
    override, a manual link or unlink, a history backfill (its index or an accepted version chain). The
    dashboard's cache key, and what a stored frame snapshot is checked against (`tracker.frame_snapshot`)."""
    with transaction(engine) as session:
        return tuple(
            session.execute(
                select(
                    select(func.max(SyncRun.id)).scalar_subquery(),
                    select(func.max(SyncRun.finished_at)).scalar_subquery(),
                    select(func.max(ChangeEvent.id)).scalar_subquery(),
                    select(func.max(Classification.classified_at)).scalar_subquery(),
                    select(func.count()).select_from(Classification).scalar_subquery(),
                    select(func.max(Override.updated_at)).scalar_subquery(),
                    select(func.count()).select_from(Override).scalar_subquery(),
                    select(func.max(RegistryHistory.index_read_at)).scalar_subquery(),
                    # accepting a version chain rewrites a trial's summary without reading its index again
                    select(func.max(RegistryHistory.versions_accepted_at)).scalar_subquery(),
                    select(func.max(RegistryChangeEvent.id)).scalar_subquery(),
                    # a decision replaces the pair's earlier one (same count): its time tells them apart
                    select(func.max(RegistrationLink.created_at)).scalar_subquery(),
                    select(func.count()).select_from(RegistrationLink).scalar_subquery(),
                )
            ).one()
        )


def study_detail(engine: Engine, registration_id: str) -> dict[str, Any] | None:
    """Everything the trial detail view shows: fields, children, classification, override, history, and
    every registration of the trial. Any registration's ID finds its trial (the registration that stands
    for it gives the fields)."""
    with transaction(engine) as session:
        study = session.get(Study, registration_id)
        if study is None:
            return None
        if study.trial_id and study.trial_id != registration_id:
            registration_id = study.trial_id
            study = session.get(Study, registration_id)
            if study is None:
                return None
        trial = _registrations(session, Study.trial_id == registration_id).get(registration_id, ())
        registrations = [registration.as_dict() for registration in trial]
        fields = {column.key: getattr(study, column.key) for column in (*_STUDY_COLUMNS, *_DETAIL_COLUMNS)}
        fields["std_ages"] = list(fields["std_ages"] or ())
        classification = session.get(Classification, registration_id)
        override = session.get(Override, registration_id)

        def rows(model: Any, *columns: Any) -> list[dict[str, Any]]:
            statement = (
                select(*columns).where(model.registration_id == registration_id).order_by(model.position)
            )
            return [dict(row._mapping) for row in session.execute(statement)]

        return {
            **fields,
            "trial_id": registration_id,
            "registry": study.registry_name,
            "registrations": registrations,
            "url": study_url(registration_id, study.registry_name),
            "conditions": [r["name"] for r in rows(Condition, Condition.name)],
            "keywords": [r["name"] for r in rows(Keyword, Keyword.name)],
            "interventions": rows(
                Intervention,
                Intervention.type,
                Intervention.name,
                Intervention.other_names,
                Intervention.description,
                Intervention.arm_group_labels,
                Intervention.arm_role,
            ),
            "collaborators": rows(Collaborator, Collaborator.name, Collaborator.agency_class),
            "arm_groups": rows(
                ArmGroup, ArmGroup.label, ArmGroup.type, ArmGroup.description, ArmGroup.intervention_names
            ),
            "outcomes": [
                dict(row._mapping)
                for row in session.execute(
                    select(
                        OutcomeMeasure.role,
                        OutcomeMeasure.position,
                        OutcomeMeasure.measure,
                        OutcomeMeasure.description,
                        OutcomeMeasure.time_frame,
                    )
                    .where(OutcomeMeasure.registration_id == registration_id)
                    .order_by(OutcomeMeasure.id)
                )
            ],
            "secondary_ids": rows(SecondaryId, SecondaryId.identifier, SecondaryId.type, SecondaryId.domain),
            "locations": rows(
                Location, Location.facility, Location.city, Location.state, Location.country, Location.status
            ),
            "classification": None
            if classification is None
            else {
                "taxonomy_version": classification.taxonomy_version,
                "classified_at": classification.classified_at,
                "relevance": classification.relevance,
                "multi_disease": classification.multi_disease,
                "result": classification.result,
            },
            "labels": [
                dict(row._mapping)
                for row in session.execute(
                    select(StudyLabel.dimension, StudyLabel.key, StudyLabel.role, StudyLabel.source)
                    .where(StudyLabel.registration_id == registration_id)
                    .order_by(StudyLabel.id)
                )
            ],
            "override": None
            if override is None
            else {
                "relevance": override.relevance,
                "mechanisms": override.mechanisms,
                "phenotypes": override.phenotypes,
                "note": override.note,
                "created_at": override.created_at,
                "updated_at": override.updated_at,
            },
            "changes": [
                dict(row._mapping)
                for row in session.execute(
                    select(
                        ChangeEvent.detected_at,
                        ChangeEvent.kind,
                        ChangeEvent.field,
                        ChangeEvent.old_value,
                        ChangeEvent.new_value,
                        ChangeEvent.baseline,
                    )
                    .where(ChangeEvent.registration_id == registration_id)
                    .order_by(ChangeEvent.detected_at.desc(), ChangeEvent.id.desc())
                )
            ],
            "version_count": session.scalar(
                select(func.count())
                .select_from(StudyVersion)
                .where(StudyVersion.registration_id == registration_id)
            ),
            "registry_history": _registry_summary(session.get(RegistryHistory, registration_id)),
        }


def _registry_summary(history: RegistryHistory | None) -> dict[str, Any] | None:
    if history is None:
        return None
    return {
        "versions": history.version_count,
        "versions_fetched_through": history.versions_through,
        "index_read_at": history.index_read_at,
        "original_enrollment": history.original_enrollment_count,
        "original_enrollment_type": history.original_enrollment_type,
        "pcd_changes": history.pcd_changes,
        "pcd_total_slip_days": history.pcd_total_slip_days,
        "primary_outcome_changed_after_start": history.primary_outcome_changed_after_start,
        "primary_outcome_changed_on": history.primary_outcome_changed_on,
        "error": history.error,
    }
