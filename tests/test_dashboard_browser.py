"""End to end: `tracker dashboard` on a free port, driven by headless chromium through Playwright."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import free_port

from tracker import query
from tracker.db.migrate import upgrade_to_head
from tracker.db.session import make_engine
from tracker.filters import TrialFilter, apply_filter
from tracker.sources import import_studies

pytestmark = pytest.mark.browser

SAMPLE = Path(__file__).parent / "fixtures" / "ms_sample.jsonl"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
STARTUP_SECONDS = 60
PAGE_TIMEOUT_MS = 60_000


def wait_until_healthy(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"tracker dashboard exited early with code {server.returncode}")
        try:
            if httpx.get(f"{base_url}/_stcore/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"tracker dashboard did not answer on {base_url} within {STARTUP_SECONDS} s")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    import_studies(engine, SAMPLE)
    engine.dispose()
    return url


@pytest.fixture
def dashboard_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    if not CHROMIUM.exists():
        if os.environ.get("TRACKER_REQUIRE_BROWSER"):  # CI installs chromium: its absence is a failure there
            pytest.fail(f"{CHROMIUM} not installed")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--database-url", database_url, "dashboard", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, server)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def mechanism_with_most_trials(url: str) -> tuple[str, int, int]:
    """(mechanism key, trials in the default view, trials with that mechanism)."""
    engine = make_engine(url)
    try:
        frame = apply_filter(query.load_trial_frame(engine), TrialFilter())
    finally:
        engine.dispose()
    mechanism = str(frame["mechanisms"].explode().value_counts().index[0])
    return mechanism, len(frame), len(apply_filter(frame, TrialFilter(mechanisms=(mechanism,))))


def test_choose_a_mechanism_then_download_the_filtered_csv(
    dashboard_url: str, database_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from dashboard import labels

    mechanism, total, selected = mechanism_with_most_trials(database_url)
    assert selected != total  # otherwise the filter could not show in the numbers

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(dashboard_url)
            trials = page.get_by_test_id("stMetric").filter(has_text="Trials").get_by_test_id("stMetricValue")
            expect(trials.first).to_have_text(f"{total:,}", timeout=PAGE_TIMEOUT_MS)

            picker = page.get_by_test_id("stMultiSelect").filter(has_text="Mechanism")
            picker.locator("input").click()
            page.keyboard.type(labels.mechanism_label(mechanism))
            page.keyboard.press("Enter")
            page.keyboard.press("Escape")

            expect(trials.first).to_have_text(f"{selected:,}", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_url(f"**mechanisms={mechanism}**")
            assert f"mechanisms={mechanism}" in page.url

            with page.expect_download() as download_info:
                page.get_by_test_id("stDownloadButton").filter(has_text="Download CSV").get_by_role(
                    "button"
                ).click()
            downloaded = tmp_path / "dashboard.csv"
            download_info.value.save_as(downloaded)

            page.wait_for_timeout(1500)  # let the charts finish drawing
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            # Clicking a heat-map cell sets both the mechanism and the phenotype filter.
            heatmap = page.get_by_test_id("stPlotlyChart").filter(has_text="Mechanism × phenotype")
            heatmap.scroll_into_view_if_needed()
            cell = heatmap.locator(".scatterlayer path.point").first
            cell.wait_for(state="attached")
            box = cell.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_url("**phenotypes=**")
            assert "mechanisms=" in page.url
        finally:
            browser.close()

    exported = tmp_path / "export.csv"
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracker",
            "--database-url",
            database_url,
            "export",
            "--out",
            str(exported),
            "--mechanism",
            mechanism,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert downloaded.read_bytes() == exported.read_bytes()
    rows = list(csv.reader(io.StringIO(downloaded.read_text("utf-8"))))
    assert len(rows) == selected + 1  # header + exactly the filtered trials
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


DETAILED = Path(__file__).parent / "fixtures/ctgov/studies/NCT00763412.json"


def test_trial_detail_shows_arms_outcomes_eligibility_design_and_ids(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import expect, sync_playwright

    studies = tmp_path / "detailed.jsonl"
    studies.write_text(json.dumps(json.loads(DETAILED.read_text())) + "\n")
    engine = make_engine(database_url)
    import_studies(engine, studies)
    engine.dispose()
    dashboard_url = request.getfixturevalue("dashboard_url")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{dashboard_url}/trial?nct=NCT00763412")
            expect(page.get_by_text("Outcome measures", exact=True)).to_be_visible(timeout=PAGE_TIMEOUT_MS)
            tables = page.get_by_test_id("stTable")
            interventions = tables.filter(has_text="Other names")
            expect(interventions.locator("tbody tr")).to_have_count(2)
            expect(interventions.locator("tbody tr").nth(1)).to_contain_text("repaglinide")
            expect(interventions.locator("tbody tr").nth(1)).to_contain_text("Experimental")
            expect(interventions.locator("tbody tr").nth(1)).to_contain_text("Prandin")
            arms = tables.filter(has_text="Interventions").filter(has_not_text="Other names")
            expect(arms.locator("tbody tr").first).to_contain_text("Placebo comparator")
            outcomes = tables.filter(has_text="Time frame")
            expect(outcomes.locator("tbody tr")).to_have_count(9)
            expect(outcomes.locator("tbody tr").first).to_contain_text("BMI")
            expect(outcomes.locator("tbody tr").first).to_contain_text("2 year/end of study")
            eligibility = tables.filter(has_text="Healthy volunteers")
            expect(eligibility).to_contain_text("24 Years")
            expect(eligibility).to_contain_text("Child, Adult")
            expect(tables.filter(has_text="Allocation")).to_contain_text("Quadruple")
            expect(tables.filter(has_text="Domain")).to_contain_text("P60DK020579")
            page.screenshot(path=str(tmp_path / "trial.png"), full_page=True)
            cells = [text.strip() for text in page.locator("[data-testid=stTable] td").all_inner_texts()]
            assert cells and "None" not in cells and "nan" not in cells
        finally:
            browser.close()
