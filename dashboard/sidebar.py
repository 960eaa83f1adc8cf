"""The sidebar filters: widgets ↔ `TrialFilter` ↔ the page's URL query parameters.

The filter model and its URL form belong to `tracker.filters`; this module only maps widget values to it.
The URL is read once per browser session (a pasted link restores its view); after that the widgets are
the source of truth and every change is written back to the URL, so a copied link reproduces the view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import fields
from typing import Any

import streamlit as st

from dashboard import labels
from dashboard.data import FilterChoices
from dashboard.labels import markdown_text
from tracker.errors import FilterError
from tracker.filters import ACTIVE_SHORTCUT, PHASES, SPONSOR_CATEGORIES, STATUSES, STUDY_TYPES, TrialFilter
from tracker.taxonomy import load_taxonomy

PREFIX = "filter_"
LAST_FILTER = "_last_filter"
URL_WARNINGS = "_filter_url_warnings"
ANY, YES, NO = "Any", "Yes", "No"
_TRISTATE: dict[str, bool | None] = {ANY: None, YES: True, NO: False}
ACTIVE_LABEL = "Active (not yet recruiting, recruiting, by invitation, active not recruiting)"
# Start years a link may ask for; beyond them the slider would span centuries.
PLAUSIBLE_YEARS = (1900, 2100)
LIST_FIELDS = tuple(f.name for f in fields(TrialFilter) if isinstance(f.default, tuple))


def key(name: str) -> str:
    return PREFIX + name


def params_mapping(names: list[str], get_all: Callable[[str], list[str]]) -> dict[str, Any]:
    """URL parameters as `TrialFilter.from_query_params` wants them: every value of a list field (it may
    be repeated), the last value of the others."""
    mapping: dict[str, Any] = {}
    for name in names:
        values = get_all(name)
        if not values:
            continue
        mapping[name] = values if name in LIST_FIELDS else values[-1]
    return mapping


def widget_state(trial_filter: TrialFilter, choices: FilterChoices) -> dict[str, Any]:
    """The session-state values that make the widgets show `trial_filter`."""
    state: dict[str, Any] = {
        key("text"): trial_filter.text or "",
        key("start_years"): year_bounds(trial_filter, choices),
        key("has_results"): _tristate_label(trial_filter.has_results),
        key("multi_disease"): _tristate_label(trial_filter.multi_disease),
        key("outcome_changed_after_start"): _tristate_label(trial_filter.outcome_changed_after_start),
        key("include_removed"): trial_filter.include_removed,
        key("include_comparators"): trial_filter.include_comparators,
    }
    for name in LIST_FIELDS:
        state[key(name)] = list(getattr(trial_filter, name))
    return state


def filter_from_state(state: Mapping[str, Any], choices: FilterChoices) -> TrialFilter:
    """The `TrialFilter` the widgets show. A year slider left at its full range means "any start year", so
    trials without a start date stay in."""
    low, high = state.get(key("start_years"), (choices.first_year, choices.last_year))
    values: dict[str, Any] = {name: tuple(state.get(key(name), ())) for name in LIST_FIELDS}
    values["relevance"] = tuple(state.get(key("relevance"), TrialFilter().relevance))
    values["text"] = (state.get(key("text")) or "").strip() or None
    values["start_year_min"] = int(low) if int(low) > choices.first_year else None
    values["start_year_max"] = int(high) if int(high) < choices.last_year else None
    values["has_results"] = _TRISTATE.get(state.get(key("has_results"), ANY))
    values["multi_disease"] = _TRISTATE.get(state.get(key("multi_disease"), ANY))
    values["outcome_changed_after_start"] = _TRISTATE.get(state.get(key("outcome_changed_after_start"), ANY))
    values["include_removed"] = bool(state.get(key("include_removed"), False))
    values["include_comparators"] = bool(state.get(key("include_comparators"), False))
    return TrialFilter(**values).validate()


def year_bounds(trial_filter: TrialFilter, choices: FilterChoices) -> tuple[int, int]:
    """The slider's (low, high): the filter's years, the data's first and last start year where it has
    none. An open end stays at or beyond the other end (e.g. a minimum later than every trial's start)."""
    low, high = trial_filter.start_year_min, trial_filter.start_year_max
    if low is None:
        low = choices.first_year if high is None else min(choices.first_year, high)
    if high is None:
        high = max(choices.last_year, low)
    return low, high


def implausible_years(trial_filter: TrialFilter) -> tuple[TrialFilter, list[str]]:
    """The filter without start years outside PLAUSIBLE_YEARS (a slider cannot span them), and the notices."""
    first, last = PLAUSIBLE_YEARS
    changes: dict[str, None] = {}
    warnings = []
    for name in ("start_year_min", "start_year_max"):
        year = getattr(trial_filter, name)
        if year is not None and not first <= year <= last:
            changes[name] = None
            warnings.append(f"ignored {name}={year}: not a start year between {first} and {last}")
    return trial_filter.with_changes(**changes), warnings


def set_cell_filter(state: MutableMapping[str, Any], mechanism: str, phenotype: str) -> None:
    """A heat-map cell was clicked: show exactly that mechanism and phenotype."""
    state[key("mechanisms")] = [mechanism]
    state[key("phenotypes")] = [phenotype]


def _tristate_label(value: bool | None) -> str:
    return ANY if value is None else YES if value else NO


def init_widgets(choices: FilterChoices) -> None:
    """Give the widgets their values when they have none: from the URL on a session's first run (a pasted
    link restores its view; bad parameters fall back with a notice), else from the last filter shown
    (Streamlit forgets widget values while another page is open)."""
    if key("text") in st.session_state:
        return
    params = st.query_params
    last = st.session_state.get(LAST_FILTER)
    if isinstance(last, TrialFilter) and not list(params.keys()):
        trial_filter, warnings = last, []
    else:
        mapping = params_mapping(list(params.keys()), params.get_all)
        trial_filter, warnings = TrialFilter.from_query_params(mapping)
        trial_filter, year_warnings = implausible_years(trial_filter)
        warnings += year_warnings
    st.session_state.update(widget_state(trial_filter, choices))
    st.session_state[URL_WARNINGS] = warnings


def sync_url(trial_filter: TrialFilter) -> None:
    """Write the filter to the URL (only when it changed, so the browser history stays quiet)."""
    wanted = trial_filter.to_query_params()
    current = params_mapping(list(st.query_params.keys()), st.query_params.get_all)
    if comparable_params(current) != comparable_params(wanted):
        st.query_params.from_dict(wanted)


def comparable_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """URL parameters with list fields as lists of non-empty values ("" and [] alike, "x" and ["x"])."""
    comparable: dict[str, Any] = {}
    for name, value in params.items():
        if name in LIST_FIELDS:
            values = value if isinstance(value, list) else [value]
            comparable[name] = [v for v in values if v]
        else:
            comparable[name] = value
    return comparable


def reset_filters(choices: FilterChoices) -> None:
    st.session_state.update(widget_state(TrialFilter(), choices))
    st.session_state[URL_WARNINGS] = []


def filter_sidebar(choices: FilterChoices) -> TrialFilter:
    """Draw the filter widgets in the sidebar and return the filter they describe."""
    init_widgets(choices)
    taxonomy = load_taxonomy()
    sidebar = st.sidebar
    sidebar.header("Filters")
    for warning in st.session_state.get(URL_WARNINGS, []):
        sidebar.warning(markdown_text(f"Link parameter {warning}; using the default instead."))

    sidebar.text_input("Search", key=key("text"), placeholder="title, acronym, NCT ID, intervention, sponsor")
    sidebar.multiselect(
        "Relevance",
        [item.key for item in taxonomy.relevance],
        key=key("relevance"),
        format_func=lambda k: labels.relevance_labels().get(k, k),
        help="Trials classified as not about MS are hidden unless chosen here.",
    )
    ordered_mechanisms = [k for keys in taxonomy.families().values() for k in keys]
    sidebar.multiselect(
        "Mechanism",
        ordered_mechanisms,
        key=key("mechanisms"),
        # The chip shows the mechanism alone: with its family in front, a chip is cut short.
        format_func=labels.mechanism_label,
        help="Listed family by family, as in the taxonomy.",
    )
    sidebar.checkbox(
        "Count comparators' mechanisms",
        key=key("include_comparators"),
        help="Off: a trial counts under the mechanisms it studies, not under its active comparator's "
        "(ocrelizumab in a fenebrutinib-versus-ocrelizumab trial). On: under both.",
    )
    sidebar.multiselect(
        "Phenotype",
        [item.key for item in taxonomy.phenotypes],
        key=key("phenotypes"),
        format_func=labels.phenotype_label,
    )
    sidebar.multiselect(
        "Primary endpoint",
        list(labels.endpoint_family_labels()),
        key=key("primary_endpoint_families"),
        format_func=labels.endpoint_family_label,
        help="Endpoint families of the taxonomy: a trial shows when any of its primary outcome measures "
        "falls in one of those chosen.",
    )
    sidebar.multiselect("Phase", list(PHASES), key=key("phases"), format_func=labels.phase_label)
    sidebar.multiselect(
        "Overall status",
        [ACTIVE_SHORTCUT, *STATUSES],
        key=key("statuses"),
        format_func=lambda k: ACTIVE_LABEL if k == ACTIVE_SHORTCUT else labels.status_label(k),
    )
    sidebar.multiselect(
        "Study type", list(STUDY_TYPES), key=key("study_types"), format_func=labels.study_type_label
    )
    sidebar.multiselect(
        "Lead sponsor class",
        list(SPONSOR_CATEGORIES),
        key=key("sponsor_classes"),
        format_func=labels.sponsor_class_label,
    )
    chosen_sponsors = st.session_state.get(key("lead_sponsors"), [])
    sidebar.multiselect(
        "Lead sponsor",
        _with_chosen(choices.lead_sponsors, chosen_sponsors),
        key=key("lead_sponsors"),
        help="Sponsors with the most trials first.",
    )
    chosen_countries = st.session_state.get(key("countries"), [])
    sidebar.multiselect("Country", _with_chosen(choices.countries, chosen_countries), key=key("countries"))
    low, high = st.session_state.get(key("start_years"), (choices.first_year, choices.last_year))
    sidebar.slider(
        "Start year",
        min_value=min(choices.first_year, int(low), int(high)),
        max_value=max(choices.last_year, int(low), int(high)),
        key=key("start_years"),
        help="At the full range, trials without a start date are included.",
    )
    sidebar.radio("Has results", list(_TRISTATE), key=key("has_results"), horizontal=True)
    sidebar.radio("Multi-disease", list(_TRISTATE), key=key("multi_disease"), horizontal=True)
    sidebar.radio(
        "Primary outcome changed after start",
        list(_TRISTATE),
        key=key("outcome_changed_after_start"),
        horizontal=True,
        help="From the registry's version history (`tracker history`); trials not backfilled match neither.",
    )
    sidebar.checkbox(
        "Include removed trials",
        key=key("include_removed"),
        help="Trials a full sync no longer finds for the registry search are kept, but hidden unless ticked.",
    )
    sidebar.button("Reset filters", on_click=reset_filters, args=(choices,))

    try:
        trial_filter = filter_from_state(st.session_state, choices)
    except FilterError as exc:
        sidebar.warning(markdown_text(f"{exc}; showing all MS trials instead."))
        trial_filter = TrialFilter()
    sync_url(trial_filter)
    st.session_state[LAST_FILTER] = trial_filter
    return trial_filter


def _with_chosen(options: tuple[str, ...], chosen: list[str]) -> list[str]:
    """Options plus any chosen value the data no longer has (a multiselect refuses unknown defaults)."""
    missing = [value for value in chosen if value not in options]
    return [*missing, *options]
