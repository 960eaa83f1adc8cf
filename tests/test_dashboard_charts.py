"""The dashboard's pure parts: chart aggregations and figures, headline numbers, table rows, labels."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest

from dashboard import charts, labels
from dashboard.frame_index import FrameIndex
from dashboard.metrics import headline_numbers
from dashboard.table import MANUAL_MARK, table_rows
from tracker.query import CHANGE_EVENT_COLUMNS, DATE_COLUMNS, TRIAL_FRAME_COLUMNS

TODAY = date(2025, 9, 25)


def trial(registration_id: str, **values: Any) -> dict[str, Any]:
    """One trial-frame row with neutral defaults; dates given as 'YYYY-MM-DD' strings."""
    row: dict[str, Any] = {column: None for column in TRIAL_FRAME_COLUMNS}
    row.update(
        registration_id=registration_id,
        brief_title=f"Trial {registration_id}",
        overall_status="COMPLETED",
        phases=(),
        has_results=False,
        conditions=("Multiple Sclerosis",),
        interventions=(),
        countries=(),
        relevance="ms",
        mechanisms=(),
        mechanism_roles=(),
        phenotypes=(),
        multi_disease=False,
        manual=False,
        removed=False,
        trial_id=registration_id,
        registries=("ctgov",),
        registration_ids=(registration_id,),
        eu_countries=(),
        url=f"https://clinicaltrials.gov/study/{registration_id}",
    )
    row.update(values)
    if row["investigational_mechanisms"] is None:  # as the query layer fills them: no comparators
        row["investigational_mechanisms"] = row["mechanisms"]
    if row["comparator_mechanisms"] is None:
        row["comparator_mechanisms"] = ()
    return row


def frame_of(*rows: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(TRIAL_FRAME_COLUMNS))
    for column in DATE_COLUMNS:
        frame[column] = pd.to_datetime(frame[column])
    frame["start_year"] = frame["start_date"].dt.year.astype("Int64")
    frame["highest_phase"] = frame["phases"].map(lambda phases: phases[-1] if phases else None)
    return frame


def events_of(*rows: tuple[str, str, str, str | None, str | None, bool]) -> pd.DataFrame:
    """(registration_id, detected_at, kind, old, new, baseline) tuples → a change-event frame."""
    frame = pd.DataFrame(
        [
            {
                "id": index + 1,
                "registration_id": registration_id,
                "detected_at": pd.Timestamp(detected),
                "kind": kind,
                "field": {"status": "overall_status", "results_posted": "results_first_posted"}.get(
                    kind, kind
                ),
                "old_value": old,
                "new_value": new,
                "baseline": baseline,
                "trial_id": registration_id,
            }
            for index, (registration_id, detected, kind, old, new, baseline) in enumerate(rows)
        ],
        columns=list(CHANGE_EVENT_COLUMNS),
    )
    frame["detected_at"] = pd.to_datetime(frame["detected_at"])
    return frame


@pytest.fixture
def sample() -> pd.DataFrame:
    return frame_of(
        trial(
            "NCT00000001",
            overall_status="RECRUITING",
            phases=("PHASE3",),
            start_date="2024-12-01",
            primary_completion_date="2027-06-01",
            mechanisms=("anti_cd20",),
            phenotypes=("rms",),
            countries=("United States", "France"),
        ),
        trial(
            "NCT00000002",
            overall_status="COMPLETED",
            phases=("PHASE2",),
            start_date="2019-03-01",
            primary_completion_date="2022-01-15",
            has_results=False,
            mechanisms=("anti_cd20", "btk_inhibitor"),
            phenotypes=("rms", "spms"),
            countries=("France",),
        ),
        trial(
            "NCT00000003",
            overall_status="COMPLETED",
            phases=("PHASE1", "PHASE2"),
            start_date="2019-07-01",
            primary_completion_date="2021-02-01",
            has_results=True,
            results_first_posted="2022-03-01",
            mechanisms=("btk_inhibitor",),
            phenotypes=("ppms",),
            manual=True,
        ),
        trial("NCT00000004", overall_status="WITHDRAWN", start_date=None),
    )


def test_start_year_by_phase_counts_each_dated_trial_once_under_its_highest_phase(sample):
    table = charts.start_year_by_phase(sample)
    assert table.loc[2019].to_dict() == {"Phase 2": 2, "Phase 3": 0}
    assert table.loc[2024].to_dict() == {"Phase 2": 0, "Phase 3": 1}
    assert int(table.to_numpy().sum()) == 3  # the undated trial is left out
    fig = charts.start_year_figure(sample)
    assert fig.layout.title.text and fig.layout.xaxis.title.text == "Start year"
    assert fig.layout.barmode == "stack"
    assert [trace.name for trace in fig.data] == ["Phase 2", "Phase 3"]


def test_recruiting_by_year_counts_every_year_from_start_to_primary_completion(sample):
    series = charts.recruiting_by_year(sample, TODAY)
    assert series.index[0] == 2019 and series.index[-1] == TODAY.year
    assert series[2019] == 2 and series[2020] == 2 and series[2021] == 2  # both 2019 trials
    assert series[2022] == 1  # NCT…2 until its 2022 primary completion
    assert series[2023] == 0
    assert series[2024] == 1 and series[2025] == 1  # the recruiting trial, not beyond this year


def test_recruiting_by_year_keeps_active_trials_without_end_until_now():
    frame = frame_of(trial("NCT00000010", overall_status="RECRUITING", start_date="2023-01-01"))
    assert charts.recruiting_by_year(frame, TODAY).to_dict() == {2023: 1, 2024: 1, 2025: 1}


def test_status_breakdown_uses_labels(sample):
    counts = charts.status_breakdown(sample)
    assert counts.to_dict() == {"Completed": 2, "Recruiting": 1, "Withdrawn": 1}
    fig = charts.status_figure(sample)
    assert list(fig.data[0].y) == ["Withdrawn", "Recruiting", "Completed"]  # largest at the top


def test_results_over_time(sample):
    assert charts.results_posted_by_year(sample).to_dict() == {2022: 1}
    share = charts.results_share_by_completion_year(sample)
    assert share.loc[2021].to_dict() == {"completed": 1, "with_results": 1, "share": 1.0}
    assert share.loc[2022].to_dict() == {"completed": 1, "with_results": 0, "share": 0.0}
    fig = charts.results_share_figure(sample)
    assert fig.layout.yaxis.ticksuffix == "%"


def test_mechanism_phenotype_counts_follow_taxonomy_order(sample):
    table = charts.mechanism_phenotype_counts(sample)
    assert list(table.index) == ["anti_cd20", "btk_inhibitor"]
    assert list(table.columns) == ["rms", "spms", "ppms"]
    assert table.loc["anti_cd20"].to_dict() == {"rms": 2, "spms": 1, "ppms": 0}
    assert table.loc["btk_inhibitor"].to_dict() == {"rms": 1, "spms": 1, "ppms": 1}


def test_heatmap_cells_carry_their_keys_for_click_filtering(sample):
    fig = charts.heatmap_figure(sample)
    heat, cells = fig.data
    assert isinstance(heat, go.Heatmap) and isinstance(cells, go.Scatter)
    assert len(cells.customdata) == 2 * 3
    assert [list(cell) for cell in cells.customdata][:3] == [
        ["anti_cd20", "rms"],
        ["anti_cd20", "spms"],
        ["anti_cd20", "ppms"],
    ]
    assert cells.x[1] == labels.phenotype_label("spms") and cells.y[1] == labels.mechanism_label("anti_cd20")


def test_heatmap_selection_reads_the_clicked_cell():
    assert charts.heatmap_selection([{"x": "a", "customdata": ["btk_inhibitor", "ppms"]}]) == (
        "btk_inhibitor",
        "ppms",
    )
    assert charts.heatmap_selection([{"x": 2019, "y": 3}]) is None
    assert charts.heatmap_selection([]) is None


def test_mechanism_pipeline_by_highest_phase(sample):
    table = charts.mechanism_pipeline(sample)
    assert table.loc["anti_cd20"].to_dict() == {"Phase 2": 1, "Phase 3": 1}
    assert table.loc["btk_inhibitor"].to_dict() == {"Phase 2": 2, "Phase 3": 0}


def test_gantt_is_capped_to_the_most_recently_started(sample):
    rows = charts.gantt_rows(sample, TODAY, cap=2)
    assert list(rows["registration_id"]) == ["NCT00000001", "NCT00000003"]
    assert rows.loc[0, "end"] == pd.Timestamp("2027-06-01")
    fig = charts.gantt_figure(sample, TODAY, cap=2)
    assert "2 most recently started of 3" in fig.layout.title.text
    assert fig.layout.yaxis.categoryarray == ("NCT00000003", "NCT00000001")  # newest at the top
    assert fig.layout.xaxis.type == "date"
    # Dates above the bars (the chart is taller than a screen), the legend between them and the title.
    assert fig.layout.xaxis.side == "top"
    assert fig.layout.legend.yref == "container" and fig.layout.legend.y < 1
    assert fig.layout.margin.t > fig.layout.height * (1 - fig.layout.legend.y)


def test_gantt_shows_only_trials_started_by_the_data_date_and_marks_that_date():
    frame = frame_of(
        trial("NCT00000011", overall_status="RECRUITING", start_date="2025-03-01"),
        trial("NCT00000012", overall_status="COMPLETED", start_date="2020-01-01", lead_sponsor_name="Acme"),
        # Plans, not starts: a withdrawn trial's estimate, a trial not yet recruiting, a start after the date.
        trial("NCT00000013", overall_status="WITHDRAWN", start_date="2030-01-01"),
        trial("NCT00000014", overall_status="NOT_YET_RECRUITING", start_date="2025-08-01"),
        trial("NCT00000015", overall_status="RECRUITING", start_date="2025-10-01"),
        trial("NCT00000016", overall_status="RECRUITING", start_date=None),
    )
    data_date = date(2025, 9, 1)  # not the wall clock: the chart takes the data's own date
    rows = charts.gantt_rows(frame, data_date)
    assert list(rows["registration_id"]) == ["NCT00000011", "NCT00000012"]
    assert rows.loc[0, "end"] == pd.Timestamp(data_date)  # active, no completion date: runs to the date
    fig = charts.gantt_figure(frame, data_date)
    assert [shape.x0 for shape in fig.layout.shapes] == ["2025-09-01"]
    assert any("01 Sep 2025" in note.text for note in fig.layout.annotations)
    hover = " ".join(str(trace.customdata.tolist()) for trace in fig.data)
    assert "Acme" in hover and "Trial NCT00000012" in hover
    later = charts.gantt_rows(frame, date(2025, 12, 1))
    assert "NCT00000015" in set(later["registration_id"])


def test_registry_text_reaches_plotly_escaped():
    """Plotly renders <a href>, <b>, <br> and <span> in titles, ticks and hover text: registry text is
    shown as text."""
    hostile = '<a href="https://attacker.example/">click</a><b>bold</b>'
    frame = frame_of(
        trial(
            "NCT00000021",
            brief_title=hostile,
            lead_sponsor_name=hostile,
            overall_status="RECRUITING",
            start_date="2024-01-01",
            countries=(hostile,),
        )
    )
    figures = [
        charts.gantt_figure(frame, TODAY),
        charts.world_map_figure(frame),
        charts.top_countries_figure(frame),
        charts.status_figure(frame.assign(overall_status=hostile)),
    ]
    # The map matches countries by their stored names (never displayed); everything else is display text.
    assert list(figures[1].data[0].locations) == [hostile]
    figures[1].update_traces(locations=["France"])
    for fig in figures:
        text = fig.to_json()
        assert "<a href" not in text and "\\u003ca href" not in text.lower()
        assert "&lt;a href" in text


def test_change_activity_ticks_are_week_dates_and_the_legend_sits_beside_the_plot():
    events = events_of(
        ("NCT00000001", "2025-09-22 10:00", "status", "RECRUITING", "COMPLETED", False),
        ("NCT00000002", "2025-09-17 10:00", "enrollment", "10", "20", False),
        ("NCT00000003", "2025-09-10 10:00", "new", None, None, False),
    )
    fig = charts.change_activity_figure(events)
    axis = fig.layout.xaxis
    assert axis.type == "date" and axis.tickformat == "%d %b %Y"
    assert pd.Timestamp(axis.tick0) == pd.Timestamp("2025-09-08")  # a Monday, the first week shown
    assert axis.dtick == 7 * 24 * 3600 * 1000
    assert fig.layout.legend.orientation == "v" and fig.layout.legend.x > 1  # right of the plot
    many = events_of(
        *[(f"NCT{n:08d}", f"2024-01-{1 + n % 28:02d}", "new", None, None, False) for n in range(28)],
        ("NCT00000099", "2025-06-02", "status", "RECRUITING", "COMPLETED", False),
    )
    assert charts.change_activity_figure(many).layout.xaxis.dtick > 7 * 24 * 3600 * 1000


def test_trials_by_country_counts_trials_not_sites(sample):
    assert charts.trials_by_country(sample).to_dict() == {"France": 2, "United States": 1}
    assert charts.world_map_figure(sample).data[0].locationmode == "country names"
    assert list(charts.top_countries_figure(sample).data[0].y) == ["United States", "France"]


def test_events_per_week_skip_baseline_and_group_by_monday():
    events = events_of(
        ("NCT00000001", "2025-09-22 10:00", "status", "RECRUITING", "COMPLETED", False),  # Monday
        ("NCT00000002", "2025-09-24 10:00", "status", "RECRUITING", "COMPLETED", False),
        ("NCT00000002", "2025-09-24 10:00", "enrollment", "10", "20", False),
        ("NCT00000003", "2025-09-16 10:00", "new", None, None, False),
        ("NCT00000004", "2025-09-24 10:00", "new", None, None, True),
    )
    table = charts.events_per_week(events)
    assert table.loc[pd.Timestamp("2025-09-22")].to_dict() == {"Enrollment": 1, "New trial": 0, "Status": 2}
    assert table.loc[pd.Timestamp("2025-09-15")].to_dict() == {"Enrollment": 0, "New trial": 1, "Status": 0}


def test_completion_slippage_nets_all_moves_of_a_trial():
    events = events_of(
        ("NCT00000001", "2025-01-01", "primary_completion_date", "2025-06", "2025-12", False),
        ("NCT00000001", "2025-05-01", "primary_completion_date", "2025-12", "2026-12-15", False),
        ("NCT00000002", "2025-02-01", "primary_completion_date", "2026-01-01", "2025-10", False),  # earlier
        ("NCT00000003", "2025-02-01", "primary_completion_date", "2024", "2024-03", True),  # baseline
        ("NCT00000004", "2025-02-01", "status", "RECRUITING", "COMPLETED", False),
    )
    slipped = charts.completion_slippage(events)
    assert slipped.to_dict("records") == [
        {"registration_id": "NCT00000001", "first": "2025-06", "latest": "2026-12-15", "days": 562}
    ]
    buckets = charts.slippage_buckets(slipped)
    assert buckets["1–2 years"] == 1 and buckets.sum() == 1
    assert "1 trials" in charts.slippage_figure(events).layout.title.text


def test_every_figure_has_a_title_and_an_empty_state():
    empty = frame_of(trial("NCT00000001")).iloc[0:0]
    no_events = events_of()
    figures = [
        charts.start_year_figure(empty),
        charts.recruiting_figure(empty, TODAY),
        charts.status_figure(empty),
        charts.results_posted_figure(empty),
        charts.results_share_figure(empty),
        charts.heatmap_figure(empty),
        charts.pipeline_figure(empty),
        charts.gantt_figure(empty, TODAY),
        charts.world_map_figure(empty),
        charts.top_countries_figure(empty),
        charts.change_activity_figure(no_events),
        charts.slippage_figure(no_events),
        charts.primary_endpoint_figure(empty, "phase"),
        charts.primary_endpoint_figure(empty, "mechanism"),
    ]
    for figure in figures:
        assert figure.layout.title.text
        assert figure.layout.annotations  # a note instead of an empty plot


def endpoint_trials() -> pd.DataFrame:
    """Four trials: one compares a BTK inhibitor with an anti-CD20 antibody, one has no primary endpoint."""
    return frame_of(
        trial(
            "NCT00000011",
            phases=("PHASE3",),
            mechanisms=("anti_cd20", "btk_inhibitor"),
            comparator_mechanisms=("anti_cd20",),
            investigational_mechanisms=("btk_inhibitor",),
            endpoints_primary=("disability_progression", "relapse", "mri_lesions"),
        ),
        trial(
            "NCT00000012",
            phases=("PHASE2",),
            mechanisms=("btk_inhibitor",),
            endpoints_primary=("mri_lesions", "mri_atrophy"),
        ),
        trial("NCT00000013", phases=("PHASE2",), mechanisms=("anti_cd20",), endpoints_primary=("safety",)),
        trial("NCT00000014", phases=("PHASE1",), mechanisms=("anti_cd20",), endpoints_primary=()),
    )


def test_primary_endpoint_families_by_phase_count_each_trial_once_per_family():
    table = charts.primary_endpoint_counts(endpoint_trials(), "phase")
    assert list(table.columns) == ["clinical_disability", "imaging", "safety_and_pharmacology"]
    assert table.to_dict("index") == {
        "Phase 2": {"clinical_disability": 0, "imaging": 1, "safety_and_pharmacology": 1},
        "Phase 3": {"clinical_disability": 1, "imaging": 1, "safety_and_pharmacology": 0},
    }  # two imaging keys of one trial count once; the trial without primary endpoints is left out


def test_primary_endpoint_families_by_mechanism_leave_comparators_out_unless_asked():
    frame = endpoint_trials()
    studied = charts.primary_endpoint_counts(frame, "mechanism")
    assert studied.to_dict("index") == {
        "anti_cd20": {"clinical_disability": 0, "imaging": 0, "safety_and_pharmacology": 1},
        "btk_inhibitor": {"clinical_disability": 1, "imaging": 2, "safety_and_pharmacology": 0},
    }
    counted = charts.primary_endpoint_counts(frame, "mechanism", FrameIndex.build(frame, "mechanisms"))
    assert counted.loc["anti_cd20"].to_dict() == {
        "clinical_disability": 1,
        "imaging": 1,
        "safety_and_pharmacology": 1,
    }
    subset = frame[
        frame["registration_id"] != "NCT00000012"
    ]  # a filtered frame, counted through the whole index
    through_index = charts.primary_endpoint_counts(subset, "mechanism", FrameIndex.build(frame))
    assert through_index.loc["btk_inhibitor"].to_dict() == {
        "clinical_disability": 1,
        "imaging": 1,
        "safety_and_pharmacology": 0,
    }
    with pytest.raises(ValueError, match="by must be one of"):
        charts.primary_endpoint_counts(frame, "sponsor")


def test_primary_endpoint_figure_is_a_labelled_heat_map():
    fig = charts.primary_endpoint_figure(endpoint_trials(), "mechanism")
    (heatmap,) = fig.data
    assert fig.layout.title.text == "Primary endpoints by mechanism: trials per endpoint family"
    assert list(heatmap.x) == ["Clinical disability", "Imaging", "Safety and pharmacology"]
    assert list(heatmap.y) == [labels.mechanism_label("anti_cd20"), labels.mechanism_label("btk_inhibitor")]
    assert heatmap.z.tolist() == [[0, 0, 1], [1, 2, 0]]
    assert list(charts.primary_endpoint_figure(endpoint_trials(), "phase").data[0].y) == [
        "Phase 2",
        "Phase 3",
    ]


def test_headline_numbers(sample):
    events = events_of(
        ("NCT00000001", "2025-09-20 08:00", "status", "NOT_YET_RECRUITING", "RECRUITING", False),
        ("NCT00000002", "2025-09-10 08:00", "status", "RECRUITING", "COMPLETED", False),  # too old
        ("NCT00000003", "2025-09-24 08:00", "status", None, "COMPLETED", True),  # baseline
        ("NCT00000003", "2025-09-24 08:00", "enrollment", "1", "2", False),  # not a status change
    )
    # A reason for stopping comes with the status change it explains: the same change, not a second one.
    why_stopped = events.iloc[[0]].assign(id=99, field="why_stopped", old_value=None, new_value="funding")
    events = pd.concat([events, why_stopped], ignore_index=True)
    numbers = headline_numbers(sample, events, TODAY)
    assert numbers.trials == 4
    assert numbers.recruiting == 1
    assert numbers.started_last_12_months == 1  # NCT…1 started 2024-12-01
    assert numbers.results_overdue == 1  # NCT…2: completed 2022, no results; NCT…3 posted
    assert numbers.status_changes_last_7_days == 1


def test_headline_numbers_of_nothing_are_zero():
    empty = frame_of(trial("NCT00000001")).iloc[0:0]
    assert headline_numbers(empty, events_of(), TODAY).trials == 0


def test_table_rows_link_to_the_registry_and_mark_manual_labels(sample):
    rows = table_rows(sample, TODAY, cap=3)
    assert list(rows["registration_id"]) == ["NCT00000001", "NCT00000003", "NCT00000002"]
    assert rows.loc[0, "Trial ID"] == "https://clinicaltrials.gov/study/NCT00000001"
    assert rows.loc[1, "Mechanisms"] == MANUAL_MARK + labels.mechanism_label("btk_inhibitor")
    assert rows.loc[1, "Phase"] == "Phase 1/Phase 2"
    assert not rows.loc[0, "Mechanisms"].startswith(MANUAL_MARK)


def test_table_order_is_the_timelines_started_trials_first_then_plans_then_undated():
    frame = frame_of(
        trial("NCT00000031", overall_status="WITHDRAWN", start_date="2030-01-01"),
        trial("NCT00000032", overall_status="COMPLETED", start_date="2019-01-01"),
        trial("NCT00000033", overall_status="RECRUITING", start_date=None),
        trial("NCT00000034", overall_status="NOT_YET_RECRUITING", start_date="2026-02-01"),
        trial("NCT00000035", overall_status="RECRUITING", start_date="2025-01-01"),
        trial("NCT00000036", overall_status="COMPLETED", start_date="2019-01-01"),
    )
    rows = table_rows(frame, TODAY)
    assert list(rows["registration_id"]) == [
        "NCT00000035",
        "NCT00000032",  # same start day: NCT ID order kept
        "NCT00000036",
        "NCT00000034",  # planned starts, soonest first
        "NCT00000031",
        "NCT00000033",  # undated
    ]
    assert list(table_rows(frame, TODAY, cap=2)["registration_id"]) == ["NCT00000035", "NCT00000032"]
    assert not rows.isin(["None"]).any().any()


def test_parse_partial_date_handles_registry_precisions():
    assert charts.parse_partial_date("2024") == date(2024, 1, 1)
    assert charts.parse_partial_date("2024-05") == date(2024, 5, 1)
    assert charts.parse_partial_date("2024-05-17") == date(2024, 5, 17)
    assert charts.parse_partial_date("soon") is None
    assert charts.parse_partial_date(None) is None


def test_labels_fall_back_for_unknown_enums():
    assert labels.status_label("RECRUITING") == "Recruiting"
    assert labels.status_label("SOMETHING_NEW") == "Something new"
    assert labels.phase_label(None) == labels.NO_PHASE
    assert labels.phases_text(("PHASE2", "PHASE3")) == "Phase 2/Phase 3"


def test_counts_through_a_frame_index_match_counts_of_the_subset(sample):
    """The page builds the index once from the whole frame and counts filtered subsets through it."""
    index = FrameIndex.build(sample)
    subset = sample[sample["overall_status"] == "COMPLETED"]
    assert subset.index.tolist() == [1, 2]  # labels are positions in the indexed frame
    pd.testing.assert_frame_equal(
        charts.mechanism_phenotype_counts(subset, index), charts.mechanism_phenotype_counts(subset)
    )
    pd.testing.assert_frame_equal(charts.mechanism_pipeline(subset, index), charts.mechanism_pipeline(subset))
    pd.testing.assert_frame_equal(
        charts.start_year_by_phase(subset, index), charts.start_year_by_phase(subset)
    )
    pd.testing.assert_series_equal(charts.trials_by_country(subset, index), charts.trials_by_country(subset))
    assert charts.trials_by_country(subset, index).to_dict() == {"France": 1}
    assert charts.mechanism_pipeline(sample.iloc[0:0], index).empty


def test_markdown_text_shows_registry_text_literally():
    hostile = "![x](https://attacker.example/a.png) **bold** [link](https://a.example) :red[x] $x$\nnext"
    escaped = labels.markdown_text(hostile)
    assert "\n" not in escaped
    # Every Markdown-active mark is backslashed, so none can open an image, a link, emphasis or a directive.
    for mark in "![]()*:$":
        assert all(escaped[i - 1] == "\\" for i, char in enumerate(escaped) if char == mark)
    assert labels.markdown_text(None) == "" and labels.markdown_text("NCT01234567") == "NCT01234567"
    # Bare URLs and addresses are autolinked from the decoded text: a word joiner breaks each one up.
    unlinked = labels.markdown_text("see https://a.example, www.b.example or me@c.example")
    assert "https\u2060" in unlinked and "www\u2060" in unlinked and "\u2060\\@" in unlinked
    assert (
        unlinked.replace("\u2060", "").replace("\\", "")
        == "see https://a.example, www.b.example or me@c.example"
    )
    assert labels.plotly_text("<b>a</b> & b") == "&lt;b&gt;a&lt;/b&gt; &amp; b"
