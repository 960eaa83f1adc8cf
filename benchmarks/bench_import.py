"""`tracker import` of a large JSON Lines file into SQLite and Postgres, timed as whole processes.

The 3,616-study snapshot is replicated with rewritten NCT IDs up to `--studies` (default 100,000). Each
import runs as `python -m tracker import FILE` into a fresh database (classification included, as a user
runs it); next to it, in the same run, a baseline process loads the same lines as raw JSON into one table
(SQLite executemany; Postgres COPY), the least any loader must do. Prints wall time, studies/s, peak RSS
and the ratio to the baseline.

    python benchmarks/bench_import.py [--studies 100000] [--postgres-url URL] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or imported by the suite
from timing import replicated_study  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
SNAPSHOT = PROJECT.parent / "shared" / "data" / "ctgov_ms_2025-09-25.jsonl.gz"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

BASELINE_SQLITE = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[2])
connection.execute("CREATE TABLE studies (registration_id TEXT PRIMARY KEY, raw TEXT)")
import orjson
rows = []
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        rows.append((orjson.loads(line)["protocolSection"]["identificationModule"]["nctId"], line))
        if len(rows) == 1000:
            connection.executemany("INSERT INTO studies VALUES (?, ?)", rows); rows = []
connection.executemany("INSERT INTO studies VALUES (?, ?)", rows)
connection.commit()
"""

BASELINE_POSTGRES = """
import sys, orjson, psycopg
with psycopg.connect(sys.argv[2]) as connection:
    connection.execute("CREATE TABLE baseline_studies (registration_id TEXT PRIMARY KEY, raw JSON)")
    with connection.cursor().copy("COPY baseline_studies FROM STDIN") as copy, open(sys.argv[1], "rb") as f:
        for line in f:
            registration_id = orjson.loads(line)["protocolSection"]["identificationModule"]["nctId"]
            copy.write_row((registration_id, line.decode().rstrip("\\n")))
"""


def build_file(count: int, folder: Path) -> Path:
    """The snapshot replicated to `count` studies; copy k of study i becomes NCT{k:02d}{i:06d}, with long
    texts of its own (`timing.replicated_study`)."""
    if not SNAPSHOT.exists():
        sys.exit(f"snapshot not found: put ctgov_ms_2025-09-25.jsonl.gz in {SNAPSHOT.parent}")
    with gzip.open(SNAPSHOT, "rb") as handle:
        lines = [line for line in handle if line.strip()]
    path = folder / f"studies_{count}.jsonl"
    with path.open("wb") as out:
        written = 0
        copy = 0
        while written < count:
            for index, line in enumerate(lines):
                if written == count:
                    break
                raw = replicated_study(orjson.loads(line), copy, f"NCT{copy:02d}{index:06d}")
                out.write(orjson.dumps(raw) + b"\n")
                written += 1
            copy += 1
    return path


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process; fails loudly if it does not exit 0."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def report(
    label: str, count: int, tracker: tuple[float, float], baseline: tuple[float, float], cmd: str
) -> None:
    seconds, rss = tracker
    print(
        f"{label:<9} {count:>7} studies  tracker import {seconds:7.1f}s ({count / seconds:6.0f}/s, "
        f"peak {rss:4.0f} MB)  baseline {baseline[0]:6.1f}s  ratio {seconds / baseline[0]:4.1f}x"
    )
    print(f"          reproduce: {cmd}")


def fresh_postgres(admin_url: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text

    name = f"bench_import_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--postgres-url", default=os.environ.get("TRACKER_BENCH_POSTGRES_URL", POSTGRES_URL))
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRACKER_")}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        path = build_file(args.studies, folder)
        command = f"python benchmarks/bench_import.py --studies {args.studies}"

        database = folder / "trials.db"
        tracker = timed(
            [sys.executable, "-m", "tracker", "--database-url", f"sqlite:///{database}", "import", str(path)],
            env,
        )
        baseline = timed([sys.executable, "-c", BASELINE_SQLITE, str(path), str(folder / "baseline.db")], env)
        report("SQLite", args.studies, tracker, baseline, command)

        if args.skip_postgres:
            return
        names = []
        try:
            name, url = fresh_postgres(args.postgres_url)
            names.append(name)
            tracker = timed(
                [sys.executable, "-m", "tracker", "--database-url", url, "import", str(path)], env
            )
            name, url = fresh_postgres(args.postgres_url)
            names.append(name)
            libpq_url = url.replace("postgresql+psycopg://", "postgresql://")
            baseline = timed([sys.executable, "-c", BASELINE_POSTGRES, str(path), libpq_url], env)
            report("Postgres", args.studies, tracker, baseline, command)
        finally:
            for name in names:
                drop_postgres(args.postgres_url, name)


if __name__ == "__main__":
    main()
