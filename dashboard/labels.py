"""Display names for registry enums and taxonomy keys. Pure: no Streamlit, no database.

Registry values stay the stored keys everywhere (filters, URLs, exports); only what people read is relabelled.
Unknown values are shown as they came, tidied, so a new registry enum never breaks a chart.
"""

from __future__ import annotations

import html
import re
from functools import cache

from tracker.taxonomy import load_taxonomy

STATUS_LABELS: dict[str, str] = {
    "NOT_YET_RECRUITING": "Not yet recruiting",
    "RECRUITING": "Recruiting",
    "ENROLLING_BY_INVITATION": "Enrolling by invitation",
    "ACTIVE_NOT_RECRUITING": "Active, not recruiting",
    "SUSPENDED": "Suspended",
    "TERMINATED": "Terminated",
    "COMPLETED": "Completed",
    "WITHDRAWN": "Withdrawn",
    "UNKNOWN": "Unknown status",
    "AVAILABLE": "Available (expanded access)",
    "NO_LONGER_AVAILABLE": "No longer available",
    "TEMPORARILY_NOT_AVAILABLE": "Temporarily not available",
    "APPROVED_FOR_MARKETING": "Approved for marketing",
    "WITHHELD": "Withheld",
}
ACTIVE_STATUSES = ("NOT_YET_RECRUITING", "RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING")

# Colours follow the life of a trial: greens while enrolling, blue when done, greys and reds when stopped.
STATUS_COLOURS: dict[str, str] = {
    "NOT_YET_RECRUITING": "#a6d96a",
    "RECRUITING": "#1a9850",
    "ENROLLING_BY_INVITATION": "#66bd63",
    "ACTIVE_NOT_RECRUITING": "#fdae61",
    "SUSPENDED": "#f46d43",
    "TERMINATED": "#d73027",
    "COMPLETED": "#4575b4",
    "WITHDRAWN": "#878787",
    "UNKNOWN": "#bababa",
}

PHASE_ORDER: tuple[str, ...] = ("EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA")
PHASE_LABELS: dict[str, str] = {
    "EARLY_PHASE1": "Early phase 1",
    "PHASE1": "Phase 1",
    "PHASE2": "Phase 2",
    "PHASE3": "Phase 3",
    "PHASE4": "Phase 4",
    "NA": "Not applicable",
}
NO_PHASE = "Not stated"
PHASE_COLOURS: dict[str, str] = {
    "Early phase 1": "#c6dbef",
    "Phase 1": "#9ecae1",
    "Phase 2": "#6baed6",
    "Phase 3": "#3182bd",
    "Phase 4": "#08519c",
    "Not applicable": "#bdbdbd",
    NO_PHASE: "#e0e0e0",
}

STUDY_TYPE_LABELS: dict[str, str] = {
    "INTERVENTIONAL": "Interventional",
    "OBSERVATIONAL": "Observational",
    "EXPANDED_ACCESS": "Expanded access",
}
SPONSOR_CLASS_LABELS: dict[str, str] = {
    "industry": "Industry",
    "academic_other": "Academic / other",
    "government": "Government",
}
CHANGE_KIND_LABELS: dict[str, str] = {
    "new": "New trial",
    "status": "Status",
    "phase": "Phase",
    "start_date": "Start date",
    "primary_completion_date": "Primary completion date",
    "completion_date": "Completion date",
    "enrollment": "Enrollment",
    "results_posted": "Results posted",
    "primary_outcome": "Primary outcome",
    "removed": "Removed",
    "other": "Other",
}


# Every ASCII punctuation mark may be backslash-escaped in CommonMark; Streamlit's extensions (:red[…],
# :material/icon:, $math$, emoji shortcodes) are all built from them too.
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
# Streamlit's Markdown turns bare URLs and e-mail addresses into links even when every character is
# escaped (the autolinker runs on the decoded text): an invisible word joiner after the scheme, after "www"
# and before "@" keeps them text.
_AUTOLINK_PARTS = re.compile(r"(?i)(?<=https)(?=:)|(?<=http)(?=:)|(?<=ftp)(?=:)|(?<=www)(?=\.)|(?=@)")
WORD_JOINER = "\u2060"


