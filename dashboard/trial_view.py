"""The trial detail view: registry fields, what the trial gives and measures and whom it enrols,
classification with its evidence, change history and sites.

Registry text is never Markdown here: it goes through `labels.markdown_text` (escaped), st.text, or into
tables, which show text as it is; every detail-table cell is text ("" when the registry states nothing),
so no cell reads "None".
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, labels
from dashboard.labels import markdown_text

CHANGE_COLUMNS = {
    "detected_at": "Detected (UTC)",
    "kind": "Kind",
    "field": "Field",
    "old_value": "Before",
    "new_value": "After",
    "baseline": "First load",
}


def _date_text(detail: dict[str, Any], name: str) -> str:
    raw = detail.get(f"{name}_raw")
    if not raw:
        return "not stated"
    kind = detail.get(f"{name}_type")
    return f"{raw} ({kind.lower()})" if kind else str(raw)


ARM_ROLE_LABELS = {
    "experimental": "Experimental",
    "active_comparator": "Active comparator",
    "placebo": "Placebo",
    "sham": "Sham",
    "no_intervention": "No intervention",
    "other": "Other",
}


def cell_text(value: object) -> str:
    """One table cell as text: missing → "", lists → ", "-joined, booleans → yes/no."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(item) for item in value if cell_text(item))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def text_table(rows: list[dict[str, object]], columns: list[str]) -> pd.DataFrame:
    """A table whose every cell is text, with the given columns even when there are no rows."""
    return pd.DataFrame([{c: cell_text(row.get(c)) for c in columns} for row in rows], columns=columns)


def intervention_rows(detail: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "Intervention": item.get("name"),
            "Type": labels.tidy(item.get("type")) if item.get("type") else None,
            "Role": ARM_ROLE_LABELS.get(item.get("arm_role") or "", item.get("arm_role")),
            "Arms": item.get("arm_group_labels"),
            "Other names": item.get("other_names"),
            "Description": item.get("description"),
        }
        for item in detail.get("interventions") or []
    ]
    return text_table(rows, ["Intervention", "Type", "Role", "Arms", "Other names", "Description"])


def arm_rows(detail: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "Arm": arm.get("label"),
            "Type": labels.tidy(arm.get("type")) if arm.get("type") else None,
            "Interventions": arm.get("intervention_names"),
            "Description": arm.get("description"),
        }
        for arm in detail.get("arm_groups") or []
    ]
    return text_table(rows, ["Arm", "Type", "Interventions", "Description"])


def outcome_rows(detail: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "Role": str(item.get("role") or "").capitalize(),
            "#": int(item.get("position") or 0) + 1,
            "Measure": item.get("measure"),
            "Time frame": item.get("time_frame"),
            "Description": item.get("description"),
        }
        for item in detail.get("outcomes") or []
    ]
    return text_table(rows, ["Role", "#", "Measure", "Time frame", "Description"])


def _age(detail: dict[str, Any], name: str) -> str:
    text, years = detail.get(name), detail.get(f"{name}_years")
    if not text:
        return "not stated"
    return (
        f"{text} ({cell_text(years)} years)"
        if years is not None and not str(text).endswith("Years")
        else text
    )


def eligibility_rows(detail: dict[str, Any]) -> pd.DataFrame:
    healthy = detail.get("healthy_volunteers")
    rows = [
        ("Minimum age", _age(detail, "minimum_age")),
        ("Maximum age", _age(detail, "maximum_age")),
        ("Sex", labels.tidy(detail.get("sex")) if detail.get("sex") else "not stated"),
        ("Healthy volunteers", "not stated" if healthy is None else cell_text(bool(healthy))),
        ("Age groups", cell_text([labels.tidy(a) for a in detail.get("std_ages") or []]) or "not stated"),
    ]
    return text_table([{"Facet": a, "Value": b} for a, b in rows], ["Facet", "Value"])


def design_rows(detail: dict[str, Any]) -> pd.DataFrame:
    names = (
        ("Allocation", "allocation"),
        ("Intervention model", "intervention_model"),
        ("Masking", "masking"),
        ("Primary purpose", "primary_purpose"),
    )
    rows = [
        {"Design": label, "Value": labels.tidy(detail.get(key)) if detail.get(key) else "not stated"}
        for label, key in names
    ]
    return text_table(rows, ["Design", "Value"])


def secondary_id_rows(detail: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {"ID": item.get("identifier"), "Type": item.get("type"), "Domain": item.get("domain")}
        for item in detail.get("secondary_ids") or []
    ]
    return text_table(rows, ["ID", "Type", "Domain"])


