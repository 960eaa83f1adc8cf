"""Flags shared by every command that selects trials (export, subscribe add), declared once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tracker.filters import TrialFilter

FILTER_OPTION_NAMES = (
    "text",
    "relevance",
    "mechanism",
    "phenotype",
    "phase",
    "status",
    "study_type",
    "sponsor_class",
    "lead_sponsor",
    "country",
    "primary_endpoint",
    "start_year_min",
    "start_year_max",
    "has_results",
    "multi_disease",
    "outcome_changed_after_start",
    "include_removed",
    "include_comparators",
)

_KEYS_HELP = "comma-separated or repeated"

_OPTIONS = (
    click.option("--text", help="Search title, acronym, NCT ID, intervention and sponsor."),
    click.option(
        "--relevance",
        multiple=True,
        help=f"Relevance keys (default ms,ms_plus; 'all' for every trial); {_KEYS_HELP}.",
    ),
    click.option("--mechanism", multiple=True, help=f"Mechanism keys, e.g. btk_inhibitor; {_KEYS_HELP}."),
    click.option("--phenotype", multiple=True, help=f"Phenotype keys, e.g. spms; {_KEYS_HELP}."),
    click.option("--phase", multiple=True, help=f"PHASE1…PHASE4, EARLY_PHASE1, NA; {_KEYS_HELP}."),
    click.option("--status", multiple=True, help=f"Overall statuses or 'active'; {_KEYS_HELP}."),
    click.option(
        "--study-type", multiple=True, help=f"INTERVENTIONAL, OBSERVATIONAL, EXPANDED_ACCESS; {_KEYS_HELP}."
    ),
    click.option(
        "--sponsor-class", multiple=True, help=f"industry, academic_other, government; {_KEYS_HELP}."
    ),
    click.option("--lead-sponsor", multiple=True, help="Exact lead sponsor name (repeat for several)."),
    click.option("--country", multiple=True, help="Country with a trial site (repeat for several)."),
    click.option(
        "--primary-endpoint",
        multiple=True,
        metavar="FAMILY",
        help="Trials with a primary endpoint in this family, e.g. imaging or clinical_disability "
        f"(`tracker keys primary-endpoint` lists them); {_KEYS_HELP}.",
    ),
    click.option("--start-year-min", type=int, help="Earliest start year."),
    click.option("--start-year-max", type=int, help="Latest start year."),
    click.option(
        "--has-results/--no-results", default=None, help="Only trials with (or without) posted results."
    ),
    click.option("--multi-disease/--ms-only", default=None, help="Only multi-disease (or MS-only) trials."),
    click.option(
        "--outcome-changed-after-start/--outcome-unchanged-after-start",
        default=None,
        help="Only trials whose primary outcome changed (or did not) after they started (registry history).",
    ),
    click.option(
        "--include-removed",
        is_flag=True,
        default=None,
        help="Also trials the registry search no longer returns.",
    ),
    click.option(
        "--include-comparators",
        is_flag=True,
        default=None,
        help="Count the comparators' mechanisms too (matched by --mechanism, listed in `mechanisms`).",
    ),
)


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the trial filter flags to a command; read them back with `filter_from_options`."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def filter_from_options(options: dict[str, Any]) -> TrialFilter:
    """Build and validate a TrialFilter from the flags (raises FilterError on a bad value)."""
    from tracker.filters import TrialFilter

    data: dict[str, Any] = {
        "text": options.get("text"),
        "mechanisms": _split(options.get("mechanism") or ()),
        "phenotypes": _split(options.get("phenotype") or ()),
        "phases": _split(options.get("phase") or ()),
        "statuses": _split(options.get("status") or ()),
        "study_types": _split(options.get("study_type") or ()),
        "sponsor_classes": _split(options.get("sponsor_class") or ()),
        "lead_sponsors": list(options.get("lead_sponsor") or ()),
        "countries": list(options.get("country") or ()),
        "primary_endpoint_families": _split(options.get("primary_endpoint") or ()),
        "start_year_min": options.get("start_year_min"),
        "start_year_max": options.get("start_year_max"),
        "has_results": options.get("has_results"),
        "multi_disease": options.get("multi_disease"),
        "outcome_changed_after_start": options.get("outcome_changed_after_start"),
        "include_removed": options.get("include_removed") or None,
        "include_comparators": options.get("include_comparators") or None,
    }
    given = {key: value for key, value in data.items() if value not in (None, [])}
    relevance = _split(options.get("relevance") or ())
    if relevance:
        given["relevance"] = [] if relevance == ["all"] else relevance
    return TrialFilter.from_dict(given)


def pop_filter_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the filter flags from a command's kwargs, returning them."""
    return {name: kwargs.pop(name) for name in FILTER_OPTION_NAMES if name in kwargs}
