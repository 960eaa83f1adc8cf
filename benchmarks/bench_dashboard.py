"""Dashboard benchmark: server time of a script rerun after a filter change.

Builds (or reuses) two SQLite databases through the normal import path (store + classification):
the 3,616-study snapshot, and 100,000 synthetic studies (copies of the snapshot with new NCT IDs).
Then runs the dashboard with Streamlit's AppTest, changes filters, and prints the time of each rerun.

Budget: ≤ 0.3 s per filter change with the snapshot, ≤ 1 s with 100,000 studies. Times are the script's
own run time as the app records it (server time, no browser). The baseline printed alongside is a rerun
with no filter change (the full default view), measured in the same run.

    .venv/bin/python benchmarks/bench_dashboard.py            # both sizes
    .venv/bin/python benchmarks/bench_dashboard.py --size 3616
    .venv/bin/python benchmarks/bench_dashboard.py --rebuild  # rebuild the databases kept in $TMPDIR
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO.parent / "shared" / "data" / "ctgov_ms_2025-09-25.jsonl.gz"
CACHE = Path(tempfile.gettempdir()) / "ms-trial-tracker-bench"
APP = REPO / "dashboard" / "app.py"
RUN_SECONDS = "_run_seconds"  # dashboard.app.RUN_SECONDS; not imported, importing the app would run it
BUDGET_SECONDS = {3616: 0.3, 100_000: 1.0}
CHUNK = 1000


def snapshot_studies(data: Path = SNAPSHOT) -> list[dict[str, Any]]:
    from tracker.sources import iter_raw_studies

    return list(iter_raw_studies(data))


def synthetic_studies(originals: list[dict[str, Any]], count: int) -> Iterator[dict[str, Any]]:
    """`count` copies of the snapshot studies, cycling through them, each under a new NCT ID."""
    for index in range(count):
        study = json.loads(json.dumps(originals[index % len(originals)]))
        study["protocolSection"]["identificationModule"]["nctId"] = f"NCT{90_000_000 + index:08d}"
        yield study


def build_database(path: Path, studies: Iterator[dict[str, Any]]) -> None:
    from tracker import store
    from tracker.classify.store import classify_pending
    from tracker.db.migrate import upgrade_to_head
    from tracker.db.session import make_engine

    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    run_id = store.begin_run(engine, mode="import", query=None, source="benchmark", data_timestamp=None)
    chunk: list[dict[str, Any]] = []
    for study in studies:
        chunk.append(study)
        if len(chunk) == CHUNK:
            store.ingest_page(engine, run_id, chunk)
            chunk = []
    if chunk:
        store.ingest_page(engine, run_id, chunk)
    store.finish_run(engine, run_id, outcome="success")
    classify_pending(engine)
    engine.dispose()


def database_for(size: int, rebuild: bool, data: Path = SNAPSHOT) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"dashboard_{size}.db"
    if path.exists() and not rebuild:
        return path
    started = time.perf_counter()
    originals = snapshot_studies(data)
    studies = iter(originals) if size == len(originals) else synthetic_studies(originals, size)
    build_database(path, studies)
    print(f"built {path.name} ({size:,} studies) in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def server_seconds(app: Any) -> float:
    """Rerun and return the script's own run time (AppTest's polling adds latency around it)."""
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return float(app.session_state[RUN_SECONDS])


def bench(size: int, rebuild: bool, repeats: int, data: Path = SNAPSHOT) -> dict[str, Any]:
    from streamlit.testing.v1 import AppTest

    path = database_for(size, rebuild, data)
    os.environ["TRACKER_DATABASE_URL"] = f"sqlite:///{path}"
    app = AppTest.from_file(str(APP), default_timeout=600)
    cold = timed(app.run)
    assert not app.exception, [e.value for e in app.exception]
    trials_all = app.metric[0].value

    changes: list[tuple[str, Callable[[], None]]] = [
        ("mechanism anti_cd20", lambda: app.multiselect(key="filter_mechanisms").set_value(["anti_cd20"])),
        ("+ status active", lambda: app.multiselect(key="filter_statuses").set_value(["active"])),
        ("clear mechanism", lambda: app.multiselect(key="filter_mechanisms").set_value([])),
        ("+ phase 3", lambda: app.multiselect(key="filter_phases").set_value(["PHASE3"])),
        ("text 'ocrelizumab'", lambda: app.text_input(key="filter_text").set_value("ocrelizumab")),
        ("clear all", lambda: app.button[0].click()),
    ]
    filter_times: list[float] = []
    for _ in range(repeats):
        for _name, change in changes:
            change()
            filter_times.append(server_seconds(app))
    baseline = [server_seconds(app) for _ in range(max(3, repeats))]
    return {
        "size": size,
        "trials_shown": trials_all,
        "cold_seconds": cold,
        "filter_median": statistics.median(filter_times),
        "filter_max": max(filter_times),
        "baseline_median": statistics.median(baseline),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, action="append", choices=sorted(BUDGET_SECONDS))
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached databases")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the filter changes")
    parser.add_argument("--data", type=Path, default=SNAPSHOT, help="the snapshot to build from")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if not args.data.is_file():
        raise SystemExit(f"snapshot not found: put ctgov_ms_2025-09-25.jsonl.gz at {SNAPSHOT} or --data PATH")
    for size in args.size or sorted(BUDGET_SECONDS):
        result = bench(size, args.rebuild, args.repeats, args.data)
        budget = BUDGET_SECONDS[size]
        median, unchanged = result["filter_median"], result["baseline_median"]
        print(
            f"{size:>7,} studies ({result['trials_shown']} shown by default): "
            f"cold load {result['cold_seconds']:.2f} s; "
            f"filter change median {median:.3f} s, max {result['filter_max']:.3f} s "
            f"(budget {budget:.1f} s, median/budget {median / budget:.2f}); "
            f"rerun without change {unchanged:.3f} s (filter/no-change ratio {median / unchanged:.2f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
