"""The dashboard's charts: a trial (or change-event) DataFrame in, a Plotly figure out.

Pure functions: no database, no Streamlit. Each chart has an aggregation function (the numbers, tested
directly) and a figure function (layout, titles, hover text). Everything is vectorised pandas, because the
same code has to stay fast with 100,000 trials selected.

The trial frame has the columns of `tracker.query.load_trial_frame`; the event frame those of
`tracker.query.change_events_frame`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import labels
from dashboard.frame_index import FrameIndex, index_for
from dashboard.metrics import has_started
from tracker.changes import parse_date_value

GANTT_CAP = 200
GANTT_TOP_MARGIN = 140  # pixels: title, legend, then the date axis above the bars
GANTT_LEGEND_OFFSET = 40
WEEK_MS = 7 * 24 * 3600 * 1000
WEEK_TICKS = 10  # at most this many week ticks; more weeks tick every second, third… Monday
SLIPPAGE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("Up to 3 months", 0, 91),
    ("3–6 months", 91, 183),
    ("6–12 months", 183, 366),
    ("1–2 years", 366, 731),
    ("2–5 years", 731, 1827),
    ("More than 5 years", 1827, 10**9),
)
_EMPTY_NOTE = "No trials in the current selection"


# --- building blocks ----------------------------------------------------------------------------------------


def _layout(
    fig: go.Figure, title: str, x_title: str | None, y_title: str | None, **extra: object
) -> go.Figure:
    # Title pinned to the top edge and the legend just above the plot area, so neither covers the other.
    fig.update_layout(
        title={
            "text": title,
            "x": 0,
            "xanchor": "left",
            "yref": "container",
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 12},
        },
        xaxis_title=x_title,
        yaxis_title=y_title,
        margin={"l": 10, "r": 10, "t": 90, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        **extra,
    )
    return fig


def _empty_figure(title: str, note: str = _EMPTY_NOTE) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, None, None)


def _years(column: pd.Series) -> pd.Series:
    """Calendar year of a datetime column as nullable integers."""
    return pd.to_datetime(column, errors="coerce").dt.year.astype("Int64")


def _taxonomy_order(found: Iterable[str], order: Iterable[str]) -> list[str]:
    """The keys found, in taxonomy order; keys the taxonomy does not know come last, sorted."""
    found = set(found)
    known = [key for key in order if key in found]
    return known + sorted(found - set(known))


def parse_partial_date(text: object) -> date | None:
    """A display date from a change event ("2024-05 (ESTIMATED)") → its first possible day."""
    value = parse_date_value(text)
    return value.first_day if value else None


# --- a. trials by start year, stacked by phase -------------------------------------------------------------


def start_year_by_phase(frame: pd.DataFrame, index: FrameIndex | None = None) -> pd.DataFrame:
    """Trials per start year (rows) and highest phase label (columns); undated trials left out."""
    index, _selected, positions = index_for(frame, index)
    years = frame["start_year"].to_numpy(dtype="float64", na_value=np.nan)
    dated = ~np.isnan(years)
    if not dated.any():
        return pd.DataFrame()
    year = years[dated].astype(np.int64)
    first, width = int(year.min()), len(index.phase_labels)
    cells = (year - first) * width + index.phase_codes[positions[dated]]
    counts = np.bincount(cells, minlength=(int(year.max()) - first + 1) * width).reshape(-1, width)
    table = pd.DataFrame(counts, index=range(first, first + len(counts)), columns=list(index.phase_labels))
    table = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0]
    return table[sorted(table.columns, key=labels.phase_rank)]


def start_year_figure(frame: pd.DataFrame, index: FrameIndex | None = None) -> go.Figure:
    title = "Trials by start year, by phase"
    table = start_year_by_phase(frame, index)
    if table.empty:
        return _empty_figure(title)
    fig = go.Figure()
    for phase in table.columns:
        fig.add_bar(
            x=table.index,
            y=table[phase],
            name=phase,
            marker_color=labels.PHASE_COLOURS.get(phase),
            hovertemplate=f"%{{x}} · {phase}: %{{y}} trials<extra></extra>",
        )
    return _layout(fig, title, "Start year", "Trials", barmode="stack")


# --- b. recruitment over time ------------------------------------------------------------------------------


def recruiting_by_year(frame: pd.DataFrame, today: date) -> pd.Series:
    """Trials recruiting in each year, counting every year from start to primary completion.

    A trial with no primary completion date counts until this year while it is still active, else only in
    its start year. Withdrawn trials never enrolled anyone and are left out; years after this one are not
    shown (those would be plans, not recruitment).
    """
    start = _years(frame["start_date"])
    end = _years(frame["primary_completion_date"])
    active = frame["overall_status"].isin(labels.ACTIVE_STATUSES)
    end = end.where(end.notna(), pd.Series(np.where(active, today.year, start), index=frame.index))
    keep = start.notna() & (frame["overall_status"] != "WITHDRAWN") & (start <= today.year)
    if not keep.any():
        return pd.Series(dtype="int64", name="trials")
    first = start[keep].to_numpy(dtype="int64")
    last = np.minimum(
        np.maximum(end[keep].astype("float64").fillna(-1).to_numpy(), first), today.year
    ).astype("int64")
    low = int(first.min())
    # Difference array: +1 at the start year, -1 after the last year; the running sum counts overlaps.
    steps = np.zeros(today.year - low + 2, dtype="int64")
    np.add.at(steps, first - low, 1)
    np.add.at(steps, last - low + 1, -1)
    counts = np.cumsum(steps)[:-1]
    return pd.Series(counts, index=pd.RangeIndex(low, today.year + 1, name="year"), name="trials")


def recruiting_figure(frame: pd.DataFrame, today: date) -> go.Figure:
    title = "Trials recruiting per year (start to primary completion)"
    series = recruiting_by_year(frame, today)
    if series.empty:
        return _empty_figure(title)
    fig = go.Figure(
        go.Scatter(
            x=series.index,
            y=series.values,
            mode="lines+markers",
            fill="tozeroy",
            name="Recruiting",
            hovertemplate="%{x}: %{y} trials recruiting<extra></extra>",
        )
    )
    return _layout(fig, title, "Year", "Trials recruiting")


def status_breakdown(frame: pd.DataFrame) -> pd.Series:
    """Trials per current overall status (status labels), largest first."""
    counts = frame["overall_status"].fillna("").value_counts()
    counts.index = [labels.status_label(status or None) for status in counts.index]
    return counts.groupby(level=0).sum().sort_values(ascending=False).rename("trials")


def status_figure(frame: pd.DataFrame) -> go.Figure:
    title = "Current status"
    counts = status_breakdown(frame)
    if counts.empty:
        return _empty_figure(title)
    colour_by_label = {labels.status_label(key): colour for key, colour in labels.STATUS_COLOURS.items()}
    share = counts / counts.sum() * 100
    fig = go.Figure(
        go.Bar(
            x=counts.values[::-1],
            y=counts.index.map(labels.plotly_text)[::-1],
            orientation="h",
            marker_color=[colour_by_label.get(label, "#bababa") for label in counts.index[::-1]],
            customdata=share.values[::-1],
            hovertemplate="%{y}: %{x} trials (%{customdata:.1f}%)<extra></extra>",
        )
    )
    return _layout(fig, title, "Trials", None)


# --- c. results over time ----------------------------------------------------------------------------------


def results_posted_by_year(frame: pd.DataFrame) -> pd.Series:
    """Trials whose results were first posted in each year."""
    years = _years(frame["results_first_posted"]).dropna()
    return years.value_counts().sort_index().rename("trials").rename_axis("year")


def results_share_by_completion_year(frame: pd.DataFrame) -> pd.DataFrame:
    """Completed trials by primary completion year (completion year when missing), with the share that posted
    results: columns completed, with_results, share (0-1)."""
    columns = ["primary_completion_date", "completion_date", "has_results"]
    completed = frame.loc[frame["overall_status"] == "COMPLETED", columns]
    year = _years(completed["primary_completion_date"]).fillna(_years(completed["completion_date"]))
    counted = pd.DataFrame({"year": year, "with_results": completed["has_results"].astype(bool)}).dropna(
        subset=["year"]
    )
    if counted.empty:
        return pd.DataFrame(columns=["completed", "with_results", "share"])
    table = counted.groupby("year")["with_results"].agg(completed="size", with_results="sum")
    table["share"] = table["with_results"] / table["completed"]
    table.index = table.index.astype(int)
    return table


def results_posted_figure(frame: pd.DataFrame) -> go.Figure:
    title = "Results first posted per year"
    series = results_posted_by_year(frame)
    if series.empty:
        return _empty_figure(title, "No results posted in the current selection")
    fig = go.Figure(
        go.Bar(
            x=series.index.astype(int),
            y=series.values,
            marker_color="#4575b4",
            hovertemplate="%{x}: results first posted for %{y} trials<extra></extra>",
        )
    )
    return _layout(fig, title, "Year results first posted", "Trials")


def results_share_figure(frame: pd.DataFrame) -> go.Figure:
    title = "Completed trials with posted results, by completion year"
    table = results_share_by_completion_year(frame)
    if table.empty:
        return _empty_figure(title, "No completed trials in the current selection")
    fig = go.Figure(
        go.Scatter(
            x=table.index,
            y=table["share"] * 100,
            mode="lines+markers",
            customdata=np.stack([table["with_results"], table["completed"]], axis=-1),
            hovertemplate="Completed %{x}: %{customdata[0]} of %{customdata[1]} posted results "
            "(%{y:.0f}%)<extra></extra>",
        )
    )
    fig.update_yaxes(range=[0, 100], ticksuffix="%")
    return _layout(fig, title, "Primary completion year", "Share with results")


# --- d. mechanism × phenotype heat map ---------------------------------------------------------------------


def mechanism_phenotype_counts(frame: pd.DataFrame, index: FrameIndex | None = None) -> pd.DataFrame:
    """Trial counts with mechanism keys as rows and phenotype keys as columns, in taxonomy order; rows and
    columns with no trial are left out."""
    index, selected, _positions = index_for(frame, index)
    keep = selected[index.pair_rows]
    if not keep.any():
        return pd.DataFrame()
    width = len(index.phenotypes.keys)
    cells = index.pair_mechanisms[keep] * width + index.pair_phenotypes[keep]
    counts = np.bincount(cells, minlength=len(index.mechanisms.keys) * width).reshape(-1, width)
    table = pd.DataFrame(counts, index=list(index.mechanisms.keys), columns=list(index.phenotypes.keys))
    table = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0]
    rows = _taxonomy_order(table.index, labels.mechanism_labels())
    columns = _taxonomy_order(table.columns, labels.phenotype_labels())
    table = table.loc[rows, columns]
    table.index.name, table.columns.name = "mechanisms", "phenotypes"
    return table


def heatmap_figure(frame: pd.DataFrame, index: FrameIndex | None = None) -> go.Figure:
    """Heat map of mechanism × phenotype. Streamlit reports no selection on heat-map traces, so each cell
    also carries an invisible marker whose customdata is (mechanism key, phenotype key): clicking a cell
    selects that marker."""
    title = "Mechanism × phenotype (click a cell to filter)"
    table = mechanism_phenotype_counts(frame, index)
    if table.empty:
        return _empty_figure(title, "No classified trials in the current selection")
    x_labels = [labels.phenotype_label(key) for key in table.columns]
    y_labels = [labels.mechanism_label(key) for key in table.index]
    z = table.to_numpy()
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x_labels,
            y=y_labels,
            colorscale="Blues",
            text=z,
            texttemplate="%{text}",
            hoverinfo="skip",
            colorbar={"title": {"text": "Trials"}},
        )
    )
    grid_y, grid_x = np.meshgrid(np.arange(len(y_labels)), np.arange(len(x_labels)), indexing="ij")
    keys = np.array(
        [[(mechanism, phenotype) for phenotype in table.columns] for mechanism in table.index], dtype=object
    )
    fig.add_scatter(
        x=np.array(x_labels, dtype=object)[grid_x.ravel()],
        y=np.array(y_labels, dtype=object)[grid_y.ravel()],
        mode="markers",
        marker={"size": 28, "symbol": "square", "opacity": 0.01, "color": "#000000"},
        customdata=keys.reshape(-1, 2),
        text=z.ravel(),
        hovertemplate="%{y} × %{x}: %{text} trials<extra></extra>",
        showlegend=False,
        name="cells",
    )
    fig.update_yaxes(autorange="reversed")
    height = max(360, 28 * len(y_labels) + 160)
    return _layout(fig, title, "Phenotype", "Mechanism", height=height, clickmode="event+select")


def heatmap_selection(points: list[dict[str, object]]) -> tuple[str, str] | None:
    """The (mechanism key, phenotype key) of the heat-map cell a selection event points at, if any."""
    for point in points:
        custom = point.get("customdata")
        if isinstance(custom, list | tuple) and len(custom) == 2 and all(isinstance(v, str) for v in custom):
            return str(custom[0]), str(custom[1])
    return None


# --- e. mechanism pipeline ---------------------------------------------------------------------------------


def mechanism_pipeline(frame: pd.DataFrame, index: FrameIndex | None = None) -> pd.DataFrame:
    """Trials per mechanism (rows, taxonomy order) and highest phase reached (columns, phase order)."""
    index, selected, _positions = index_for(frame, index)
    mechanisms = index.mechanisms
    keep = selected[mechanisms.rows]
    if not keep.any():
        return pd.DataFrame()
    width = len(index.phase_labels)
    cells = mechanisms.codes[keep] * width + index.phase_codes[mechanisms.rows[keep]]
    counts = np.bincount(cells, minlength=len(mechanisms.keys) * width).reshape(-1, width)
    table = pd.DataFrame(counts, index=list(mechanisms.keys), columns=list(index.phase_labels))
    table = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0]
    table = table[sorted(table.columns, key=labels.phase_rank)]
    return table.loc[_taxonomy_order(table.index, labels.mechanism_labels())]


def pipeline_figure(frame: pd.DataFrame, index: FrameIndex | None = None) -> go.Figure:
    title = "Mechanism pipeline: trials by highest phase"
    table = mechanism_pipeline(frame, index)
    if table.empty:
        return _empty_figure(title, "No classified trials in the current selection")
    y_labels = [labels.mechanism_label(key) for key in table.index]
    fig = go.Figure()
    for phase in table.columns:
        fig.add_bar(
            y=y_labels,
            x=table[phase],
            name=phase,
            orientation="h",
            marker_color=labels.PHASE_COLOURS.get(phase),
            hovertemplate=f"%{{y}} · {phase}: %{{x}} trials<extra></extra>",
        )
    fig.update_yaxes(autorange="reversed")
    height = max(360, 24 * len(y_labels) + 160)
    fig.update_layout(legend_traceorder="normal")  # phases left to right, as the bars stack
    return _layout(fig, title, "Trials", "Mechanism", barmode="stack", height=height)


# --- f. timeline (Gantt) -----------------------------------------------------------------------------------


def gantt_rows(frame: pd.DataFrame, today: date, cap: int = GANTT_CAP) -> pd.DataFrame:
    """The trials drawn on the timeline: the `cap` most recently started of those started by `today`,
    newest first.

    The bar ends at primary completion (completion when missing; today for active trials with neither).
    Columns: registration_id, title, status, start, end.
    """
    columns = [
        "registration_id",
        "brief_title",
        "overall_status",
        "lead_sponsor_name",
        "start_date",
        "primary_completion_date",
        "completion_date",
    ]
    started = frame.loc[has_started(frame, today), [c for c in columns if c in frame.columns]]
    chosen = started.nlargest(cap, "start_date") if len(started) > cap else started
    start = pd.to_datetime(chosen["start_date"])
    end = pd.to_datetime(chosen["primary_completion_date"]).fillna(pd.to_datetime(chosen["completion_date"]))
    active = chosen["overall_status"].isin(labels.ACTIVE_STATUSES)
    end = end.where(end.notna() | ~active, pd.Timestamp(today))
    end = end.fillna(start).where(end.fillna(start) > start, start + pd.Timedelta(days=30))
    sponsor = chosen["lead_sponsor_name"] if "lead_sponsor_name" in chosen.columns else None
    rows = pd.DataFrame(
        {
            "registration_id": chosen["registration_id"],
            "title": chosen["brief_title"].fillna("").str.slice(0, 90),
            "sponsor": sponsor.fillna("") if sponsor is not None else "",
            "status": chosen["overall_status"].fillna(""),
            "start": start,
            "end": end,
        }
    )
    # Newest first; the stable sort keeps NCT ID order among trials that started on the same day.
    return rows.sort_values("start", ascending=False, kind="stable").reset_index(drop=True)


def gantt_figure(frame: pd.DataFrame, today: date, cap: int = GANTT_CAP) -> go.Figure:
    """Timeline of the trials started by `today` (the data's date, drawn as a line), newest at the top."""
    rows = gantt_rows(frame, today, cap)
    total = int(has_started(frame, today).sum())
    title = "Timeline of started trials: start to primary completion"
    if total > len(rows):
        title += f" (the {len(rows)} most recently started of {total:,})"
    if rows.empty:
        return _empty_figure(title, "No started trials in the current selection")
    fig = go.Figure()
    for status, group in rows.groupby("status", sort=False):
        label = labels.status_label(status or None)
        duration_ms = (group["end"] - group["start"]).dt.total_seconds() * 1000
        fig.add_bar(
            y=group["registration_id"].map(labels.plotly_text),
            base=group["start"].dt.strftime("%Y-%m-%d"),
            x=duration_ms,
            orientation="h",
            name=labels.plotly_text(label),
            marker_color=labels.STATUS_COLOURS.get(status, "#bababa"),
            customdata=np.stack(
                [
                    group["title"].map(labels.plotly_text),
                    group["sponsor"].map(labels.plotly_text),
                    group["start"].dt.strftime("%Y-%m-%d"),
                    group["end"].dt.strftime("%Y-%m-%d"),
                ],
                axis=-1,
            ),
            hovertemplate="<b>%{y}</b> · "
            + labels.plotly_text(label)
            + "<br>%{customdata[0]}<br>%{customdata[1]}<br>%{customdata[2]} → %{customdata[3]}"
            "<extra></extra>",
        )
    fig.update_xaxes(type="date")
    fig.update_yaxes(
        categoryorder="array",
        categoryarray=list(rows["registration_id"].map(labels.plotly_text)[::-1]),
        showticklabels=len(rows) <= 60,
    )
    # The data's date: bars running past it are plans (estimated completion dates).
    fig.add_vline(x=today.isoformat(), line={"color": "#333333", "width": 1, "dash": "dot"})
    fig.add_annotation(
        x=today.isoformat(),
        y=1,
        yref="paper",
        xanchor="left",
        yanchor="top",
        text=f" data date {today:%d %b %Y}",
        showarrow=False,
        bgcolor="rgba(255,255,255,0.8)",
        font={"size": 11},
    )
    height = min(1400, max(360, 12 * len(rows) + 160))
    fig = _layout(fig, title, "Date", "Trial", height=height, barmode="overlay")
    # The chart is taller than a screen and the newest trials are at the top, so the dates go on top too;
    # the legend moves up under the title (in pixels from the top) to make room for them.
    fig.update_xaxes(side="top")
    fig.update_layout(
        margin={"t": GANTT_TOP_MARGIN},
        legend={"yref": "container", "y": 1 - GANTT_LEGEND_OFFSET / height, "yanchor": "top"},
    )
    return fig


# --- g. world map ------------------------------------------------------------------------------------------


def trials_by_country(frame: pd.DataFrame, index: FrameIndex | None = None) -> pd.Series:
    """Trials with at least one site in each country, largest first."""
    # Each trial's countries tuple is already de-duplicated, so counting entries counts trials.
    index, selected, _positions = index_for(frame, index)
    return index.countries.counts(selected).rename("trials").rename_axis("country")


def world_map_figure(frame: pd.DataFrame, index: FrameIndex | None = None) -> go.Figure:
    """Choropleth of trials per country. Plotly draws the outlines from the topojson file its `topojsonURL`
    config names: the dashboard serves one itself (dashboard/server.py)."""
    title = "Trial sites by country"
    counts = trials_by_country(frame, index)
    if counts.empty:
        return _empty_figure(title, "No trial sites in the current selection")
    fig = go.Figure(
        go.Choropleth(
            locations=counts.index,
            locationmode="country names",
            z=counts.values,
            colorscale="Blues",
            colorbar={"title": {"text": "Trials"}},
            customdata=counts.index.map(labels.plotly_text),
            hovertemplate="%{customdata}: %{z} trials with sites<extra></extra>",
        )
    )
    fig.update_geos(showframe=False, projection_type="natural earth")
    return _layout(fig, title, None, None, height=480)


def top_countries_figure(frame: pd.DataFrame, index: FrameIndex | None = None, top: int = 15) -> go.Figure:
    title = f"Countries with the most trials (top {top})"
    counts = trials_by_country(frame, index).head(top)
    if counts.empty:
        return _empty_figure(title, "No trial sites in the current selection")
    fig = go.Figure(
        go.Bar(
            x=counts.values[::-1],
            y=counts.index.map(labels.plotly_text)[::-1],
            orientation="h",
            marker_color="#3182bd",
            hovertemplate="%{y}: %{x} trials with sites<extra></extra>",
        )
    )
    return _layout(fig, title, "Trials with a site", None, height=480)


# --- h. change activity ------------------------------------------------------------------------------------


def events_per_week(events: pd.DataFrame) -> pd.DataFrame:
    """Change events per week (rows: Monday of the week) and kind label (columns); baseline events (the
    first load of a database) are not activity and are left out."""
    if events.empty:
        return pd.DataFrame()
    news = events[~events["baseline"].astype(bool)]
    if news.empty:
        return pd.DataFrame()
    detected = pd.to_datetime(news["detected_at"])
    week = (detected - pd.to_timedelta(detected.dt.day_of_week, unit="D")).dt.normalize()
    table = pd.crosstab(week, news["kind"].map(labels.change_kind_label))
    table.index.name = "week"
    return table


def change_activity_figure(events: pd.DataFrame) -> go.Figure:
    title = "Change activity: events per week"
    table = events_per_week(events)
    if table.empty:
        return _empty_figure(title, "No changes recorded yet for the current selection")
    fig = go.Figure()
    for kind in table.columns:
        fig.add_bar(
            x=table.index,
            y=table[kind],
            name=kind,
            hovertemplate=f"Week of %{{x|%d %b %Y}} · {kind}: %{{y}}<extra></extra>",
        )
    fig = _layout(fig, title, "Week starting", "Change events", barmode="stack")
    # Ticks on the Mondays the bars stand for, as dates (Plotly's own choice shows times for a few weeks).
    weeks = (table.index[-1] - table.index[0]).days // 7 + 1  # the span: quiet weeks have no row
    every = max(1, -(-weeks // WEEK_TICKS))
    fig.update_xaxes(
        type="date",
        tickformat="%d %b %Y",
        tick0=table.index[0],
        dtick=every * WEEK_MS,
        range=[table.index[0] - pd.Timedelta(days=4), table.index[-1] + pd.Timedelta(days=4)],
    )
    # Several kinds make a legend of two rows or more: beside the plot it cannot reach the title.
    fig.update_layout(
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
        margin={"t": 50},
    )
    return fig


# --- i. completion-date slippage ---------------------------------------------------------------------------


def completion_slippage(events: pd.DataFrame) -> pd.DataFrame:
    """Trials whose primary completion date moved later: ID, first (earliest old date), latest (newest
    new date), days; one row per trial, net over all its changes, largest slip first."""
    columns = ["registration_id", "first", "latest", "days"]
    if events.empty:
        return pd.DataFrame(columns=columns)
    moves = events[(events["kind"] == "primary_completion_date") & ~events["baseline"].astype(bool)]
    if moves.empty:
        return pd.DataFrame(columns=columns)
    moves = moves.sort_values(["registration_id", "detected_at", "id"])
    per_trial = moves.groupby("registration_id").agg(
        first=("old_value", "first"), latest=("new_value", "last")
    )
    first = pd.to_datetime(per_trial["first"].map(parse_partial_date))
    latest = pd.to_datetime(per_trial["latest"].map(parse_partial_date))
    per_trial["days"] = (latest - first).dt.days
    slipped = per_trial[per_trial["days"] > 0].reset_index()
    slipped["days"] = slipped["days"].astype(int)
    return (
        slipped[columns]
        .sort_values(["days", "registration_id"], ascending=[False, True])
        .reset_index(drop=True)
    )


def slippage_buckets(slippage: pd.DataFrame) -> pd.Series:
    """How many trials slipped by how much (fixed buckets, all shown even when empty)."""
    counts = {
        name: int(((slippage["days"] >= low) & (slippage["days"] < high)).sum())
        for name, low, high in SLIPPAGE_BUCKETS
    }
    return pd.Series(counts, name="trials")


def slippage_figure(events: pd.DataFrame) -> go.Figure:
    title = "Primary completion date moved later"
    slipped = completion_slippage(events)
    if slipped.empty:
        return _empty_figure(title, "No primary completion date has moved later in the current selection")
    buckets = slippage_buckets(slipped)
    fig = go.Figure(
        go.Bar(
            x=buckets.index,
            y=buckets.values,
            marker_color="#d73027",
            hovertemplate="Moved later by %{x}: %{y} trials<extra></extra>",
        )
    )
    return _layout(fig, f"{title} ({len(slipped):,} trials)", "Moved later by", "Trials")


# --- j. registry history: one trial's timeline, and slippage across the landscape --------------------------

OUTCOME_EVENT_KINDS = ("primary_outcome_added", "primary_outcome_removed", "primary_outcome_reworded")


def status_bands(timeline: pd.DataFrame, today: date) -> pd.DataFrame:
    """Consecutive versions with the same status merged into bands: status, start, end (the next band's
    start; today for the last)."""
    columns = ["status", "start", "end"]
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    ordered = timeline.sort_values("version")
    status = ordered["overall_status"].fillna("UNKNOWN")
    starts = ordered[status.ne(status.shift())]
    bands = pd.DataFrame({"status": status[starts.index].to_numpy(), "start": starts["date"].to_numpy()})
    bands["end"] = list(bands["start"].iloc[1:]) + [pd.Timestamp(today)]
    return bands[columns]


def registry_timeline_figure(timeline: pd.DataFrame, events: pd.DataFrame, today: date) -> go.Figure:
    """A trial's registry history: status bands, the primary completion date as registered at each date
    (moves marked), and primary outcome changes as vertical marks."""
    from plotly.subplots import make_subplots

    title = "Registry history"
    if timeline.empty:
        return _empty_figure(title, "No registry history yet: run `tracker history`")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.3, 0.7], vertical_spacing=0.06)
    for band in status_bands(timeline, today).itertuples():
        days = max((band.end - band.start).days, 1)
        fig.add_trace(
            go.Bar(
                x=[days * 86_400_000],
                base=[band.start],
                y=["Status"],
                orientation="h",
                marker_color=labels.STATUS_COLOURS.get(band.status, "#bdbdbd"),
                name=labels.status_label(band.status),
                legendgroup=band.status,
                hovertemplate=f"{labels.status_label(band.status)} from {band.start:%Y-%m-%d}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    dated = timeline.dropna(subset=["primary_completion_date"])
    if not dated.empty:
        pcd = pd.to_datetime(dated["primary_completion_date"].map(parse_partial_date))
        fig.add_trace(
            go.Scatter(
                x=dated["date"],
                y=pcd,
                mode="lines+markers",
                line_shape="hv",
                name="Primary completion date (as registered)",
                customdata=dated["pcd_type"].fillna(""),
                hovertemplate="%{x|%Y-%m-%d}: primary completion %{y|%Y-%m-%d} %{customdata}<extra></extra>",
            ),
            row=2,
            col=1,
        )
    moves = events[events["kind"] == "primary_completion_date"] if not events.empty else events
    if not moves.empty:
        fig.add_trace(
            go.Scatter(
                x=moves["effective_date"],
                y=pd.to_datetime(moves["new_value"].map(parse_partial_date)),
                mode="markers",
                marker={"size": 11, "symbol": "diamond", "color": "#d73027"},
                name="Primary completion moved",
                customdata=moves["days"].astype("float").fillna(0).astype(int),
                hovertemplate="%{x|%Y-%m-%d}: moved %{customdata} days<extra></extra>",
            ),
            row=2,
            col=1,
        )
    outcome_changes = events[events["kind"].isin(OUTCOME_EVENT_KINDS)] if not events.empty else events
    for change in outcome_changes.itertuples():
        fig.add_vline(x=change.effective_date, line_dash="dash", line_color="#762a83", row="all", col=1)
    if not outcome_changes.empty:
        fig.add_trace(
            go.Scatter(
                x=outcome_changes["effective_date"],
                y=["Status"] * len(outcome_changes),
                mode="markers",
                marker={"size": 12, "symbol": "star", "color": "#762a83"},
                name="Primary outcome changed",
                customdata=outcome_changes["kind"].str.replace("primary_outcome_", "", regex=False),
                hovertemplate="%{x|%Y-%m-%d}: primary outcome %{customdata}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    fig.update_layout(barmode="overlay", height=420)
    fig.update_xaxes(type="date")
    return _layout(fig, title, None, None)


def history_slippage(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per phase (`by="phase"`) or mechanism (`by="mechanism"`), over trials whose version records are
    backfilled: trials, share whose primary completion date ended later than first registered, median
    total slip (days) of those. Mechanisms count a trial once per mechanism."""
    columns = ["group", "trials", "slipped", "share_slipped", "median_slip_days"]
    known = frame[frame["pcd_changes"].notna()] if "pcd_changes" in frame else frame.iloc[0:0]
    if known.empty:
        return pd.DataFrame(columns=columns)
    if by == "mechanism":
        rows = (
            known[["mechanisms", "pcd_total_slip_days"]].explode("mechanisms").dropna(subset=["mechanisms"])
        )
        groups = rows["mechanisms"].map(labels.mechanism_label)
    else:
        rows = known[["highest_phase", "pcd_total_slip_days"]]
        groups = rows["highest_phase"].map(labels.phase_label)
    slip = rows["pcd_total_slip_days"].astype("float")
    table = pd.DataFrame({"group": groups, "slip": slip})
    summary = table.groupby("group").agg(
        trials=("slip", "size"),
        slipped=("slip", lambda values: int((values > 0).sum())),
        median_slip_days=(
            "slip",
            lambda values: float(values[values > 0].median()) if (values > 0).any() else 0.0,
        ),
    )
    summary["share_slipped"] = summary["slipped"] / summary["trials"]
    summary = summary.reset_index()
    if by != "mechanism":
        summary = summary.sort_values("group", key=lambda names: names.map(labels.phase_rank))
    else:
        summary = summary.sort_values(["trials", "group"], ascending=[False, True])
    return summary[columns].reset_index(drop=True)


def history_slippage_figure(frame: pd.DataFrame, by: str) -> go.Figure:
    title = f"Primary completion slippage by {by} (registry history)"
    summary = history_slippage(frame, by)
    if summary.empty:
        return _empty_figure(title, "No trial in the selection has its version records backfilled")
    fig = go.Figure(
        go.Bar(
            x=summary["group"],
            y=summary["median_slip_days"],
            marker_color="#d73027",
            customdata=np.stack(
                [summary["slipped"], summary["trials"], summary["share_slipped"] * 100], axis=1
            ),
            hovertemplate=(
                "%{x}: median %{y:.0f} days later, %{customdata[0]} of %{customdata[1]} trials slipped "
                "(%{customdata[2]:.0f}%)<extra></extra>"
            ),
            text=[f"{share:.0%}" for share in summary["share_slipped"]],
            textposition="outside",
        )
    )
    return _layout(fig, title, by.capitalize(), "Median days later (trials that slipped)")
