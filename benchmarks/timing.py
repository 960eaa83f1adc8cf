"""Timing shared by the benchmark scripts (run as `python benchmarks/bench_*.py`, it imports as `timing`)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


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