def _table(frame: pd.DataFrame, empty: str) -> None:
    # st.table: a static table whose cells are escaped text (registry prose wraps instead of truncating).
    if frame.empty:
        st.text(empty)
    else:
        st.table(frame.style.hide(axis="index"))


def show_registry_details(detail: dict[str, Any]) -> None:
    """What the trial gives, to whom, how, and what it measures."""
    if detail.get("official_title"):
        st.text(f"Official title: {detail['official_title']}")
    if detail.get("brief_summary"):
        with st.expander("Brief summary"):
            st.text(detail["brief_summary"])
    st.markdown("#### Interventions")
    _table(intervention_rows(detail), "No interventions listed.")
    st.markdown("#### Arms")
    _table(arm_rows(detail), "No arm groups registered.")
    st.markdown("#### Outcome measures")
    _table(outcome_rows(detail), "No outcome measures registered.")
    left, right = st.columns(2)
    with left:
        st.markdown("#### Eligibility")
        _table(eligibility_rows(detail), "")
    with right:
        st.markdown("#### Design")
        _table(design_rows(detail), "")
    if detail.get("eligibility_criteria"):
        with st.expander("Eligibility criteria as registered"):
            st.text(detail["eligibility_criteria"])
    st.markdown("#### Secondary IDs")
    _table(secondary_id_rows(detail), "No secondary IDs registered.")


def blank_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values in text columns as empty cells (a dataframe shows None as the word "None")."""
    kinds = pd.api.types
    text_columns = [
        column
        for column in frame.columns
        if not (kinds.is_numeric_dtype(frame[column]) or kinds.is_datetime64_any_dtype(frame[column]))
    ]
    return frame.assign(**{c: frame[c].where(frame[c].notna(), "") for c in text_columns})


def label_rows(detail: dict[str, Any]) -> pd.DataFrame:
    """The effective labels (what filters use), manual ones marked."""
    rows = []
    for label in detail.get("labels") or []:
        dimension = label.get("dimension")
        key = label.get("key") or ""
        if dimension == "mechanism":
            name = labels.mechanism_label(key)
        elif dimension == "phenotype":
            name = labels.phenotype_label(key)
        else:
            name = labels.relevance_labels().get(key, key)
        rows.append(
            {
                "Dimension": dimension,
                "Label": name,
                "Key": key,
                "Role": label.get("role") or "",
                "Source": "manual override" if label.get("source") == "manual" else "automatic",
            }
        )
    return pd.DataFrame(rows)


def evidence_rows(result: dict[str, Any] | None) -> pd.DataFrame:
    """Flatten the classifier's result into one row per label with the evidence behind it."""
    rows: list[dict[str, Any]] = []
    if not isinstance(result, dict):
        return pd.DataFrame(rows)
    for dimension, value in result.items():
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        for item in items:
            if not isinstance(item, dict):
                continue
            evidence = item.get("evidence")
            if isinstance(evidence, list):
                evidence = "; ".join(_evidence_text(entry) for entry in evidence)
            elif isinstance(evidence, dict):
                evidence = _evidence_text(evidence)
            role_evidence = item.get("role_evidence")
            if item.get("role") and isinstance(role_evidence, list) and role_evidence:
                # why the role: the arm group, the title's comparison or the intervention's own words
                evidence = f"{evidence or ''} · role from " + "; ".join(
                    _evidence_text(e) for e in role_evidence
                )
            rows.append(
                {
                    "Dimension": dimension,
                    "Key": item.get("key", ""),
                    "Role": item.get("role") or "",
                    "Evidence": evidence or "",
                }
            )
    return pd.DataFrame(rows)


def _evidence_text(entry: object) -> str:
    if isinstance(entry, dict):
        parts = [str(value) for name, value in entry.items() if value not in (None, "") and name != "key"]
        return " · ".join(parts)
    return str(entry)


def registry_summary_lines(summary: dict[str, Any] | None) -> list[str]:
    """What the registry history says about a trial, as Markdown list items."""
    if not summary:
        return ["- Not backfilled yet (`tracker history`)."]
    lines = [f"- **Registry versions:** {summary.get('versions')}"]
    if summary.get("original_enrollment") is not None:
        kind = (summary.get("original_enrollment_type") or "").lower()
        lines.append(
            f"- **Original enrollment:** {summary['original_enrollment']}" + (f" ({kind})" if kind else "")
        )
    if summary.get("pcd_changes") is not None:
        lines.append(
            f"- **Primary completion moved:** {summary['pcd_changes']} times, "
            f"{summary.get('pcd_total_slip_days') or 0:+d} days in all"
        )
    else:
        lines.append(
            "- **Primary completion moves:** need the version records (`tracker history --versions`)"
        )
    changed = summary.get("primary_outcome_changed_after_start")
    if changed is not None:
        when = summary.get("primary_outcome_changed_on")
        lines.append(
            "- **Primary outcome changed after start:** "
            + ("yes" + (f", first on {when}" if when else "") if changed else "no")
        )
    return lines


