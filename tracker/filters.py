"""`TrialFilter`: the one filter model shared by the dashboard, `tracker export` and digest subscriptions.

It round-trips through a plain dict (stored with subscriptions and export provenance) and through URL
query parameters (the dashboard), and applies itself to the trial frame built by `tracker.query`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from functools import cache
from typing import TYPE_CHECKING, Any

from tracker.ctgov.parse import STATUSES_ACTIVE
from tracker.errors import FilterError
from tracker.taxonomy import load_taxonomy

if TYPE_CHECKING:
    import pandas as pd

STATUSES = (
    "NOT_YET_RECRUITING",
    "RECRUITING",
    "ENROLLING_BY_INVITATION",
    "ACTIVE_NOT_RECRUITING",
    "COMPLETED",
    "SUSPENDED",
    "TERMINATED",
    "WITHDRAWN",
    "UNKNOWN",
    "AVAILABLE",
    "NO_LONGER_AVAILABLE",
    "TEMPORARILY_NOT_AVAILABLE",
    "APPROVED_FOR_MARKETING",
    "WITHHELD",
)
ACTIVE_SHORTCUT = "active"
PHASES = ("EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA")
STUDY_TYPES = ("INTERVENTIONAL", "OBSERVATIONAL", "EXPANDED_ACCESS")
# Lead sponsor agency classes folded into the three groups researchers ask about.
SPONSOR_CATEGORIES: dict[str, tuple[str, ...]] = {
    "industry": ("INDUSTRY",),
    "academic_other": ("OTHER", "NETWORK", "INDIV", "AMBIG", "UNKNOWN"),
    "government": ("NIH", "FED", "OTHER_GOV"),
}
DEFAULT_RELEVANCE = ("ms", "ms_plus")
# Relevance "all" (URL, CLI) means no relevance restriction: the empty tuple.
ALL_RELEVANCE = "all"

_LIST_FIELDS = (
    "relevance",
    "mechanisms",
    "phenotypes",
    "phases",
    "statuses",
    "study_types",
    "sponsor_classes",
    "lead_sponsors",
    "countries",
    "primary_endpoint_families",
)
# Free-text values may contain commas ("Korea, Republic of"), so a plain string is one value there.
_FREE_TEXT_LIST_FIELDS = ("lead_sponsors", "countries")
_INT_FIELDS = ("start_year_min", "start_year_max")
_BOOL_FIELDS = ("has_results", "multi_disease", "outcome_changed_after_start")
_FLAG_FIELDS = ("include_removed", "include_comparators")
# The trial-frame column of mechanism keys a filter counts: investigational only, or comparators too.
INVESTIGATIONAL_MECHANISMS = "investigational_mechanisms"
ALL_MECHANISMS = "mechanisms"
# The trial-frame column of effective primary endpoint keys the endpoint-family filter reads.
PRIMARY_ENDPOINTS = "endpoints_primary"


def sponsor_category(agency_class: str | None) -> str:
    for category, classes in SPONSOR_CATEGORIES.items():
        if agency_class in classes:
            return category
    return "academic_other"


@dataclass(frozen=True)
class TrialFilter:
    """Which trials to show. Empty tuples and None mean "no restriction" on that field.

    Values within a field are alternatives (any of); fields combine with AND.
    """

    text: str | None = None
    relevance: tuple[str, ...] = DEFAULT_RELEVANCE
    mechanisms: tuple[str, ...] = ()
    phenotypes: tuple[str, ...] = ()
    phases: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()  # may contain the shortcut "active"
    study_types: tuple[str, ...] = ()
    sponsor_classes: tuple[str, ...] = ()
    lead_sponsors: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    # Endpoint families (taxonomy "Endpoint" families, by key: imaging, clinical_disability…): a trial
    # matches when any of its primary endpoint keys belongs to one of them.
    primary_endpoint_families: tuple[str, ...] = ()
    start_year_min: int | None = None
    start_year_max: int | None = None
    has_results: bool | None = None
    multi_disease: bool | None = None
    # From the registry history: a primary outcome was added, removed or reworded after the trial started.
    # False keeps the trials known unchanged; trials without a backfilled history match neither.
    outcome_changed_after_start: bool | None = None
    # Trials a full sync no longer finds for the query are kept but flagged; shown only on request.
    include_removed: bool = False
    # A comparator's mechanism ("ocrelizumab" in "fenebrutinib compared with ocrelizumab") is not under
    # study: mechanism filters and counts leave it out unless asked.
    include_comparators: bool = False

    @property
    def mechanism_column(self) -> str:
        """The trial-frame column whose mechanism keys this filter matches and counts."""
        return ALL_MECHANISMS if self.include_comparators else INVESTIGATIONAL_MECHANISMS

    @property
    def primary_endpoint_keys(self) -> tuple[str, ...]:
        """The endpoint keys of the chosen families: any of them as a primary endpoint makes a match."""
        return _endpoint_keys_of(self.primary_endpoint_families) if self.primary_endpoint_families else ()

    def validate(self) -> TrialFilter:
        """Return self, or raise FilterError naming the bad value and the valid ones."""
        taxonomy = load_taxonomy()
        taxonomy.validate("relevance", self.relevance)
        taxonomy.validate("mechanism", self.mechanisms)
        taxonomy.validate("phenotype", self.phenotypes)
        _check("phase", self.phases, PHASES)
        _check("status", self.statuses, (*STATUSES, ACTIVE_SHORTCUT))
        _check("study type", self.study_types, STUDY_TYPES)
        _check("sponsor class", self.sponsor_classes, tuple(SPONSOR_CATEGORIES))
        _check("primary endpoint family", self.primary_endpoint_families, endpoint_family_keys())
        low, high = self.start_year_min, self.start_year_max
        if low is not None and high is not None and low > high:
            raise FilterError(f"start year range is empty: {low} > {high}")
        return self

    @property
    def expanded_statuses(self) -> tuple[str, ...]:
        """Statuses with the "active" shortcut replaced by the four statuses it stands for."""
        expanded: list[str] = []
        for status in self.statuses:
            for value in STATUSES_ACTIVE if status == ACTIVE_SHORTCUT else (status,):
                if value not in expanded:
                    expanded.append(value)
        return tuple(expanded)

    def matches(self, row: Mapping[str, Any]) -> bool:
        """`apply_filter` for one row of the trial frame, for readers that stream rows (the export)."""
        if self.text and self.text.strip().lower() not in row["search_text"]:
            return False
        if self.relevance and row["relevance"] not in self.relevance:
            return False
        for column, wanted in (
            (self.mechanism_column, self.mechanisms),
            ("phenotypes", self.phenotypes),
            ("phases", self.phases),
            ("countries", self.countries),
            (PRIMARY_ENDPOINTS, self.primary_endpoint_keys),
        ):
            if wanted and frozenset(wanted).isdisjoint(row[column]):
                return False
        for column, allowed in (
            ("overall_status", self.expanded_statuses),
            ("study_type", self.study_types),
            ("sponsor_category", self.sponsor_classes),
            ("lead_sponsor_name", self.lead_sponsors),
        ):
            if allowed and row[column] not in allowed:
                return False
        year = row["start_year"]
        if self.start_year_min is not None and (year is None or year < self.start_year_min):
            return False
        if self.start_year_max is not None and (year is None or year > self.start_year_max):
            return False
        if self.has_results is not None and bool(row["has_results"]) != self.has_results:
            return False
        if self.multi_disease is not None and bool(row["multi_disease"]) != self.multi_disease:
            return False
        if self.outcome_changed_after_start is not None:
            changed = row["primary_outcome_changed_after_start"]
            if not isinstance(changed, bool) or changed != self.outcome_changed_after_start:
                return False  # unknown (not backfilled) matches neither answer
        return self.include_removed or not row["removed"]

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults, JSON-ready (lists, not tuples)."""
        default = TrialFilter()
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in asdict(self).items()
            if value != getattr(default, name)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialFilter:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FilterError(f"unknown filter field(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in _LIST_FIELDS:
                items = _as_list(value, split=name not in _FREE_TEXT_LIST_FIELDS)
                if name == "relevance" and [item.lower() for item in items] == [ALL_RELEVANCE]:
                    items = []
                values[name] = tuple(items)
            elif name in _INT_FIELDS:
                values[name] = _as_int(name, value)
            elif name in _BOOL_FIELDS:
                values[name] = _as_bool(name, value)
            elif name in _FLAG_FIELDS:
                values[name] = bool(_as_bool(name, value))
            else:
                values[name] = str(value).strip() or None if value is not None else None
        return cls(**_canonical_enums(values)).validate()

    def to_query_params(self) -> dict[str, str | list[str]]:
        """URL query parameters for the non-default fields; list fields become repeated parameters."""
        params: dict[str, str | list[str]] = {}
        for name, value in self.to_dict().items():
            if name == "relevance" and not value:
                params[name] = ALL_RELEVANCE
            elif isinstance(value, list):
                params[name] = value or ""  # an explicitly emptied list must survive the URL
            elif isinstance(value, bool):
                params[name] = "true" if value else "false"
            elif value is not None:
                params[name] = str(value)
        return params

    @classmethod
    def from_query_params(cls, params: Mapping[str, Any]) -> tuple[TrialFilter, list[str]]:
        """Parse URL parameters leniently: a bad field falls back to its default with a warning.

        A list field's value may be a list (repeated parameters) or one comma-separated string.
        """
        known = {f.name for f in fields(cls)}
        filter_ = cls()
        warnings: list[str] = []
        for name, value in params.items():
            if name not in known:
                continue  # other parameters (e.g. the selected trial) belong to the page
            try:
                candidate = cls.from_dict({**filter_.to_dict(), name: value})
            except FilterError as exc:
                warnings.append(f"ignored {name}={value!r}: {exc}")
                continue
            filter_ = candidate
        return filter_, warnings

    def with_changes(self, **changes: Any) -> TrialFilter:
        return replace(self, **changes)

    def describe(self) -> str:
        """One human line naming the filter, for digest footers and export provenance."""
        parts = []
        taxonomy = load_taxonomy()
        if self.text:
            parts.append(f'text "{self.text}"')
        if self.relevance != DEFAULT_RELEVANCE:
            parts.append("relevance " + ", ".join(self.relevance or ("any",)))
        if self.mechanisms:
            parts.append("mechanism " + ", ".join(taxonomy.label("mechanism", k) for k in self.mechanisms))
        if self.phenotypes:
            parts.append("phenotype " + ", ".join(taxonomy.label("phenotype", k) for k in self.phenotypes))
        for label, values in (
            ("phase", self.phases),
            ("status", self.statuses),
            ("study type", self.study_types),
            ("sponsor class", self.sponsor_classes),
            ("lead sponsor", self.lead_sponsors),
            ("country", self.countries),
        ):
            if values:
                parts.append(f"{label} " + ", ".join(values))
        if self.primary_endpoint_families:
            names = {family.key: family.label for family in taxonomy.family_groups("endpoint")}
            parts.append(
                "primary endpoint " + ", ".join(names.get(k, k) for k in self.primary_endpoint_families)
            )
        if self.start_year_min is not None or self.start_year_max is not None:
            parts.append(f"start year {self.start_year_min or '…'}–{self.start_year_max or '…'}")
        if self.has_results is not None:
            parts.append("with results" if self.has_results else "without results")
        if self.multi_disease is not None:
            parts.append("multi-disease" if self.multi_disease else "MS only")
        if self.outcome_changed_after_start is not None:
            parts.append(
                "primary outcome changed after start"
                if self.outcome_changed_after_start
                else "primary outcome unchanged after start"
            )
        if self.include_removed:
            parts.append("including trials no longer found by the registry search")
        if self.include_comparators:
            parts.append("mechanisms of comparators counted")
        return "; ".join(parts) if parts else "all MS trials"


def apply_filter(frame: pd.DataFrame, trial_filter: TrialFilter) -> pd.DataFrame:
    """The rows of the trial frame (see `tracker.query.load_trial_frame`) that match the filter."""
    import pandas as pd

    if frame.empty:
        return frame
    mask = pd.Series(True, index=frame.index)
    f = trial_filter
    if f.text:
        mask &= frame["search_text"].str.contains(f.text.strip().lower(), regex=False)
    if f.relevance:
        mask &= frame["relevance"].isin(f.relevance)
    for column, wanted in (
        (f.mechanism_column, f.mechanisms),
        ("phenotypes", f.phenotypes),
        ("phases", f.phases),
        ("countries", f.countries),
        (PRIMARY_ENDPOINTS, f.primary_endpoint_keys),
    ):
        if wanted:
            mask &= _any_of(frame[column], wanted)
    if f.statuses:
        mask &= frame["overall_status"].isin(f.expanded_statuses)
    if f.study_types:
        mask &= frame["study_type"].isin(f.study_types)
    if f.sponsor_classes:
        mask &= frame["sponsor_category"].isin(f.sponsor_classes)
    if f.lead_sponsors:
        mask &= frame["lead_sponsor_name"].isin(f.lead_sponsors)
    if f.start_year_min is not None:
        mask &= frame["start_year"] >= f.start_year_min
    if f.start_year_max is not None:
        mask &= frame["start_year"] <= f.start_year_max
    if f.has_results is not None:
        mask &= frame["has_results"] == f.has_results
    if f.multi_disease is not None:
        mask &= frame["multi_disease"] == f.multi_disease
    if f.outcome_changed_after_start is not None:
        changed = frame["primary_outcome_changed_after_start"]
        mask &= (changed == f.outcome_changed_after_start).fillna(False).astype(bool)
    if not f.include_removed:
        mask &= ~frame["removed"].astype(bool)
    return frame[mask]


def _any_of(column: pd.Series, wanted: Iterable[str]) -> pd.Series:
    """Rows whose tuple of values shares at least one value with `wanted`."""
    wanted_set = frozenset(wanted)
    return column.map(wanted_set.isdisjoint).eq(False)


def _fold(value: str) -> str:
    """What a careless spelling of an enum value shares with the real one: "phase 3", "Phase3" and
    "PHASE_3" all fold to "phase3"."""
    return "".join(character for character in value if character not in " _-").casefold()


def enum_values() -> dict[str, tuple[str, ...]]:
    """The valid values of each enum-like filter field (the taxonomy's keys for the label fields)."""
    taxonomy = load_taxonomy()
    return {
        "relevance": tuple(item.key for item in taxonomy.keys("relevance")),
        "mechanisms": tuple(item.key for item in taxonomy.keys("mechanism")),
        "phenotypes": tuple(item.key for item in taxonomy.keys("phenotype")),
        "phases": PHASES,
        "statuses": (*STATUSES, ACTIVE_SHORTCUT),
        "study_types": STUDY_TYPES,
        "sponsor_classes": tuple(SPONSOR_CATEGORIES),
        "primary_endpoint_families": endpoint_family_keys(),
    }


@cache  # the streamed export asks once per row
def _endpoint_keys_of(families: tuple[str, ...]) -> tuple[str, ...]:
    chosen = set(families)
    groups = load_taxonomy().family_groups("endpoint")
    return tuple(key for family in groups if family.key in chosen for key in family.members)


def endpoint_family_keys() -> tuple[str, ...]:
    """The keys `primary_endpoint_families` takes, in taxonomy order."""
    return tuple(family.key for family in load_taxonomy().family_groups("endpoint"))


def canonical_value(value: str, valid: Iterable[str]) -> str:
    """The valid value `value` means, whatever its case or separators; unchanged when it means none."""
    folded = _fold(value)
    for candidate in valid:
        if _fold(candidate) == folded:
            return candidate
    return value


def _canonical_enums(values: dict[str, Any]) -> dict[str, Any]:
    enums = enum_values()
    return {
        name: tuple(canonical_value(item, enums[name]) for item in value) if name in enums else value
        for name, value in values.items()
    }


def _check(name: str, values: Iterable[str], valid: tuple[str, ...]) -> None:
    unknown = [value for value in values if value not in valid]
    if unknown:
        raise FilterError(f"unknown {name} value(s): {', '.join(unknown)}; valid: {', '.join(valid)}")


def _as_list(value: Any, *, split: bool = True) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",") if split else [value]
    return [str(item).strip() for item in value if str(item).strip()]


def _as_int(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FilterError(f"{name} must be a whole number, not {value!r}") from None


def _as_bool(name: str, value: Any) -> bool | None:
    if value is None or value == "" or isinstance(value, bool):
        return value if isinstance(value, bool) else None
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise FilterError(f"{name} must be true or false, not {value!r}")