def markdown_text(value: object) -> str:
    """Registry or URL text for st.markdown, st.caption, st.subheader, st.info…: shown literally (no links,
    images, emphasis, HTML or directives), on one line."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    unlinked = _AUTOLINK_PARTS.sub(WORD_JOINER, _LINE_BREAKS.sub(" ", text))
    return _MARKDOWN_SPECIAL.sub(r"\\\1", unlinked)


def plotly_text(value: object) -> str:
    """Registry text for Plotly titles, tick labels and hover text, which understand a few HTML tags
    (<a href>, <b>, <br>, <span style>): entities are shown as the characters they stand for."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return html.escape(text, quote=False)


def _text(value: object) -> str:
    """Missing values (None, NaN, pd.NA) as the empty string."""
    return value if isinstance(value, str) else ""


def tidy(value: object) -> str:
    """RECRUITING_SOON → "Recruiting soon": the fallback for enum values we have no label for."""
    text = _text(value)
    return text.replace("_", " ").capitalize() if text else "Not stated"


def status_label(status: object) -> str:
    return STATUS_LABELS.get(_text(status), tidy(status))


def phase_label(phase: object) -> str:
    """One phase key (or the highest phase) → label; missing phase → "Not stated"."""
    text = _text(phase)
    return PHASE_LABELS.get(text, tidy(text)) if text else NO_PHASE


def phase_rank(label: str) -> int:
    """Sort position of a phase label (unknown phases after the known ones)."""
    ordered = [PHASE_LABELS[key] for key in PHASE_ORDER] + [NO_PHASE]
    return ordered.index(label) if label in ordered else len(ordered)


def phases_text(phases: tuple[str, ...] | list[str] | None) -> str:
    """("PHASE1", "PHASE2") → "Phase 1/Phase 2"."""
    if phases is None or len(phases) == 0:
        return NO_PHASE
    return "/".join(phase_label(phase) for phase in phases)


def study_type_label(study_type: object) -> str:
    return STUDY_TYPE_LABELS.get(_text(study_type), tidy(study_type))


def sponsor_class_label(sponsor_class: object) -> str:
    return SPONSOR_CLASS_LABELS.get(_text(sponsor_class), tidy(sponsor_class))


def change_kind_label(kind: object) -> str:
    return CHANGE_KIND_LABELS.get(_text(kind), tidy(kind))


@cache
def mechanism_labels() -> dict[str, str]:
    return {item.key: item.label for item in load_taxonomy().mechanisms}


@cache
def phenotype_labels() -> dict[str, str]:
    return {item.key: item.label for item in load_taxonomy().phenotypes}


@cache
def relevance_labels() -> dict[str, str]:
    return {item.key: item.label for item in load_taxonomy().relevance}


@cache
def endpoint_labels() -> dict[str, str]:
    return {item.key: item.label for item in load_taxonomy().endpoints}


@cache
def endpoint_family_labels() -> dict[str, str]:
    """Endpoint family key → the taxonomy's name for it ("imaging" → "Imaging"), in taxonomy order."""
    return {family.key: family.label for family in load_taxonomy().family_groups("endpoint")}


@cache
def endpoint_family_of() -> dict[str, str]:
    """Endpoint key → its family's key."""
    return {key: family.key for family in load_taxonomy().family_groups("endpoint") for key in family.members}


def endpoint_label(key: str) -> str:
    return endpoint_labels().get(key, tidy(key))


def endpoint_family_label(key: str) -> str:
    return endpoint_family_labels().get(key, tidy(key))


def mechanism_label(key: str) -> str:
    return mechanism_labels().get(key, tidy(key))


def phenotype_label(key: str) -> str:
    return phenotype_labels().get(key, tidy(key))