def show_registry_history(detail: dict[str, Any], history: tuple[pd.DataFrame, pd.DataFrame] | None) -> None:
    st.markdown("#### Registry history")
    st.markdown("\n".join(registry_summary_lines(detail.get("registry_history"))))
    if history is None:
        return
    timeline, events = history
    if timeline.empty:
        return
    st.plotly_chart(
        charts.registry_timeline_figure(timeline, events, pd.Timestamp.utcnow().date()),
        key="registry_timeline",
    )


def registry_facts(detail: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) pairs of the trial's registry fields, as plain text."""
    enrollment = detail.get("enrollment_count")
    return [
        ("Status", labels.status_label(detail.get("overall_status"))),
        ("Phase", labels.phases_text(tuple(detail.get("phases") or ()))),
        ("Study type", labels.study_type_label(detail.get("study_type"))),
        ("Enrollment", "not stated" if enrollment is None else f"{enrollment:,}"),
        ("Lead sponsor", detail.get("lead_sponsor_name") or "not stated"),
        ("Start", _date_text(detail, "start_date")),
        ("Primary completion", _date_text(detail, "primary_completion_date")),
        ("Completion", _date_text(detail, "completion_date")),
        ("Results posted", str(detail.get("results_first_posted") or "no")),
        ("Conditions", ", ".join(detail.get("conditions") or []) or "not stated"),
    ]


def fact_list(facts: list[tuple[str, str]]) -> str:
    """A Markdown bullet list with bold names and escaped values."""
    return "\n".join(f"- **{name}:** {markdown_text(value)}" for name, value in facts)


def show_trial(
    detail: dict[str, Any] | None,
    registration_id: str,
    history: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> None:
    """Render one trial; `detail` is `tracker.query.study_detail` (None when the ID is not stored), `history`
    its registry versions and registry change events (`dashboard.data.trial_registry_history`)."""
    if detail is None:
        st.info(f"{markdown_text(registration_id)} is not in the database.")
        return
    # No anchor: its slug would carry the registry's title text into an href.
    st.subheader(
        markdown_text(f"{detail['registration_id']}: {detail.get('brief_title') or ''}"), anchor=False
    )
    st.link_button("Open on ClinicalTrials.gov", detail["url"])
    if detail.get("removed_at"):
        st.warning("No longer returned by ClinicalTrials.gov for this search (kept for the record).")
    left, right = st.columns(2)
    left.markdown(fact_list(registry_facts(detail)[:5]))
    right.markdown(fact_list(registry_facts(detail)[5:]))
    if detail.get("why_stopped"):
        st.markdown(f"**Why stopped:** {markdown_text(detail['why_stopped'])}")

    show_registry_details(detail)

    st.markdown("#### Classification")
    override = detail.get("override")
    if override:
        st.info(f"Manual override: {markdown_text(override.get('note') or '(no note)')}")
    label_table = label_rows(detail)
    if label_table.empty:
        st.write("Not classified yet.")
    else:
        st.dataframe(blank_missing(label_table), hide_index=True)
    classification = detail.get("classification")
    if classification:
        st.caption(f"Automatic classification, taxonomy {classification.get('taxonomy_version')}")
        evidence = evidence_rows(classification.get("result"))
        if evidence.empty:
            st.json(classification.get("result") or {}, expanded=False)
        else:
            st.dataframe(blank_missing(evidence), hide_index=True)

    show_registry_history(detail, history)

    st.markdown("#### Change history")
    changes = pd.DataFrame(detail.get("changes") or [])
    if changes.empty:
        st.write("No changes recorded.")
    else:
        changes["kind"] = changes["kind"].map(labels.change_kind_label)
        st.dataframe(blank_missing(changes).rename(columns=CHANGE_COLUMNS), hide_index=True)

    st.markdown("#### Sites")
    sites = pd.DataFrame(detail.get("locations") or [])
    if sites.empty:
        st.write("No sites listed.")
    else:
        st.dataframe(blank_missing(sites).rename(columns=str.capitalize), hide_index=True)
