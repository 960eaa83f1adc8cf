"""End to end: `tracker dashboard` on a free port, driven by headless chromium through Playwright."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
# An upper bound, not a timing: on a busy shared machine the first render took 155–170 s (same before the
# launcher), on an idle one a few seconds.
PAGE_TIMEOUT_MS = 240_000


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


def require_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("TRACKER_REQUIRE_BROWSER"):  # CI installs chromium: its absence is a failure there
            pytest.fail(f"{CHROMIUM} not installed")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")


@contextlib.contextmanager
def serve(database_url: str, folder: Path) -> Iterator[str]:
    """`tracker dashboard` on a free port; yields its base URL."""
    port = free_port()
    log = (folder / "dashboard.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--database-url", database_url, "dashboard", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
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


@pytest.fixture
def dashboard_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    require_chromium()
    with serve(database_url, tmp_path) as base_url:
        yield base_url


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

            buttons = page.get_by_test_id("stDownloadButton")
            with page.expect_download() as download_info:
                buttons.filter(has_text="CSV").get_by_role("button").click()
            downloaded = tmp_path / "dashboard.csv"
            download_info.value.save_as(downloaded)
            with page.expect_download() as provenance_info:
                buttons.filter(has_text="provenance").get_by_role("button").click()
            provenance = json.loads(Path(provenance_info.value.path()).read_text("utf-8"))
            assert provenance["row_count"] == selected
            assert provenance["filters"] == {"mechanisms": [mechanism]}

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


# Markdown that would fetch from, or link to, another host if the page rendered it.
HOSTILE = "![i](https://attacker.example/{0}.png) [l](https://attacker.example/{0}) **bolded {0}** :red[{0}]"


def hostile_sample(folder: Path) -> tuple[Path, str]:
    """The sample with one terminated MS trial whose title, sponsor, condition and reason for stopping are
    hostile Markdown; returns the file and that trial's NCT ID."""
    studies = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line.strip()]
    for study in studies:
        protocol = study["protocolSection"]
        status = protocol["statusModule"]
        if status.get("overallStatus") == "COMPLETED" and status.get("startDateStruct"):
            break
    identification = protocol["identificationModule"]
    identification["briefTitle"] = "Multiple Sclerosis trial " + HOSTILE.format("title")
    protocol["sponsorCollaboratorsModule"]["leadSponsor"]["name"] = HOSTILE.format("sponsor")
    protocol["conditionsModule"]["conditions"] = ["Multiple Sclerosis", HOSTILE.format("condition")]
    status["overallStatus"] = "TERMINATED"
    status["whyStopped"] = HOSTILE.format("why")
    path = folder / "hostile.jsonl"
    path.write_text("".join(json.dumps(study) + "\n" for study in studies), "utf-8")
    return path, str(identification["nctId"])


def test_hostile_registry_text_and_link_parameters_render_as_text_and_nothing_leaves_the_host(
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    require_chromium()
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    sample, registration_id = hostile_sample(tmp_path)
    database_url = f"sqlite:///{tmp_path / 'hostile.db'}"
    engine = make_engine(database_url)
    upgrade_to_head(engine)
    import_studies(engine, sample)
    engine.dispose()

    with serve(database_url, tmp_path) as base_url, sync_playwright() as playwright:
        policy = httpx.get(base_url, timeout=10).headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy and "object-src 'none'" in policy

        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))

            # The world map draws from outlines the dashboard serves itself.
            with page.expect_request("**/geo/world_110m.json", timeout=PAGE_TIMEOUT_MS) as outlines:
                page.goto(base_url)
                expect(page.get_by_test_id("stMetric").first).to_be_visible()
                world_map = page.get_by_test_id("stPlotlyChart").filter(has_text="Trial sites")
                world_map.scroll_into_view_if_needed()
            assert outlines.value.url.startswith(base_url)

            hostile_link = HOSTILE.format("link")
            page.goto(f"{base_url}/?text={quote(hostile_link)}&phases={quote(HOSTILE.format('phase'))}")
            expect(page.get_by_test_id("stAlert").first).to_be_visible()
            expect(page.get_by_test_id("stCaptionContainer").first).to_contain_text(
                shown("![i](https://attacker")
            )
            assert_rendered_as_text(page)

            page.goto(f"{base_url}/trial?nct={registration_id}")
            expect(
                page.get_by_test_id("stHeading").filter(has_text=shown(HOSTILE.format("title")))
            ).to_have_count(1)
            body = page.locator("body")
            for field in ("sponsor", "condition", "why"):
                expect(body).to_contain_text(shown(HOSTILE.format(field)))
            assert_rendered_as_text(page)

            page.goto(f"{base_url}/trial?nct={quote(HOSTILE.format('nct'))}")
            expect(page.get_by_test_id("stAlert").first).to_contain_text("is not in the database")
            expect(page.get_by_test_id("stAlert").first).to_contain_text("ATTACKER.EXAMPLE")
            assert_rendered_as_text(page)
        finally:
            browser.close()

    outside = [
        url
        for url in requested
        if not url.startswith((base_url, base_url.replace("http", "ws", 1), "data:", "blob:"))
    ]
    assert not outside, outside


def shown(text: str) -> re.Pattern[str]:
    """`text` as the page shows it: the same characters, with the invisible word joiners that keep URLs from
    being autolinked allowed between them."""
    return re.compile("\u2060?".join(map(re.escape, text)))


def assert_rendered_as_text(page: Any) -> None:
    """No element came from the injected Markdown: no image, link or bold text, no coloured span."""
    page.wait_for_timeout(500)  # let Streamlit finish the run's last elements
    for selector in ("img[src*='attacker' i]", "a[href*='attacker' i]", "strong:has-text('bolded')"):
        assert page.locator(selector).count() == 0, selector


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
