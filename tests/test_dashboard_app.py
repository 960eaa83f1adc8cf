"""The dashboard script through Streamlit's AppTest, on real databases filled by the import path.

Expected numbers come from the query layer and the shared filter model, so these tests check the wiring:
widgets → TrialFilter → URL → headline numbers, charts and table.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from dashboard import sidebar
from dashboard.data import choices_from_frame
from dashboard.metrics import headline_numbers
from tracker import query, store
from tracker.db.migrate import upgrade_to_head
from tracker.db.session import make_engine
from tracker.filters import TrialFilter, apply_filter
from tracker.sources import import_studies

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
SAMPLE = Path(__file__).parent / "fixtures" / "ms_sample.jsonl"
CHANGED_STUDIES = 3


def sample_studies() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]


def fill(engine: Engine) -> list[str]:
    """Import the sample (a baseline), then land a second run with changes; returns the changed NCT IDs."""
    import_studies(engine, SAMPLE)
    return land_changes(engine)


def land_changes(engine: Engine) -> list[str]:
    """A run that changes a few studies of the default view: their status and a later primary completion."""
    frame = apply_filter(query.load_trial_frame(engine), TrialFilter())
    wanted = set(frame.loc[frame["primary_completion_date"].notna(), "registration_id"].head(CHANGED_STUDIES))
    changed = []
    for study in sample_studies():
        registration_id = study["protocolSection"]["identificationModule"]["nctId"]
        if registration_id not in wanted:
            continue
        study = copy.deepcopy(study)
        status = study["protocolSection"]["statusModule"]
        status["overallStatus"] = "RECRUITING" if status.get("overallStatus") != "RECRUITING" else "COMPLETED"
        status["primaryCompletionDateStruct"] = {"date": "2031-06", "type": "ESTIMATED"}
        changed.append(study)
    run_id = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)
    store.ingest_page(engine, run_id, changed)
    store.finish_run(engine, run_id, outcome="success")
    return sorted(wanted)


@pytest.fixture(scope="module")
def loaded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'trials.db'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    fill(engine)
    engine.dispose()
    yield url


def run_app(url: str, monkeypatch: pytest.MonkeyPatch, **params: str | list[str]) -> AppTest:
    monkeypatch.setenv("TRACKER_DATABASE_URL", url)
    app = AppTest.from_file(str(APP), default_timeout=60)
    for name, value in params.items():
        app.query_params[name] = value
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def expected_metrics(url: str, trial_filter: TrialFilter) -> dict[str, str]:
    engine = make_engine(url)
    try:
        frame = apply_filter(query.load_trial_frame(engine), trial_filter)
        events = query.change_events_frame(
            engine, include_baseline=False, registration_ids=set(frame["registration_id"])
        )
        as_of = query.data_as_of(engine).or_today(datetime.now(UTC).date())
    finally:
        engine.dispose()
    numbers = headline_numbers(frame, events, as_of)
    return {
        "Trials": f"{numbers.trials:,}",
        "Recruiting now": f"{numbers.recruiting:,}",
        "Started in the last 12 months": f"{numbers.started_last_12_months:,}",
        "Results overdue": f"{numbers.results_overdue:,}",
        "Status changes, last 7 days": f"{numbers.status_changes_last_7_days:,}",
    }


def figure(app: AppTest, title_start: str) -> dict[str, Any]:
    for chart in app.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if spec["layout"].get("title", {}).get("text", "").startswith(title_start):
            return spec
    raise AssertionError(f"no chart titled {title_start!r}")


def readable(markdown: str) -> str:
    """What a reader sees of Markdown whose text was escaped (every punctuation mark backslashed)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def url_values(app: AppTest, name: str) -> list[str]:
    value = app.query_params.get(name, [])
    return [value] if isinstance(value, str) else list(value)


