"""Cached reads for the dashboard. All SQL stays in `tracker.query`; this module only caches its results.

The trial and event frames are loaded once per data version (`query.data_version` changes whenever a sync,
import, classification or override lands) and shared by every session, so a filter change never touches
the database. They are kept with `st.cache_resource`, not `st.cache_data`: copying a 100,000-row frame on
every rerun would cost more than the whole page. Callers must treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from dashboard.frame_index import FrameIndex
from tracker import query
from tracker.config import load_settings
from tracker.db.session import make_engine, mask_url
from tracker.errors import TrackerError


@dataclass(frozen=True, slots=True)
class FilterChoices:
    """Values offered by the sidebar that come from the data: sponsors (most trials first), countries and
    the start-year range."""

    lead_sponsors: tuple[str, ...]
    countries: tuple[str, ...]
    first_year: int
    last_year: int


# What `tracker.filters.apply_filter` reads, plus what the charts, headline numbers and table show.
FILTER_COLUMNS = (
    "search_text",
    "relevance",
    "mechanisms",
    "investigational_mechanisms",
    "phenotypes",
    "phases",
    "countries",
    "endpoints_primary",
    "overall_status",
    "study_type",
    "sponsor_category",
    "lead_sponsor_name",
    "start_year",
    "has_results",
    "multi_disease",
    "primary_outcome_changed_after_start",
    "removed",
)
DISPLAY_COLUMNS = (
    "registration_id",
    "trial_id",
    "url",
    "brief_title",
    "highest_phase",
    "start_date",
    "start_date_raw",
    "primary_completion_date",
    "primary_completion_date_raw",
    "completion_date",
    "results_first_posted",
    "manual",
    "comparator_mechanisms",
    "versions",
    "pcd_changes",
    "pcd_total_slip_days",
    *FILTER_COLUMNS,
)


class DataUnavailable(Exception):
    """The database cannot be read (unreachable, or never migrated); the message says what to do."""


def database_url() -> str:
    return load_settings().database_url


@st.cache_resource(show_spinner=False)
def get_engine(url: str) -> Engine:
    return make_engine(url)


def current_version(url: str) -> tuple[Any, ...]:
    """The data version, checked on every rerun (one cheap query) so a landed sync shows at once."""
    engine = get_engine(url)
    try:
        if not inspect(engine).has_table("studies"):
            raise DataUnavailable(
                f"The database at {mask_url(url)} has no tables yet. "
                "Run `tracker sync` (or `tracker import FILE`) to create and fill it."
            )
        return tuple(query.data_version(engine))
    except (SQLAlchemyError, TrackerError) as exc:
        raise DataUnavailable(f"Cannot read the database at {mask_url(url)}: {exc}") from None


@st.cache_resource(show_spinner="Loading trials…", max_entries=2)
def trial_frame(url: str, version: tuple[Any, ...]) -> pd.DataFrame:
    """The stored snapshot when it is of this data version (a new process then loads, not builds, it);
    else the frame is built and stored for the next process (`tracker.query.load_trial_frame_snapshot`)."""
    return query.load_trial_frame_snapshot(get_engine(url), version)


@st.cache_resource(show_spinner="Loading trials…", max_entries=2)
def display_frame(url: str, version: tuple[Any, ...]) -> pd.DataFrame:
    """The trial frame cut to the columns the page filters on and shows: filtering copies every column
    of the rows it keeps, and half the columns are only needed for the CSV download. Only these columns
    are read from the stored snapshot; the whole frame (`trial_frame`) waits for a download."""
    return query.load_trial_frame_snapshot(get_engine(url), version, DISPLAY_COLUMNS)


@st.cache_resource(show_spinner=False, max_entries=4)
def frame_index(url: str, version: tuple[Any, ...], mechanism_column: str) -> FrameIndex:
    """The index counting `mechanism_column` (investigational keys, or all with comparators)."""
    return FrameIndex.build(display_frame(url, version), mechanism_column)


@st.cache_resource(show_spinner=False, max_entries=2)
def event_frame(url: str, version: tuple[Any, ...]) -> pd.DataFrame:
    """Change events after the first load (baseline events are the initial import, not activity)."""
    return query.change_events_frame(get_engine(url), include_baseline=False)


@st.cache_resource(show_spinner=False, max_entries=2)
def filter_choices(url: str, version: tuple[Any, ...]) -> FilterChoices:
    return choices_from_frame(display_frame(url, version))


@st.cache_resource(show_spinner=False, max_entries=2)
def detail_tables(url: str, version: tuple[Any, ...]) -> query.DetailTables:
    """The registry details of every trial, loaded only when a download is asked for."""
    return query.load_detail_tables(get_engine(url))


def outcome_endpoints(url: str, registration_ids: tuple[str, ...]) -> dict[query.OutcomeRef, tuple[str, ...]]:
    """Each outcome measure's endpoint keys, for a workbook download (read when the button is clicked)."""
    return query.outcome_endpoint_keys(get_engine(url), registration_ids)


@st.cache_data(show_spinner=False, max_entries=64, ttl=600)
def trial_registry_history(
    url: str, version: tuple[Any, ...], registration_id: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One trial's registry versions (timeline) and registry change events."""
    engine = get_engine(url)
    return query.registry_timeline(engine, registration_id), query.registry_events_frame(
        engine, registration_ids=[registration_id]
    )


@st.cache_data(show_spinner=False, max_entries=64, ttl=600)
def trial_detail(url: str, version: tuple[Any, ...], registration_id: str) -> dict[str, Any] | None:
    try:
        return query.study_detail(get_engine(url), registration_id)
    except TrackerError:
        return None


@st.cache_resource(show_spinner=False, max_entries=2)
def data_date(url: str, version: tuple[Any, ...]) -> query.DataDate:
    """The data's own date (`tracker.query.data_as_of`): the "today" of every headline figure and chart."""
    return query.data_as_of(get_engine(url))


@st.cache_data(show_spinner=False, max_entries=2)
def latest_run(url: str, version: tuple[Any, ...]) -> dict[str, Any] | None:
    return query.latest_run(get_engine(url))


def choices_from_frame(frame: pd.DataFrame) -> FilterChoices:
    """Pure: the data-dependent sidebar choices of a trial frame."""
    sponsors = frame["lead_sponsor_name"].dropna().value_counts()
    countries = frame["countries"].explode().dropna().unique()
    years = frame["start_year"].dropna()
    first_year = int(years.min()) if len(years) else 1990
    last_year = int(years.max()) if len(years) else first_year
    return FilterChoices(
        lead_sponsors=tuple(sponsors.index),
        countries=tuple(sorted(str(country) for country in countries)),
        first_year=first_year,
        last_year=max(last_year, first_year + 1),
    )
