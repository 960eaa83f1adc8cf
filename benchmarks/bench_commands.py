"""Benchmark: `tracker` commands as whole processes, what a user waits for, next to baselines in the same run.

Each figure is the median wall-clock time of `--repeat` runs of one subprocess (and its CPU time, user +
system, which a busy shared machine disturbs less), with its peak RSS, measured
beside its baseline in the same run (the order rotates each round) and printed as a ratio:

  tracker --help                      vs `python -c pass`
  tracker status, changes --limit 5   vs `python -c pass` (on the database the sync filled)
  tracker sync (fresh SQLite file)    vs benchmarks/naive_dump.py (httpx → json.loads → one table); also
                                      with TRACKER_WORKERS=1 (one process), as import is
  tracker sync, nothing new           vs `python -c pass` (an incremental run on the synced database)
  tracker import (SQLite, Postgres)   vs the naive script; studies per second
  tracker export, classify --all      on the synced database
  dashboard first view after the data changed (trial frame built and stored) and cold start from the
  stored trial frame                  vs importing Streamlit's AppTest (benchmarks/dashboard_cold.py)

The registry is the fake of tests/fake_ctgov.py, run in its own process on loopback. `--scale N` replicates
the snapshot to N studies with rewritten NCT IDs and long texts (e.g. 100000); `--quick` does 3.6k, 3
rounds, SQLite only.

    .venv/bin/python benchmarks/bench_commands.py [--quick] [--scale 100000] [--repeat 5]
        [--postgres postgresql+psycopg://127.0.0.1/test] [--data PATH.jsonl.gz] [--only pass,status]

Figure keys for --only: pass help status changes naive sync sync_one no_change import import_one export
classify streamlit dashboard (both dashboard figures) import_pg.
"""

from __future__ import annotations

import argparse
import compileall
import gzip
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import timing  # noqa: E402  (beside this script)
from bench_sync import QUERY, registry_process  # noqa: E402

from tracker.sources import iter_raw_studies  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared/data/ctgov_ms_2025-09-25.jsonl.gz"
TRACKER = [sys.executable, "-m", "tracker"]
PASS = [sys.executable, "-c", "pass"]
# The same command without worker processes (TRACKER_WORKERS=1), to compare in the same run.
ONE_PROCESS = ["/usr/bin/env", "TRACKER_WORKERS=1"]
APPTEST_IMPORT = "from streamlit.testing.v1 import AppTest"


@dataclass
class Figure:
    """The samples of one command: wall seconds and peak RSS (MB) per run."""

    label: str
    command: list[str]
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu_seconds)

    @property
    def peak_mb(self) -> float:
        return max(self.rss_mb)


