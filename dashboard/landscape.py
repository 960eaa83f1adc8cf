"""The landscape page: filters → headline numbers → charts → trial table, detail and CSV download."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, data, sidebar
from dashboard.frame_index import FrameIndex
from dashboard.labels import markdown_text
from dashboard.metrics import headline_numbers
from dashboard.security import TOPOJSON_URL
from dashboard.table import TABLE_ROW_CAP, table_rows
from dashboard.trial_view import show_trial
from tracker import query
from tracker.export import frame_to_csv, frame_to_xlsx, provenance_for, provenance_json
from tracker.filters import TrialFilter, apply_filter

# Map outlines from the dashboard's own origin (dashboard/server.py), nothing sent to Plotly's servers.
PLOTLY_CONFIG = {
    "topojsonURL": TOPOJSON_URL,
    "displaylogo": False,
    "showLink": False,
    "showSendToCloud": False,
}
HEATMAP_KEY = "heatmap_chart"
TABLE_KEY = "trial_table"
EMPTY_DATABASE_HELP = """
There are no trials in this database yet. Fill it from the command line, then reload this page:

```
tracker sync                   # fetch the MS trials from ClinicalTrials.gov
tracker import SNAPSHOT.jsonl  # or load a saved API v2 snapshot (.jsonl or .jsonl.gz)
```

