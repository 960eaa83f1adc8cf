"""Dashboard cold starts as whole processes: Streamlit's AppTest imports the app and runs it once (frames,
index and charts from an empty in-process cache) against the database given, then exits.

Two cold starts matter, and `--both` measures each as a whole process (median wall and CPU seconds, peak
RSS of `--repeat` rounds), after checking that each did what it says:

  first view after the data changed   no current stored trial frame: the app builds it and stores it
  cold start from the stored snapshot the app loads the trial frame that process stored

    .venv/bin/python benchmarks/dashboard_cold.py --both [--repeat 3] sqlite:///PATH.db
    .venv/bin/python benchmarks/dashboard_cold.py [--changed] sqlite:///PATH.db    (one run, one process)

`--changed` drops the stored trial frame first, as a sync that landed would have made it stale. Either way
the database is written (the snapshot row): point it at a copy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
SCRIPT = "benchmarks/dashboard_cold.py"
KINDS = {
    "changed": "first view after the data changed (frame built, snapshot written)",
    "stored": "cold start from the stored snapshot",
}


def drop_snapshot(url: str) -> None:
    from sqlalchemy import delete

    from tracker.db.migrate import open_for_writing
    from tracker.db.models import FrameSnapshot
    from tracker.db.session import transaction

    engine = open_for_writing(url)
    with transaction(engine) as session:
        session.execute(delete(FrameSnapshot))
    engine.dispose()


def snapshot_is_current(url: str) -> bool:
    from tracker import frame_snapshot, query
    from tracker.db.session import make_engine

    engine = make_engine(url)
    try:
        stored = frame_snapshot.stored_version(engine, query.TRIAL_FRAME_SNAPSHOT)
        return stored == (frame_snapshot.version_text(query.data_version(engine)), query.trial_frame_format())
    finally:
        engine.dispose()


def run_once(url: str) -> int:
    os.environ["TRACKER_DATABASE_URL"] = url
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(APP), default_timeout=600)
    started = time.perf_counter()
    app.run()
    if app.exception:
        print("; ".join(str(exception.value) for exception in app.exception), file=sys.stderr)
        return 1
    print(f"first run {time.perf_counter() - started:.2f} s, {app.metric[0].value} trials shown")
    return 0


def run_both(url: str, repeat: int) -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from timing import run_process

    samples: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in KINDS}
    commands = {
        "changed": [sys.executable, SCRIPT, "--changed", url],
        "stored": [sys.executable, SCRIPT, url],
    }
    for round_number in range(repeat):
        for kind, command in commands.items():
            if kind == "stored" and not snapshot_is_current(url):
                raise SystemExit("the first view did not store the trial frame: nothing to load")
            seconds, cpu, rss, _ = run_process(command, cwd=ROOT)
            samples[kind].append((seconds, cpu, rss))
        print(f"  round {round_number + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in samples.items()))
    print(f"\nmedian wall-clock s (CPU s), peak RSS of {repeat} round(s), each a whole process, on {url}")
    for kind, label in KINDS.items():
        seconds, cpu = (statistics.median(sample[i] for sample in samples[kind]) for i in (0, 1))
        peak = max(sample[2] for sample in samples[kind])
        print(f"  {label:<68} {seconds:6.2f} s ({cpu:5.2f})  {peak:5.0f} MB")
    print("\nreproduce one run (/usr/bin/time -f '%e s %M KB' gives its wall time and peak RSS):")
    for kind, command in commands.items():
        print(f"  {KINDS[kind]:<68} .venv/bin/python {' '.join(command[1:])}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="database URL, e.g. sqlite:////tmp/copy.db (its snapshot row is written)")
    parser.add_argument("--changed", action="store_true", help="drop the stored trial frame first")
    parser.add_argument("--both", action="store_true", help="measure both cold starts as whole processes")
    parser.add_argument("--repeat", type=int, default=3, help="rounds with --both (default 3)")
    args = parser.parse_args()
    if args.both:
        return run_both(args.url, args.repeat)
    if args.changed:
        drop_snapshot(args.url)
    return run_once(args.url)


if __name__ == "__main__":
    sys.exit(main())
