"""Timing shared by the benchmark scripts (run as `python benchmarks/bench_*.py`, it imports as `timing`)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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