The dashboard reads the database named by `TRACKER_DATABASE_URL` (or `tracker --database-url URL dashboard`).
"""


def show_empty(reason: str | None = None) -> None:
    st.title("MS clinical trial landscape")
    if reason:
        st.warning(markdown_text(reason))
    st.markdown(EMPTY_DATABASE_HELP)


def on_heatmap_select() -> None:
    """Callback (runs before the rerun): a clicked cell becomes the mechanism and phenotype filters."""
    event = st.session_state.get(HEATMAP_KEY)
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    cell = charts.heatmap_selection(list(points))
    if cell is not None:
        sidebar.set_cell_filter(st.session_state, *cell)


def today_utc() -> date:
    return datetime.now(UTC).date()


def events_for(events: pd.DataFrame, filtered: pd.DataFrame, everything: pd.DataFrame) -> pd.DataFrame:
    if events.empty or len(filtered) == len(everything):
        return events
    return events[events["registration_id"].isin(filtered["registration_id"])]


def headline(filtered: pd.DataFrame, events: pd.DataFrame, as_of: date) -> None:
    numbers = headline_numbers(filtered, events, as_of)
    columns = st.columns(5)
    columns[0].metric("Trials", f"{numbers.trials:,}")
    columns[1].metric("Recruiting now", f"{numbers.recruiting:,}")
    columns[2].metric("Started in the last 12 months", f"{numbers.started_last_12_months:,}")
    columns[3].metric(
        "Results overdue",
        f"{numbers.results_overdue:,}",
        help="Completed, primary completion more than 12 months ago, no results posted.",
    )
    columns[4].metric("Status changes, last 7 days", f"{numbers.status_changes_last_7_days:,}")


def show_charts(filtered: pd.DataFrame, events: pd.DataFrame, index: FrameIndex, as_of: date) -> None:
    today = as_of  # the data's own date, not the wall clock
    st.plotly_chart(charts.start_year_figure(filtered, index), key="start_year_chart", config=PLOTLY_CONFIG)
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.recruiting_figure(filtered, today), key="recruiting_chart", config=PLOTLY_CONFIG)
    right.plotly_chart(charts.status_figure(filtered), key="status_chart", config=PLOTLY_CONFIG)
    left, right = st.columns(2)
    left.plotly_chart(
        charts.results_posted_figure(filtered), key="results_posted_chart", config=PLOTLY_CONFIG
    )
    right.plotly_chart(charts.results_share_figure(filtered), key="results_share_chart", config=PLOTLY_CONFIG)
    st.plotly_chart(
        charts.heatmap_figure(filtered, index),
        key=HEATMAP_KEY,
        config=PLOTLY_CONFIG,
        on_select=on_heatmap_select,
        selection_mode="points",
    )
    st.plotly_chart(charts.pipeline_figure(filtered, index), key="pipeline_chart", config=PLOTLY_CONFIG)
    st.plotly_chart(charts.gantt_figure(filtered, today), key="gantt_chart", config=PLOTLY_CONFIG)
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.world_map_figure(filtered, index), key="world_map_chart", config=PLOTLY_CONFIG)
    right.plotly_chart(
        charts.top_countries_figure(filtered, index), key="top_countries_chart", config=PLOTLY_CONFIG
    )
    left, right = st.columns(2)
    left.plotly_chart(
        charts.change_activity_figure(events), key="change_activity_chart", config=PLOTLY_CONFIG
    )
    right.plotly_chart(charts.slippage_figure(events), key="slippage_chart", config=PLOTLY_CONFIG)

    slip_by = st.radio(
        "Slippage from the registry history, by",
        ["phase", "mechanism"],
        horizontal=True,
        key="history_slip_by",
    )
    st.plotly_chart(
        charts.history_slippage_figure(filtered, slip_by), key="history_slippage_chart", config=PLOTLY_CONFIG
    )


def provenance_download(trial_filter: TrialFilter, url: str, version: tuple[Any, ...]) -> bytes:
    """The sidecar `tracker export` writes beside its CSV, for the trials the CSV button downloads."""
    frame = apply_filter(data.trial_frame(url, version), trial_filter)
    return provenance_json(provenance_for(frame, trial_filter, data.latest_run(url, version)))


def export_frame(trial_filter: TrialFilter, url: str, version: tuple[Any, ...]) -> pd.DataFrame:
    """The filtered trials with every export column: what `tracker export` writes for this filter."""
    filtered = apply_filter(data.trial_frame(url, version), trial_filter)
    return query.with_details(filtered, data.detail_tables(url, version))


def show_downloads(trial_filter: TrialFilter, url: str, version: tuple[Any, ...]) -> None:
    """CSV, its provenance sidecar and the workbook, each built only when its button is clicked."""

    def provenance() -> dict[str, Any]:
        frame = apply_filter(data.trial_frame(url, version), trial_filter)
        return provenance_for(frame, trial_filter, data.latest_run(url, version))

    csv_column, provenance_column, xlsx_column = st.columns(3, width=960)
    csv_column.download_button(
        "Download CSV of the filtered trials",
        # Built only when clicked, from all columns: the same bytes as `tracker export` for this filter.
        data=lambda: frame_to_csv(
            export_frame(trial_filter, url, version), include_comparators=trial_filter.include_comparators
        ),
        file_name="ms-trials.csv",
        mime="text/csv",
        on_click="ignore",
        key="download_csv",
    )
    provenance_column.download_button(
        "Download its provenance (JSON)",
        data=lambda: provenance_download(trial_filter, url, version),
        file_name="ms-trials.csv.json",
        mime="application/json",
        on_click="ignore",
        key="download_provenance",
    )
    xlsx_column.download_button(
        "Download workbook (.xlsx)",
        data=lambda: frame_to_xlsx(
            export_frame(trial_filter, url, version),
            data.detail_tables(url, version),
            provenance(),
            include_comparators=trial_filter.include_comparators,
        ),
        file_name="ms-trials.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        on_click="ignore",
        key="download_xlsx",
    )


def show_table(
    filtered: pd.DataFrame, trial_filter: TrialFilter, url: str, version: tuple[Any, ...], as_of: date
) -> None:
    st.subheader("Trials")
    rows = table_rows(filtered, as_of)
    note = (
        f"Showing the first {len(rows):,} of {len(filtered):,} trials (those started most recently first). "
        if len(filtered) > TABLE_ROW_CAP
        else ""
    )
    st.caption(note + "✎ marks labels set by a manual override. Select a row to see the trial's details.")
    show_downloads(trial_filter, url, version)
    event = st.dataframe(
        rows,
        hide_index=True,
        column_order=[c for c in rows.columns if c != "registration_id"],
        column_config={
            "NCT ID": st.column_config.LinkColumn(
                "NCT ID", display_text=r"https://clinicaltrials\.gov/study/(NCT\d+)", width=110
            ),
            "Title": st.column_config.TextColumn("Title", width="large"),
            "Results": st.column_config.CheckboxColumn("Results"),
        },
        key=TABLE_KEY,
        on_select="rerun",
        selection_mode="single-row",
    )
    selected = list(getattr(event, "selection", {}).get("rows", [])) if event is not None else []
    if selected and selected[0] < len(rows):
        registration_id = str(rows.loc[selected[0], "registration_id"])
        with st.container(border=True):
            show_trial(data.trial_detail(url, version, registration_id), registration_id)


def landscape_page() -> None:
    url = data.database_url()
    try:
        version = data.current_version(url)
        frame = data.display_frame(url, version)
    except data.DataUnavailable as exc:
        show_empty(str(exc))
        return
    if frame.empty:
        show_empty()
        return
    choices = data.filter_choices(url, version)
    trial_filter = sidebar.filter_sidebar(choices)
    filtered = apply_filter(frame, trial_filter)
    events = events_for(data.event_frame(url, version), filtered, frame)

    st.title("MS clinical trial landscape")
    data_date = data.data_date(url, version)
    as_of = data_date.or_today(today_utc())
    st.caption(markdown_text(f"Filter: {trial_filter.describe()} · {data_date.describe()}"))
    headline(filtered, events, as_of)
    show_charts(filtered, events, data.frame_index(url, version, trial_filter.mechanism_column), as_of)
    show_table(filtered, trial_filter, url, version, as_of)
