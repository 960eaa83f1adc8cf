"""Command: history (the registry's own version history of the stored trials)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from tracker.cli.app import AppContext, main, pass_app
from tracker.errors import PartialSyncError

if TYPE_CHECKING:
    from tracker.history import HistoryProgress, HistoryResult


class HistoryProgressBar:
    """A tqdm bar over the trials of a run: rate and ETA are what a day-long backfill needs to show."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(unit=" trials", desc="history", file=sys.stderr, dynamic_ncols=True, leave=False)

    def __call__(self, result: HistoryResult) -> None:
        if self.bar.total != result.planned:
            self.bar.total = result.planned
            self.bar.refresh()
        self.bar.set_postfix(requests=result.requests, versions=result.versions_fetched, refresh=False)
        self.bar.update(result.done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def history_progress() -> tuple[HistoryProgress, HistoryProgressBar | None]:
    from tracker.history import log_history_progress

    if sys.stderr.isatty():
        bar = HistoryProgressBar()
        return bar, bar
    return log_history_progress, None


def report_history(result: HistoryResult) -> None:
    """The summary line, the trials that failed, and exit code 3 when some did."""
    click.echo(result.summary())
    for failure in result.failed:
        click.echo(f"not accepted {failure.registration_id}: {failure.reason}", err=True)
    if result.failed:
        raise PartialSyncError(
            f"{len(result.failed)} trial{'s' if len(result.failed) != 1 else ''} not accepted; "
            "run `tracker history` again to retry them"
        )


@main.command()
@click.option(
    "--nct", "registration_ids", multiple=True, metavar="NCT", help="Only these trials (repeat for several)."
)
@click.option(
    "--versions", is_flag=True, help="Also fetch every version record (dates, enrolment, outcomes)."
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Visit at most N trials in this run.")
@click.option("--base-url", metavar="URL", help="History API base URL (default: TRACKER_CTGOV_HISTORY_URL).")
@click.option(
    "--requests-per-second",
    type=float,
    metavar="N",
    help="Request-rate cap; 0 switches it off (default: TRACKER_REQUESTS_PER_SECOND or 1).",
)
@pass_app
def history(
    app: AppContext,
    registration_ids: tuple[str, ...],
    versions: bool,
    limit: int | None,
    base_url: str | None,
    requests_per_second: float | None,
) -> None:
    """Backfill the registry's version history of the stored trials: status timeline, original enrolment
    and outcomes; with --versions, every version record for the date, enrolment and outcome trails.

    Resumable: a rerun (also after a kill) fetches only what is missing, and re-reads only trials whose
    registry record moved since. Exit codes: 0 done, 3 some trials not accepted, 1/2 failure.
    """
    from tracker.history import run_history

    settings = app.override(ctgov_history_url=base_url, requests_per_second=requests_per_second)
    engine = app.engine()
    progress, bar = history_progress()
    try:
        result = run_history(
            engine,
            settings,
            registration_ids=list(registration_ids) or None,
            versions=versions,
            limit=limit,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    report_history(result)