def run_process(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one command, measured by the launcher."""
    return timing.run_process(command, env, ROOT)


def replicate(data: Path, scale: int, folder: Path) -> Path:
    """The snapshot repeated to `scale` studies; copies after the first get NCT IDs and long texts of their
    own (`timing.replicated_study`)."""
    if scale <= 0:
        return data
    target = folder / f"studies_{scale}.jsonl.gz"
    written, copy = 0, 0
    with gzip.open(target, "wb", compresslevel=1) as handle:
        while written < scale:
            for raw in iter_raw_studies(data):
                if written >= scale:
                    break
                if copy > 0:  # the first copy keeps its real IDs
                    timing.replicated_study(raw, copy, f"NCT9{written:07d}")
                handle.write(orjson.dumps(raw) + b"\n")
                written += 1
            copy += 1
    return target


def reset_postgres(url: str) -> None:
    """Empty the Postgres database: drop and recreate the public schema."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def store_trial_frame(url: str) -> None:
    """Store the trial frame of the database as it is now (what the scheduler does after a sync)."""
    from tracker.db.session import make_engine
    from tracker.query import refresh_trial_frame_snapshot

    engine = make_engine(url)
    refresh_trial_frame_snapshot(engine)
    engine.dispose()


def rotate(round_number: int, actions: list[Callable[[], None]]) -> list[Callable[[], None]]:
    shift = round_number % len(actions)
    return actions[shift:] + actions[:shift]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, help="rounds (default 5; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, the snapshot as it is, SQLite only")
    parser.add_argument("--scale", type=int, default=0, help="replicate the snapshot to this many studies")
    parser.add_argument(
        "--postgres", metavar="URL", help="also import into this (emptied!) Postgres database"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--only", metavar="KEYS", help="comma-separated figures to measure, e.g. pass,classify (default all)"
    )
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(
            f"snapshot not found: put ctgov_ms_2025-09-25.jsonl.gz at {DEFAULT_DATA} or pass --data PATH"
        )
    if args.quick:
        args.scale, args.postgres = 0, None
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5

    # The commands are timed as an installed package runs: byte-compiled (an editable install is not, and
    # with PYTHONDONTWRITEBYTECODE set each command would compile every module it imports again).
    compileall.compile_dir(ROOT / "tracker", quiet=1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = replicate(args.data, args.scale, tmp)
        studies = sum(1 for _ in iter_raw_studies(data))
        print(f"{studies} studies ({data.name}); {args.repeat} rounds; {os.cpu_count()} CPUs")
        with registry_process(data) as url:
            only = set(args.only.split(",")) if args.only else None
            figures = measure(url, data, tmp, args.repeat, args.postgres, only)
        report(figures, studies)


def measure(
    url: str, data: Path, tmp: Path, repeat: int, postgres: str | None, only: set[str] | None = None
) -> dict[str, Figure]:
    env = {**os.environ, "TRACKER_REQUESTS_PER_SECOND": "0", "TRACKER_QUERY": QUERY}
    env.pop("TRACKER_DATABASE_URL", None)
    synced = f"sqlite:///{tmp / 'synced.db'}"
    figures: dict[str, Figure] = {}

    def timed(key: str, label: str, command: list[str], before: Callable[[], None] | None = None) -> None:
        figure = figures.setdefault(key, Figure(label, command))
        if before is not None:
            before()
        seconds, cpu, rss, _ = run_process(command, env)
        figure.seconds.append(seconds)
        figure.cpu_seconds.append(cpu)
        figure.rss_mb.append(rss)

    def fresh_sqlite(name: str) -> tuple[str, Callable[[], None]]:
        path = tmp / f"{name}.db"

        def remove() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return f"sqlite:///{path}", remove

    sync_url, sync_reset = fresh_sqlite("sync")
    import_url, import_reset = fresh_sqlite("import")
    naive_db = tmp / "naive.db"
    out = tmp / "export.csv"
    # The database the read-only commands run on: one sync, as a user's would be.
    run_process([*TRACKER, "--database-url", synced, "sync", "--base-url", url], env)
    db = ["--database-url"]
    plan: list[tuple[str, str, list[str], Callable[[], None] | None]] = [
        ("pass", "python -c pass", PASS, None),
        ("help", "tracker --help", [*TRACKER, "--help"], None),
        ("status", "tracker status", [*TRACKER, *db, synced, "status"], None),
        ("changes", "tracker changes --limit 5", [*TRACKER, *db, synced, "changes", "--limit", "5"], None),
        (
            "naive",
            "naive fetch-and-dump script",
            [sys.executable, "benchmarks/naive_dump.py", url, QUERY, str(naive_db)],
            lambda: naive_db.unlink(missing_ok=True),
        ),
        (
            "sync",
            "tracker sync (fresh SQLite)",
            [*TRACKER, *db, sync_url, "sync", "--base-url", url],
            sync_reset,
        ),
        (
            "sync_one",
            "tracker sync, one process",
            [*ONE_PROCESS, *TRACKER, *db, sync_url, "sync", "--base-url", url],
            sync_reset,
        ),
        ("no_change", "tracker sync, nothing new", [*TRACKER, *db, synced, "sync", "--base-url", url], None),
        (
            "import",
            "tracker import (fresh SQLite)",
            [*TRACKER, *db, import_url, "import", str(data)],
            import_reset,
        ),
        (
            "import_one",
            "tracker import, one process",
            [*ONE_PROCESS, *TRACKER, *db, import_url, "import", str(data)],
            import_reset,
        ),
        ("export", "tracker export (all trials)", [*TRACKER, *db, synced, "export", "--out", str(out)], None),
        ("classify", "tracker classify --all", [*TRACKER, *db, synced, "classify", "--all"], None),
        ("streamlit", "import streamlit's AppTest", [sys.executable, "-c", APPTEST_IMPORT], None),
        (
            "dashboard_built",
            "dashboard, data changed",
            [sys.executable, "benchmarks/dashboard_cold.py", "--changed", synced],
            None,
        ),
        (
            "dashboard",
            "dashboard, stored trial frame",
            [sys.executable, "benchmarks/dashboard_cold.py", synced],
            # other figures (classify, a sync) move the data version: store the frame of the data as it is
            lambda: store_trial_frame(synced),
        ),
    ]
    if postgres:
        plan.append(
            (
                "import_pg",
                "tracker import (fresh Postgres)",
                [*TRACKER, *db, postgres, "import", str(data)],
                lambda: reset_postgres(postgres),
            )
        )
    if only is not None and "dashboard" in only:
        only = only | {"dashboard_built"}
    actions: list[Callable[[], None]] = [
        lambda step=step: timed(*step)  # type: ignore[misc]
        for step in plan
        if only is None or step[0] in only
    ]
    for round_number in range(repeat):
        for action in rotate(round_number, actions):
            action()
        print(
            f"  round {round_number + 1}: "
            + ", ".join(f"{k} {f.seconds[-1]:.2f}s" for k, f in figures.items())
        )
    return figures


def report(figures: dict[str, Figure], studies: int) -> None:
    print(
        f"\nmedian wall-clock s (CPU s), peak RSS; ratio to the baseline of the same run ({studies} studies)"
    )
    baselines = dict.fromkeys(("help", "status", "changes", "no_change"), "pass")
    baselines.update(dict.fromkeys(("sync", "sync_one", "import", "import_one", "import_pg"), "naive"))
    baselines["dashboard"] = baselines["dashboard_built"] = "streamlit"
    for key, figure in figures.items():
        line = (
            f"  {figure.label:<32} {figure.median:7.3f}s ({figure.median_cpu:6.3f})  {figure.peak_mb:5.0f} MB"
        )
        base = baselines.get(key)
        if base in figures:
            other = figures[base]
            line += (
                f"  {figure.median / other.median:5.2f}x ({figure.median_cpu / other.median_cpu:5.2f}x CPU)"
                f" {other.label}"
            )
        if key.startswith("import"):
            line += f"  {studies / figure.median:,.0f} studies/s"
        print(line)
    print("\nreproduce one figure: the command below (tracker = .venv/bin/python -m tracker)")
    for figure in figures.values():
        print(f"  {figure.label:<32} {' '.join(_short(part) for part in figure.command)}")


def _short(part: str) -> str:
    if part == sys.executable:
        return "python"
    return Path(part).name if part.startswith(("/tmp", tempfile.gettempdir())) else part


if __name__ == "__main__":
    main()
