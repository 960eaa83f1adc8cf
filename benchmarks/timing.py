"""Timing shared by the benchmark scripts (run as `python benchmarks/bench_*.py`, it imports as `timing`)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def median_seconds(
    action: Callable[[], object], repeat: int, *, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median seconds of `repeat` calls: wall clock, or this process's CPU with `clock=time.process_time`."""
    times = []
    for _ in range(repeat):
        started = clock()
        action()
        times.append(clock() - started)
    return statistics.median(times)


@contextmanager
def serving_process(script: str, data: Path, *, timeout: float = 60) -> Iterator[str]:
    """`script --serve --data DATA` in its own process (a fake registry, remote as the real one is, so it
    takes no CPU from either side of a comparison); yields the URL it prints first, stops it on exit."""
    child = subprocess.Popen(
        [sys.executable, script, "--serve", "--data", str(data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=timeout)


# Each measured command runs under this small launcher, which forks, execs the command and reports the
# child's own wall time, CPU time and peak RSS: a child forked from the benchmark itself would count its
# memory too.
LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    print(time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, file=report)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_process(
    command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak RSS (MB) and output of one command as a whole process."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        child = subprocess.run(
            [sys.executable, "-c", LAUNCHER, report.name, *command],
            env=os.environ if env is None else env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{child.stdout[-2000:]}")
        seconds, cpu, max_rss_kib = (float(value) for value in report.read().split())
    return seconds, cpu, max_rss_kib / 1024, child.stdout


# Free text that a registry of that many different trials would not repeat. The classifier caches its
# work per text (conditions, keywords and intervention names do repeat across real trials, and stay as
# they are); a replicated snapshot would repeat every title, summary and outcome too, and make the
# classifier look a quarter faster than it is on 100,000 different trials (measured: 0.23 against
# 0.30 ms a study over ten copies). So each copy after the first gets its own long texts.
_COPIED_TEXTS = {
    "identificationModule": ("briefTitle", "officialTitle"),
    "descriptionModule": ("briefSummary", "detailedDescription"),
    "eligibilityModule": ("eligibilityCriteria",),
}


def replicated_study(raw: dict[str, Any], copy: int, registration_id: str) -> dict[str, Any]:
    """Copy `copy` (0 = the original) of a raw API v2 study, in place: its NCT ID `registration_id`, and
    from the second copy on its titles, descriptions, eligibility, outcome measures and arm and
    intervention descriptions ending in " (copy N)", which no classifier rule reads."""
    protocol = raw["protocolSection"]
    protocol["identificationModule"]["nctId"] = registration_id
    if copy == 0:
        return raw
    marker = f" (copy {copy})"

    def mark(item: dict[str, Any], *names: str) -> None:
        for name in names:
            if isinstance(item.get(name), str):
                item[name] += marker

    for module, names in _COPIED_TEXTS.items():
        mark(protocol.get(module) or {}, *names)
    for outcomes in (protocol.get("outcomesModule") or {}).values():
        for outcome in outcomes if isinstance(outcomes, list) else ():
            mark(outcome, "measure", "description")
    arms = protocol.get("armsInterventionsModule") or {}
    for item in (*(arms.get("armGroups") or ()), *(arms.get("interventions") or ())):
        mark(item, "description")
    return raw
