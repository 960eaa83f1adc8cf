"""Pure CPU work (parsing and classifying studies) in forked child processes, results in order.

The rules are pure Python and hold the GIL, so a second core helps only from a second process. Children
are forked, so they start with the parent's compiled classifier and imported modules and cost a few
milliseconds each. Database connections must not cross a fork: the parent's pool is emptied before the
first child starts, and each child drops (never closes) what it inherited, as closing a socket there would
end the parent's session. Children ignore Ctrl-C: the parent alone decides what an interrupt stops.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from tracker.errors import WorkerError

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    from sqlalchemy import Engine

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_WORKERS = 4  # the writes stay in the parent and are serial; more children only wait for it
CHILD_NICENESS = 10  # added to a child's niceness: lower priority than the parent's


def worker_count(setting: int = 0) -> int:
    """Child processes for a bulk job: the setting (TRACKER_WORKERS), or for 0 one per core this process
    may use, at most MAX_WORKERS."""
    if setting > 0:
        return setting
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def ordered_map(
    function: Callable[[Item], Result],
    items: Iterable[Item],
    *,
    workers: int,
    engine: Engine | None = None,
    ahead: int | None = None,
) -> Iterator[tuple[Item, Result]]:
    """`map(function, items)` in `workers` forked children, yielding (item, result) in item order.

    At most `ahead` items (default two per worker) are handed out before their results are taken, so
    memory holds a few items however many there are, and `items` may be a lazy reader. `function` must be
    a module-level function. `engine`, when the parent has one, is emptied before the fork."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    global _inherited_engine
    if engine is not None:
        engine.dispose()
    _inherited_engine = engine
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_child_start
    )
    limit = ahead or 2 * workers
    try:
        yield from _in_order(pool, function, items, limit)
    except BrokenProcessPool as exc:
        raise WorkerError(
            f"a worker process stopped unexpectedly ({exc or 'killed'}); what landed is kept: run the "
            "command again, or with TRACKER_WORKERS=1 to work in one process"
        ) from None
    finally:
        # An interrupt or an error in the parent stops the children's queued work at once.
        pool.shutdown(wait=True, cancel_futures=True)


def _in_order(
    pool: ProcessPoolExecutor, function: Callable[[Item], Result], items: Iterable[Item], limit: int
) -> Iterator[tuple[Item, Result]]:
    in_flight: deque[tuple[Item, Future[Result]]] = deque()
    for item in items:
        in_flight.append((item, pool.submit(function, item)))
        if len(in_flight) >= limit:
            item, future = in_flight.popleft()
            yield item, future.result()
    while in_flight:
        item, future = in_flight.popleft()
        yield item, future.result()


_inherited_engine: Engine | None = None  # the parent's engine at the fork (`_child_start` drops it)
_child_engines: dict[str, Engine] = {}  # in a child: one engine per database URL, opened by its first item


def child_engine(url: str) -> Engine:
    """In a worker process: its own engine on the database at `url` (never the parent's connections)."""
    engine = _child_engines.get(url)
    if engine is None:
        from tracker.db.session import make_engine

        engine = _child_engines[url] = make_engine(url)
    return engine


def _child_start() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent lands every page (the one writer each page waits for) while children work ahead: where
    # processes outnumber cores, the scheduler should give the parent the CPU first (100k import: 12% less
    # wall time, the same CPU).
    os.nice(CHILD_NICENESS)
    if _inherited_engine is not None:
        _inherited_engine.dispose(close=False)
