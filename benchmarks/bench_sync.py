"""Benchmark: a full `tracker sync` of 3,616 real MS studies vs a naive fetch-and-dump baseline.

Both sides fetch the same pages (pageSize 1000, the same query) from the fake ClinicalTrials.gov server on
loopback, which serves pre-serialized studies, so the server costs both sides the same. Measured in the same
run, each repeated (median reported):

  tracker   `run_sync` into a fresh SQLite file: parse, upsert studies and child tables, versions, change
            events, one transaction per page (requests_per_second=0); with and without classification;
  baseline  httpx → json.loads → one flat table (id, title, status, raw JSON) via sqlite3.executemany;
  fetch     the page walk alone (how much of both is the network and the server).

Then an incremental sync with nothing new, counting its /studies requests (target: at most 2).

    .venv/bin/python benchmarks/bench_sync.py [--repeat 3] [--data PATH.jsonl.gz] [--no-classify]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_ctgov import FakeCtgov  # noqa: E402
from naive_dump import baseline, walk_pages  # noqa: E402
from timing import serving_process  # noqa: E402

from tracker.config import load_settings  # noqa: E402
from tracker.db.migrate import upgrade_to_head  # noqa: E402
from tracker.db.session import make_engine  # noqa: E402
from tracker.sources import iter_raw_studies  # noqa: E402
from tracker.sync import classify_landed, run_sync, search_params  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared/data/ctgov_ms_2025-09-25.jsonl.gz"
# The fake's condition search ANDs words over conditions, keywords and titles; the registry also matches
# MeSH terms, which the rebuilt file lacks. "sclerosis" returns all 3,616 studies of the pull.
QUERY = "sclerosis"


FLAT_COLUMNS = (
    "registration_id", "brief_title", "official_title", "acronym", "overall_status", "last_known_status",
    "why_stopped", "phases", "study_type", "enrollment_count", "enrollment_type", "start_date",
    "start_date_type", "primary_completion_date", "primary_completion_date_type", "completion_date",
    "completion_date_type", "first_posted", "last_update_posted", "results_first_posted", "has_results",
    "lead_sponsor", "lead_sponsor_class", "conditions", "keywords", "interventions", "collaborators",
    "countries", "raw",
)  # fmt: skip


def flat_row(study: dict[str, Any]) -> tuple[Any, ...]:
    """The naive flattening: the fields people filter on, multi-values joined with "|", plus the raw JSON."""
    protocol = study.get("protocolSection", {})
    ident = protocol.get("identificationModule", {})
    status = protocol.get("statusModule", {})
    design = protocol.get("designModule", {})
    sponsors = protocol.get("sponsorCollaboratorsModule", {})
    conditions = protocol.get("conditionsModule", {})
    arms = protocol.get("armsInterventionsModule", {})
    sites = protocol.get("contactsLocationsModule", {}).get("locations", [])
    enrollment = design.get("enrollmentInfo", {})

    def date_of(name: str) -> tuple[Any, Any]:
        struct = status.get(name, {})
        return struct.get("date"), struct.get("type")

    return (
        ident.get("nctId"), ident.get("briefTitle"), ident.get("officialTitle"), ident.get("acronym"),
        status.get("overallStatus"), status.get("lastKnownStatus"), status.get("whyStopped"),
        "|".join(design.get("phases", [])), design.get("studyType"), enrollment.get("count"),
        enrollment.get("type"), *date_of("startDateStruct"), *date_of("primaryCompletionDateStruct"),
        *date_of("completionDateStruct"), date_of("studyFirstPostDateStruct")[0],
        date_of("lastUpdatePostDateStruct")[0], date_of("resultsFirstPostDateStruct")[0],
        study.get("hasResults", False), sponsors.get("leadSponsor", {}).get("name"),
        sponsors.get("leadSponsor", {}).get("class"), "|".join(conditions.get("conditions", [])),
        "|".join(conditions.get("keywords", [])),
        "|".join(item.get("name", "") for item in arms.get("interventions", [])),
        "|".join(item.get("name", "") for item in sponsors.get("collaborators", [])),
        "|".join(sorted({site.get("country", "") for site in sites})), json.dumps(study),
    )  # fmt: skip


def flat_baseline(base_url: str, params: dict[str, Any], folder: Path) -> int:
    connection = sqlite3.connect(folder / "flat.db")
    columns = ", ".join(FLAT_COLUMNS)
    connection.execute(f"CREATE TABLE studies ({columns}, PRIMARY KEY (registration_id))")
    insert = f"INSERT OR REPLACE INTO studies VALUES ({', '.join('?' * len(FLAT_COLUMNS))})"
    stored = 0
    with httpx.Client(timeout=60) as http:
        for page in walk_pages(http, base_url, params):
            rows = [flat_row(study) for study in page["studies"]]
            connection.executemany(insert, rows)
            connection.commit()
            stored += len(rows)
    connection.close()
    return stored


def fetch_only(base_url: str, params: dict[str, Any]) -> int:
    with httpx.Client(timeout=60) as http:
        return sum(len(page["studies"]) for page in walk_pages(http, base_url, params))


def fresh_engine(folder: Path) -> Any:
    engine = make_engine(f"sqlite:///{folder / 'trials.db'}")
    upgrade_to_head(engine)  # schema creation is not part of the sync being measured
    return engine


def timed(action: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall-clock and CPU seconds (this process: both sides share the server thread) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = action()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def record(times: dict[str, list[tuple[float, float]]], name: str, wall: float, cpu: float) -> None:
    times.setdefault(name, []).append((wall, cpu))


def medians(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def serve(data: Path) -> None:
    """`--serve`: run the fake registry in this (child) process until stdin closes."""
    with FakeCtgov(iter_raw_studies(data)) as fake:
        print(fake.url, flush=True)
        sys.stdin.read()


def registry_process(data: Path) -> AbstractContextManager[str]:
    """The fake registry of this benchmark in its own process."""
    return serving_process(__file__, data, timeout=30)


SIDES: dict[str, str] = {
    "tracker": "tracker sync (no classification)",
    "flat": "baseline: one flat table",
    "dump": "baseline: registration_id + raw JSON only",
    "fetch": "fetch only (httpx + json.loads)",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-classify", action="store_true", help="skip the classification timing")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.data)
        return

    times: dict[str, list[tuple[float, float]]] = {}
    with registry_process(args.data) as url, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            database_url="sqlite:///unused.db", ctgov_base_url=url, query=QUERY, requests_per_second=0
        )
        params = search_params(settings, None)
        expected = fetch_only(url, params)  # warm-up, and the number every side must land
        print(f"{expected} studies match {QUERY!r} on the fake registry (own process)")

        engines: dict[Path, Any] = {}

        def tracker_side(folder: Path) -> int:
            engine = engines[folder] = fresh_engine(folder)
            result = run_sync(engine, settings, classify=False, progress=None)
            assert result.outcome == "success", result.summary()
            engine.dispose()  # closing checkpoints the WAL: part of the cost, as the baseline's close is
            return result.inserted

        actions: dict[str, Callable[[Path], int]] = {
            "tracker": tracker_side,
            "flat": lambda folder: flat_baseline(url, params, folder),
            "dump": lambda folder: baseline(url, params, folder / "baseline.db"),
            "fetch": lambda folder: fetch_only(url, params),
        }
        for repeat in range(args.repeat):
            folder = Path(tmp) / f"run{repeat}"
            folder.mkdir()
            # Rotate the order so no side always runs on a warmer (or busier) machine.
            names = list(actions)
            names = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in names:
                wall, cpu, stored = timed(lambda name=name, folder=folder: actions[name](folder))
                assert stored == expected, (name, stored, expected)
                record(times, name, wall, cpu)
            if not args.no_classify:  # what `tracker sync` does after the walk, timed on its own
                record(times, "classify", *timed(lambda folder=folder: classify_landed(engines[folder]))[:2])
            print(f"  run {repeat + 1}: " + ", ".join(f"{n} {times[n][-1][0]:.2f}s" for n in actions))

    median = {name: medians(samples) for name, samples in times.items()}
    print(f"\nmedian of {args.repeat} runs: wall-clock seconds (CPU seconds of this process)")
    for name, label in SIDES.items():
        wall, cpu = median[name]
        print(f"  {label:<36} {wall:.3f}s ({cpu:.3f})")
    tracker_wall = median["tracker"][0]
    for name in ("flat", "dump"):
        print(f"  ratio tracker / {SIDES[name]:<30} {tracker_wall / median[name][0]:.2f}x  (target <= 1.5x)")
    if "classify" in median:
        print(f"  classification of what landed        {median['classify'][0]:.3f}s (own target: < 2 s)")

    # An incremental sync with nothing new (the fake in-process, for its request log).
    with FakeCtgov(iter_raw_studies(args.data)) as fake, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            database_url="sqlite:///unused.db", ctgov_base_url=fake.url, query=QUERY, requests_per_second=0
        )
        engine = fresh_engine(Path(tmp))
        run_sync(engine, settings, classify=False, progress=None)
        fake.clear_log()
        result = run_sync(engine, settings, classify=False, progress=None)
        requests = len(fake.requests_to("/studies"))
        print(f"incremental sync with nothing new: {requests} /studies request(s) (target <= 2)")
        print(f"  {result.summary()}")


if __name__ == "__main__":
    main()
