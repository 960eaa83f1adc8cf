"""Benchmark: `tracker history` index backfill of the 3,616-study snapshot vs a naive fetch-and-dump.

The fake registry runs in its own process (as the real one is remote) and serves, for every study of the
snapshot, a three-version history built from the real record (status and primary completion date move;
the last version is the record itself). The rate cap is off, so the figures say what the tracker itself
costs per trial; at the registry's 1 request/s the registry is the bottleneck by that ratio.

  tracker   `tracker history` in a fresh process on a SQLite file holding the imported snapshot: one index
            request per trial, shape check, HTML normalisation, versions + events + summary per trial;
  baseline  httpx GET of the same indexes → json.loads → (id, version, date, status) rows into one
            sqlite3 table, one commit per trial (as resumable as the tracker is);
  rerun     `tracker history` again: nothing moved, so no request at all;
  versions  `tracker history --versions --limit 300`: the version walk (3 versions, then the index again).

Whole processes, timed with their peak RSS (os.wait4); each side runs once per repeat, median reported.

    .venv/bin/python benchmarks/bench_history.py [--repeat 3] [--data PATH.jsonl.gz]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from timing import serving_process  # noqa: E402  (beside this script)

DEFAULT_DATA = ROOT.parent / "shared/data/ctgov_ms_2025-09-25.jsonl.gz"


def serve(data: Path) -> None:
    """`--serve`: the fake registry with a history for every study, until stdin closes."""
    from fake_ctgov import FakeCtgov
    from fake_history import FakeHistory, FakeVersion, evolve

    from tracker.sources import iter_raw_studies

    with FakeCtgov() as fake:
        for study in iter_raw_studies(data):
            registration_id = study["protocolSection"]["identificationModule"]["nctId"]
            first = evolve(study, status="NOT_YET_RECRUITING", pcd=("2019-06", "ESTIMATED"))
            second = evolve(first, status="RECRUITING", pcd=("2020-01", "ESTIMATED"))
            versions = [
                FakeVersion(first, "2018-01-02"),
                FakeVersion(second, "2018-06-01"),
                FakeVersion(study, "2019-01-01"),
            ]
            fake.set_history(registration_id, FakeHistory(versions))
        print(fake.history_url, flush=True)
        sys.stdin.read()


def registry_process(data: Path) -> AbstractContextManager[str]:
    """The fake registry of this benchmark in its own process."""
    return serving_process(__file__, data, timeout=60)


def baseline(history_url: str, source_db: Path, out_db: Path) -> None:
    """`--baseline`: the naive side (its own process, like the tracker's)."""
    import json

    import httpx

    ids = [  # the same trials as the tracker's run: those not classified not_ms
        row[0]
        for row in sqlite3.connect(source_db).execute(
            "select registration_id from studies"
            " where registration_id not in (select registration_id from study_labels"
            " where dimension = 'relevance' and key = 'not_ms') order by registration_id"
        )
    ]
    connection = sqlite3.connect(out_db)
    connection.execute("create table versions (registration_id text, version int, date text, status text)")
    with httpx.Client(timeout=60) as http:
        for registration_id in ids:
            response = http.get(f"{history_url}/studies/{registration_id}", params={"history": "true"})
            response.raise_for_status()
            changes = json.loads(response.content)["history"]["changes"]
            connection.executemany(
                "insert into versions values (?, ?, ?, ?)",
                [(registration_id, c["version"], c["date"], c["status"]) for c in changes],
            )
            connection.commit()
    connection.close()


def run_process(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak RSS (MiB) and stdout of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    output = child.stdout.read().decode()
    errors = child.stderr.read().decode()
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}): {errors.strip()[-500:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", nargs=3, metavar=("URL", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.data)
        return
    if args.baseline:
        baseline(args.baseline[0], Path(args.baseline[1]), Path(args.baseline[2]))
        return

    folder = Path(tempfile.mkdtemp(prefix="bench-history-"))
    try:
        imported = folder / "imported.db"
        env = {
            **os.environ,
            "TRACKER_DATABASE_URL": f"sqlite:///{imported}",
            "TRACKER_REQUESTS_PER_SECOND": "0",
        }
        run_process([sys.executable, "-m", "tracker", "import", str(args.data)], env)
        count = sqlite3.connect(imported).execute("select count(*) from studies").fetchone()[0]
        trials = count
        samples: dict[str, list[tuple[float, float, float]]] = {
            "tracker": [],
            "baseline": [],
            "rerun": [],
            "versions": [],
        }
        with registry_process(args.data) as history_url:
            env["TRACKER_CTGOV_HISTORY_URL"] = history_url
            for attempt in range(args.repeat):
                database = folder / f"history-{attempt}.db"
                shutil.copy(imported, database)
                run_env = {**env, "TRACKER_DATABASE_URL": f"sqlite:///{database}"}
                *sample, output = run_process([sys.executable, "-m", "tracker", "history"], run_env)
                accepted = re.search(r"(\d+) of (\d+) trials accepted", output)
                assert accepted and accepted[1] == accepted[2], output
                trials = int(accepted[1])  # the stored trials not classified not_ms
                samples["tracker"].append(tuple(sample))
                *sample, output = run_process([sys.executable, "-m", "tracker", "history"], run_env)
                assert "0 requests" in output, output
                samples["rerun"].append(tuple(sample))
                out = folder / f"baseline-{attempt}.db"
                *sample, _ = run_process(
                    [sys.executable, __file__, "--baseline", history_url, str(imported), str(out)], env
                )
                samples["baseline"].append(tuple(sample))
                *sample, output = run_process(
                    [sys.executable, "-m", "tracker", "history", "--versions", "--limit", "300"], run_env
                )
                assert "900 version records fetched" in output, output
                samples["versions"].append(tuple(sample))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    def median(name: str) -> tuple[float, float, float]:
        rows = samples[name]
        return (
            statistics.median(row[0] for row in rows),
            statistics.median(row[1] for row in rows),
            max(row[2] for row in rows),
        )

    print(
        f"{count} studies, {trials} not classified not_ms: index backfill (1 request each), rate cap off, "
        f"median of {args.repeat}:"
    )

    def line(label: str, name: str, requests: int) -> tuple[float, float]:
        wall, cpu, rss = median(name)
        rate = f"{requests / wall:6.0f} requests/s" if requests else "    0 requests  "
        per_trial = f"{1000 * cpu / max(requests, 1):5.1f} ms CPU/request" if requests else ""
        cost = f"{wall:6.2f} s wall  {cpu:6.2f} s CPU  {rate}  {per_trial}"
        print(f"  {label:<24} {cost}  peak RSS {rss:4.0f} MiB")
        return wall, cpu

    tracker_wall, tracker_cpu = line("tracker history", "tracker", trials)
    baseline_wall, baseline_cpu = line("naive baseline", "baseline", trials)
    print(
        f"  ratio tracker / baseline {tracker_wall / baseline_wall:6.2f}x wall, "
        f"{tracker_cpu / baseline_cpu:.2f}x CPU"
    )
    line("rerun (nothing moved)", "rerun", 0)
    line("--versions --limit 300", "versions", 300 * 4)  # 3 versions, then the index again


if __name__ == "__main__":
    main()
