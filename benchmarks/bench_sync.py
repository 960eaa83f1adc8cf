"""Benchmark: a full `tracker sync` of 3,616 real MS studies vs a naive fetch-and-dump baseline.

Both sides fetch the same pages (pageSize 1000, the same query) from the fake ClinicalTrials.gov server on
loopback, which serves pre-serialized studies, so the server costs both sides the same. Measured in the same
run, each repeated (median reported):

  tracker   `run_sync` into a fresh SQLite file: parse, upsert studies and child tables, versions, change
            events, one transaction per page (requests_per_second=0); with and without classification;
  baseline  httpx → json.loads → one flat table (nct_id, title, status, raw JSON) via sqlite3.executemany;
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
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_ctgov import FakeCtgov, load_jsonl  # noqa: E402

from tracker.config import load_settings  # noqa: E402
from tracker.db.migrate import upgrade_to_head  # noqa: E402
from tracker.db.session import make_engine  # noqa: E402
from tracker.sync import classify_landed, run_sync, search_params  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared/data/ctgov_ms_2025-09-25.jsonl.gz"
# The fake's condition search ANDs words over conditions, keywords and titles; the registry also matches
# MeSH terms, which the rebuilt file lacks. "sclerosis" returns all 3,616 studies of the pull.
QUERY = "sclerosis"


def walk_pages(http: httpx.Client, base_url: str, params: dict[str, Any]) -> Any:
    """The naive walk: raw pages, json.loads, follow nextPageToken."""
    later = {key: value for key, value in params.items() if key != "countTotal"}
    token = None
    while True:
        page_params = params if token is None else {**later, "pageToken": token}
        response = http.get(f"{base_url}/studies", params=page_params)
        response.raise_for_status()
        page = json.loads(response.content)
        yield page
        token = page.get("nextPageToken")
        if not token:
            return


def baseline(base_url: str, params: dict[str, Any], folder: Path) -> int:
    connection = sqlite3.connect(folder / "baseline.db")
    connection.execute("CREATE TABLE studies (nct_id TEXT PRIMARY KEY, title TEXT, status TEXT, raw TEXT)")
    stored = 0
    with httpx.Client(timeout=60) as http:
        for page in walk_pages(http, base_url, params):
            rows = []
            for study in page["studies"]:
                protocol = study.get("protocolSection", {})
                ident = protocol.get("identificationModule", {})
                rows.append(
                    (
                        ident.get("nctId"),
                        ident.get("briefTitle"),
                        protocol.get("statusModule", {}).get("overallStatus"),
                        json.dumps(study),
                    )
                )
            connection.executemany("INSERT OR REPLACE INTO studies VALUES (?, ?, ?, ?)", rows)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-classify", action="store_true", help="skip the classification timing")
    args = parser.parse_args()

    studies = load_jsonl(str(args.data))
    times: dict[str, list[tuple[float, float]]] = {}
    with FakeCtgov(studies) as fake, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            database_url="sqlite:///unused.db", ctgov_base_url=fake.url, query=QUERY, requests_per_second=0
        )
        params = search_params(settings, None)
        expected = fetch_only(fake.url, params)  # warm-up, and the number both sides must land
        print(f"{len(studies)} studies served, {expected} match {QUERY!r}; pageSize {settings.page_size}")

        engine = None
        for repeat in range(args.repeat):
            folder = Path(tmp) / f"run{repeat}"
            folder.mkdir()
            # Alternate the order so neither side always runs on a warmer machine.
            order = ["tracker", "baseline"] if repeat % 2 == 0 else ["baseline", "tracker"]
            for side in order:
                if side == "baseline":
                    wall, cpu, stored = timed(lambda folder=folder: baseline(fake.url, params, folder))
                    assert stored == expected, (stored, expected)
                    record(times, "baseline", wall, cpu)
                else:
                    engine = fresh_engine(folder)
                    wall, cpu, result = timed(
                        lambda engine=engine: run_sync(engine, settings, classify=False, progress=None)
                    )
                    assert (result.outcome, result.inserted) == ("success", expected), result.summary()
                    record(times, "tracker", wall, cpu)
                    if not args.no_classify:
                        record(times, "classify", *timed(lambda engine=engine: classify_landed(engine))[:2])
            record(times, "fetch", *timed(lambda: fetch_only(fake.url, params))[:2])
            line = f"  run {repeat + 1}: tracker {times['tracker'][-1][0]:.2f}s"
            line += f", baseline {times['baseline'][-1][0]:.2f}s"
            if "classify" in times:
                line += f", classification {times['classify'][-1][0]:.2f}s"
            print(line)

        median = {name: medians(samples) for name, samples in times.items()}
        base_wall, base_cpu = median["baseline"]
        print(f"\nmedian of {args.repeat} (wall-clock; CPU seconds of this process in brackets)")
        print(f"fetch only (server + httpx + json):  {median['fetch'][0]:.2f}s ({median['fetch'][1]:.2f})")
        print(f"baseline (flat table):               {base_wall:.2f}s ({base_cpu:.2f})")
        tracker_wall, tracker_cpu = median["tracker"]
        print(
            f"tracker sync (no classification):    {tracker_wall:.2f}s ({tracker_cpu:.2f})  "
            f"ratio {tracker_wall / base_wall:.2f}x ({tracker_cpu / base_cpu:.2f}x CPU); target <= 1.5x"
        )
        if "classify" in median:
            wall = tracker_wall + median["classify"][0]
            cpu = tracker_cpu + median["classify"][1]
            print(
                f"tracker sync + classification:       {wall:.2f}s ({cpu:.2f})  "
                f"ratio {wall / base_wall:.2f}x ({cpu / base_cpu:.2f}x CPU)"
            )

        # An incremental sync with nothing new: the registry's data date is unchanged.
        assert engine is not None
        fake.clear_log()
        result = run_sync(engine, settings, classify=False, progress=None)
        requests = len(fake.requests_to("/studies"))
        print(
            f"incremental sync with nothing new: {requests} /studies request(s) (target <= 2); "
            f"{result.summary()}"
        )


if __name__ == "__main__":
    main()