def numbers(value: Any) -> list[float]:
    """A Plotly JSON array: a plain list, or a typed array {"dtype", "bdata" (base64)}."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)


def busiest_mechanism(url: str) -> str:
    engine = make_engine(url)
    try:
        frame = apply_filter(query.load_trial_frame(engine), TrialFilter())
    finally:
        engine.dispose()
    return str(frame["mechanisms"].explode().value_counts().index[0])


def test_empty_database_shows_how_to_fill_it(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(str(engine.url.render_as_string(hide_password=False)), monkeypatch)
    text = " ".join(block.value for block in app.markdown)
    assert "no trials in this database yet" in text
    assert "tracker sync" in text and "tracker import" in text
    assert not app.metric


def test_database_without_tables_gets_a_notice_not_a_traceback(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = run_app(sqlite_url, monkeypatch)
    assert any("no tables yet" in warning.value for warning in app.warning)


def test_default_view_shows_headline_numbers_charts_and_table(
    loaded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = run_app(loaded_url, monkeypatch)
    assert metrics(app) == expected_metrics(loaded_url, TrialFilter())
    # The changed studies are in the default view, so their status changes show as this week's.
    assert metrics(app)["Status changes, last 7 days"] == str(CHANGED_STUDIES)
    assert len(app.get("plotly_chart")) == 13  # the last: slippage by phase from the registry history
    start_years = figure(app, "Trials by start year")
    engine = make_engine(loaded_url)
    frame = apply_filter(query.load_trial_frame(engine), TrialFilter())
    engine.dispose()
    assert sum(sum(numbers(trace["y"])) for trace in start_years["data"]) == int(
        frame["start_date"].notna().sum()
    )
    assert start_years["layout"]["xaxis"]["title"]["text"] == "Start year"
    slippage = figure(app, "Primary completion date moved later")
    assert sum(numbers(slippage["data"][0]["y"])) == CHANGED_STUDIES
    table = app.dataframe[0].value
    assert len(table) == min(len(frame), 1000)
    assert table["NCT ID"].str.startswith("https://clinicaltrials.gov/study/NCT").all()
    assert dict(app.query_params) == {}  # defaults need no parameters


def test_mechanism_filter_changes_numbers_charts_and_url(
    loaded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mechanism = busiest_mechanism(loaded_url)
    app = run_app(loaded_url, monkeypatch)
    before = metrics(app)["Trials"]
    app.multiselect(key=sidebar.key("mechanisms")).set_value([mechanism]).run()
    assert not app.exception
    after = metrics(app)
    assert after == expected_metrics(loaded_url, TrialFilter(mechanisms=(mechanism,)))
    assert after["Trials"] != before
    assert url_values(app, "mechanisms") == [mechanism]
    pipeline = figure(app, "Mechanism pipeline")
    assert len(pipeline["data"][0]["y"]) >= 1
    assert len(app.dataframe[0].value) == int(after["Trials"].replace(",", ""))


def test_status_shortcut_and_text_search(loaded_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(loaded_url, monkeypatch)
    app.multiselect(key=sidebar.key("statuses")).set_value(["active"]).run()
    assert metrics(app) == expected_metrics(loaded_url, TrialFilter(statuses=("active",)))
    app.text_input(key=sidebar.key("text")).set_value("interferon").run()
    assert metrics(app) == expected_metrics(loaded_url, TrialFilter(statuses=("active",), text="interferon"))
    assert url_values(app, "text") == ["interferon"]
    app.button[0].click().run()  # reset
    assert metrics(app) == expected_metrics(loaded_url, TrialFilter())
    assert dict(app.query_params) == {}


def test_link_parameters_restore_the_view(loaded_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mechanism = busiest_mechanism(loaded_url)
    app = run_app(loaded_url, monkeypatch, mechanisms=[mechanism], has_results="false", relevance=["ms"])
    wanted = TrialFilter(mechanisms=(mechanism,), has_results=False, relevance=("ms",))
    assert metrics(app) == expected_metrics(loaded_url, wanted)
    assert app.multiselect(key=sidebar.key("mechanisms")).value == [mechanism]
    assert app.radio(key=sidebar.key("has_results")).value == sidebar.NO
    assert not app.warning


def test_bad_link_parameter_falls_back_with_a_notice(
    loaded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = run_app(loaded_url, monkeypatch, phases=["PHASE9"], start_year_min="soon", mechanisms="anti_cd20")
    notices = readable(" ".join(warning.value for warning in app.warning))
    assert "phases" in notices and "start_year_min" in notices
    assert metrics(app) == expected_metrics(loaded_url, TrialFilter(mechanisms=("anti_cd20",)))
    assert url_values(app, "mechanisms") == ["anti_cd20"]
    assert "phases" not in app.query_params


def test_relevance_all_in_a_link_shows_every_trial_as_in_the_cli(
    loaded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = TrialFilter(relevance=())
    assert expected_metrics(loaded_url, everything) != expected_metrics(loaded_url, TrialFilter())
    app = run_app(loaded_url, monkeypatch, relevance="all")
    assert not app.warning
    assert metrics(app) == expected_metrics(loaded_url, everything)
    assert app.multiselect(key=sidebar.key("relevance")).value == []
    assert url_values(app, "relevance") == ["all"]


@pytest.mark.parametrize(
    "params",
    [
        {"start_year_min": "abc"},
        {"start_year_max": "1e3"},
        {"mechanisms": "nope"},
        {"start_year_min": "2020", "start_year_max": "2000"},
        {"has_results": "maybe"},
        {"include_removed": "perhaps"},
        {"relevance": ["ms", "bogus"]},
    ],
)
def test_any_bad_link_parameter_gives_the_default_view_and_a_notice(
    loaded_url: str, monkeypatch: pytest.MonkeyPatch, params: dict[str, str | list[str]]
) -> None:
    app = run_app(loaded_url, monkeypatch, **params)
    assert app.warning, "a notice names the ignored parameter"
    shown = metrics(app)["Trials"]
    kept, _warnings = TrialFilter.from_query_params(params)
    assert shown == expected_metrics(loaded_url, kept)["Trials"]


@pytest.mark.parametrize("params", [{"start_year_min": "99999999999999999999"}, {"start_year_max": "-5"}])
def test_an_implausible_start_year_in_a_link_is_ignored_with_a_notice(
    loaded_url: str, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]
) -> None:
    app = run_app(loaded_url, monkeypatch, **params)
    assert "not a start year between 1900 and 2100" in readable(" ".join(w.value for w in app.warning))
    assert metrics(app) == expected_metrics(loaded_url, TrialFilter())
    assert dict(app.query_params) == {}


@pytest.mark.parametrize(
    "params",
    [
        {"start_year_min": "2099"},  # later than every start: no trial, but a valid view
        {"start_year_max": "1950"},  # earlier than every start
    ],
)
def test_a_start_year_beyond_the_data_widens_the_slider(
    loaded_url: str, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]
) -> None:
    app = run_app(loaded_url, monkeypatch, **params)
    wanted, _warnings = TrialFilter.from_query_params(params)
    assert not app.warning
    assert metrics(app) == expected_metrics(loaded_url, wanted)
    low, high = app.slider(key=sidebar.key("start_years")).value
    assert low <= int(params.get("start_year_min", low)) and high >= int(params.get("start_year_max", high))
    for name, value in params.items():
        assert url_values(app, name) == [value]


def test_removed_trials_show_only_when_asked_for_by_checkbox_or_link(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(sqlite_url)
    upgrade_to_head(engine)
    import_studies(engine, SAMPLE)
    everything = query.load_trial_frame(engine)
    shown = apply_filter(everything, TrialFilter())
    run_id = store.begin_run(engine, mode="full", query=None, source="test", data_timestamp=None)
    seen = set(everything["registration_id"]) - {shown["registration_id"].iloc[0]}
    gone = store.flag_removed(engine, run_id, seen_ids=seen)
    store.finish_run(engine, run_id, outcome="success")
    engine.dispose()
    assert gone == [shown["registration_id"].iloc[0]]
    default_count = f"{len(shown) - 1:,}"
    with_removed = f"{len(shown):,}"

    app = run_app(sqlite_url, monkeypatch)
    assert metrics(app)["Trials"] == default_count
    app.checkbox(key=sidebar.key("include_removed")).check().run()
    assert metrics(app)["Trials"] == with_removed
    assert url_values(app, "include_removed") == ["true"]

    linked = run_app(sqlite_url, monkeypatch, include_removed="true")
    assert metrics(linked)["Trials"] == with_removed
    assert linked.checkbox(key=sidebar.key("include_removed")).value is True
    assert url_values(linked, "include_removed") == ["true"]


def test_start_year_slider_narrows_and_full_range_means_any(
    loaded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = run_app(loaded_url, monkeypatch)
    slider = app.slider(key=sidebar.key("start_years"))
    low, high = slider.value
    slider.set_value((2015, high)).run()
    assert metrics(app) == expected_metrics(loaded_url, TrialFilter(start_year_min=2015))
    assert url_values(app, "start_year_min") == ["2015"]
    app.slider(key=sidebar.key("start_years")).set_value((low, high)).run()
    assert "start_year_min" not in app.query_params


def test_widget_state_round_trips_every_filter_field(loaded_url: str) -> None:
    engine = make_engine(loaded_url)
    choices = choices_from_frame(query.load_trial_frame(engine))
    engine.dispose()
    full = TrialFilter(
        text="beta",
        relevance=("ms",),
        mechanisms=("anti_cd20", "btk_inhibitor"),
        phenotypes=("rms",),
        phases=("PHASE3",),
        statuses=("active", "COMPLETED"),
        study_types=("INTERVENTIONAL",),
        sponsor_classes=("industry",),
        lead_sponsors=("Biogen",),
        countries=("Korea, Republic of",),
        start_year_min=choices.first_year + 1,
        start_year_max=choices.last_year - 1,
        has_results=True,
        multi_disease=False,
        outcome_changed_after_start=True,
        include_removed=True,
    )
    assert sidebar.filter_from_state(sidebar.widget_state(full, choices), choices) == full
    assert sidebar.filter_from_state(sidebar.widget_state(TrialFilter(), choices), choices) == TrialFilter()


def test_heatmap_cell_sets_mechanism_and_phenotype() -> None:
    state: dict[str, Any] = {sidebar.key("mechanisms"): ["glatiramer", "fumarate"]}
    sidebar.set_cell_filter(state, "anti_cd20", "ppms")
    assert state == {sidebar.key("mechanisms"): ["anti_cd20"], sidebar.key("phenotypes"): ["ppms"]}


def test_params_mapping_keeps_repeated_list_values_and_last_scalar() -> None:
    stored = {"countries": ["France", "Korea, Republic of"], "text": ["a", "b"], "phases": ["PHASE2"]}
    mapping = sidebar.params_mapping(list(stored), lambda name: stored.get(name, []))
    assert mapping == {"countries": ["France", "Korea, Republic of"], "text": "b", "phases": ["PHASE2"]}


def _detail_script(url: str, registration_id: str) -> None:
    from dashboard import data
    from dashboard.trial_view import show_trial

    show_trial(data.trial_detail(url, ("test",), registration_id), registration_id)


def test_trial_detail_shows_classification_history_and_sites(loaded_url: str) -> None:
    engine = make_engine(loaded_url)
    events = query.change_events_frame(engine, include_baseline=False)
    engine.dispose()
    registration_id = str(events["registration_id"].iloc[0])
    app = AppTest.from_function(_detail_script, args=(loaded_url, registration_id), default_timeout=30)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.subheader[0].value.startswith(registration_id)
    headings = [block.value for block in app.markdown]
    assert "#### Classification" in headings and "#### Change history" in headings
    history = [frame.value for frame in app.dataframe if "Kind" in frame.value.columns]
    assert history and "Status" in set(history[0]["Kind"])


def test_trial_detail_of_unknown_id_says_so(loaded_url: str) -> None:
    app = AppTest.from_function(_detail_script, args=(loaded_url, "NCT00000000"), default_timeout=30)
    app.run()
    assert "not in the database" in app.info[0].value


def test_each_backend_and_a_landed_sync_invalidates_the_cache(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_studies(engine, SAMPLE)
    url = engine.url.render_as_string(hide_password=False)
    app = run_app(url, monkeypatch)
    assert metrics(app) == expected_metrics(url, TrialFilter())
    assert metrics(app)["Status changes, last 7 days"] == "0"  # the first load is a baseline, not news

    land_changes(engine)
    app.run()
    assert metrics(app)["Status changes, last 7 days"] == str(CHANGED_STUDIES)
    app.multiselect(key=sidebar.key("phases")).set_value(["PHASE3"]).run()
    assert metrics(app) == expected_metrics(url, TrialFilter(phases=("PHASE3",)))
