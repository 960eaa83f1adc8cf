"""Worker processes (`tracker.workers`): results in order, bounded look-ahead, a dead worker named."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tracker.errors import WorkerError
from tracker.workers import CHILD_NICENESS, ordered_map, worker_count


def _square_slowly(number: int) -> tuple[int, int]:
    time.sleep(0.02 * (number % 3))  # later items often finish first
    return number * number, os.getpid()


def _die_on_three(number: int) -> int:
    if number == 3:
        os._exit(1)  # as the kernel's OOM killer would end it: no exception, no cleanup
    return number


def test_results_come_back_in_item_order_from_other_processes() -> None:
    results = list(ordered_map(_square_slowly, range(12), workers=2))

    assert [item for item, _ in results] == list(range(12))
    assert [square for _, (square, _pid) in results] == [n * n for n in range(12)]
    assert os.getpid() not in {pid for _, (_square, pid) in results}


def test_items_are_read_only_a_few_ahead_of_the_results_taken() -> None:
    pulled: list[int] = []

    def items() -> Iterator[int]:
        for number in range(20):
            pulled.append(number)
            yield number

    results = ordered_map(_square_slowly, items(), workers=2, ahead=3)
    first = next(results)

    assert first[0] == 0
    assert len(pulled) == 3  # a lazy reader of a large file stays a few items in memory
    assert [item for item, _ in results] == list(range(1, 20))


def _niceness(_item: int) -> int:
    return os.nice(0)


def test_children_yield_the_cpu_to_the_parent_that_lands_their_work() -> None:
    parent = os.nice(0)
    niceness = {value for _, value in ordered_map(_niceness, range(4), workers=2)}
    assert niceness == {min(parent + CHILD_NICENESS, 19)}
    assert os.nice(0) == parent


def test_a_worker_that_dies_is_one_clear_error() -> None:
    with pytest.raises(WorkerError, match="worker process stopped unexpectedly.*TRACKER_WORKERS=1"):
        list(ordered_map(_die_on_three, range(8), workers=2))


def test_worker_count_follows_the_setting_or_the_cores() -> None:
    assert worker_count(3) == 3
    assert 1 <= worker_count(0) <= 4
