"""Commands: sync, import, status, changes, db upgrade."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tracker.cli.app import AppContext, main, pass_app
from tracker.errors import PartialSyncError, TrackerError

if TYPE_CHECKING:
    from tracker.sync import ProgressCallback, SyncResult


class ProgressBar:
    """A tqdm bar over studies (and pages) for terminals; the total appears once page 1 tells it."""

    def __init__(self, unit_label: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(unit=" studies", desc=unit_label, file=sys.stderr, dynamic_ncols=True, leave=False)

    def __call__(self, result: SyncResult, page_studies: int) -> None:
        if result.total_count is not None and self.bar.total != result.total_count:
            self.bar.total = result.total_count
            self.bar.refresh()
        self.bar.set_postfix(pages=result.pages, refresh=False)
        self.bar.update(page_studies)

    def close(self) -> None:
        self.bar.close()


class CountBar:
    """A tqdm bar over a known number of items, fed (done, total): classification after a sync. The bar
    appears on the first call, so a pass with nothing to do draws nothing."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                unit=" studies", desc=self.label, file=sys.stderr, dynamic_ncols=True, leave=False
            )
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def terminal_progress(
    label: str,
) -> Iterator[tuple[ProgressCallback, Callable[[int, int], None] | None]]:
    """(page progress, classification progress). On a terminal, a page bar and a classification bar with
    every log line written above them (a plain handler would break a bar in two); elsewhere (logs, CI) one
    log line per page and none for classification."""
    from tracker.sync import log_progress

    if not sys.stderr.isatty():
        yield log_progress, None
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    bar = ProgressBar(label)
    classify_bar = CountBar("classify")
    try:
        with logging_redirect_tqdm():
            yield bar, classify_bar
    finally:
        classify_bar.close()
        bar.close()


def _report(result: SyncResult) -> None:
    """The summary line, the rejected records, and exit code 3 when some were rejected."""
    click.echo(result.summary())
    if result.classified:
        click.echo(
            f"classified {result.classified} new or changed stud{'ies' if result.classified != 1 else 'y'}"
        )
    if result.restarts:
        click.echo("(a page token was refused mid-walk; the walk restarted from page 1)")
    for rejection in result.rejected:
        click.echo(f"rejected {rejection.registration_id or '<no ID>'}: {rejection.reason}", err=True)
    if result.rejected:
        raise PartialSyncError(
            f"{len(result.rejected)} record{'s' if len(result.rejected) != 1 else ''} rejected; "
            "the rest landed (run outcome: partial)"
        )


@main.command()
@click.option(
    "--registry",
    "registry_name",
    default="ctgov",
    show_default=True,
    metavar="ctgov|ctis|all",
    help="Which registry to read: ClinicalTrials.gov, the EU's CTIS, or both (ClinicalTrials.gov first).",
)
@click.option("--base-url", metavar="URL", help="API v2 base URL (default: TRACKER_CTGOV_BASE_URL).")
@click.option(
    "--ctis-base-url", metavar="URL", help="CTIS public API base URL (default: TRACKER_CTIS_BASE_URL)."
)
@click.option("--query", metavar="TEXT", help="Condition search, query.cond (default: TRACKER_QUERY).")
@click.option("--full", is_flag=True, help="Full pass (not incremental); flags studies no longer returned.")
@click.option(
    "--history",
    "with_history",
    is_flag=True,
    help="Then refresh the registry history of trials that moved (see `tracker history`).",
)
@click.option(
    "--requests-per-second",
    type=float,
    metavar="N",
    help="Request-rate cap; 0 switches it off (default: TRACKER_REQUESTS_PER_SECOND or 1).",
)
@pass_app
def sync(
    app: AppContext,
    registry_name: str,
    base_url: str | None,
    ctis_base_url: str | None,
    query: str | None,
    full: bool,
    with_history: bool,
    requests_per_second: float | None,
) -> None:
    """Fetch new and changed trials from ClinicalTrials.gov (and/or the EU's CTIS) into the database.

    The first run (or --full) is a full pass; later runs fetch what the registry updated since the last
    clean run, minus a 2-day overlap. Exit codes: 0 done, 3 some records rejected, 1/2 failure.
    """
    from tracker import store

    # the classifier is imported only once a page brings studies
    from tracker.sync import check_query, registries_named, run_registries, synced
    from tracker.workers import worker_count

    registries = registries_named(registry_name)
    settings = app.override(
        ctgov_base_url=base_url,
        ctis_base_url=ctis_base_url,
        query=query,
        requests_per_second=requests_per_second,
    )
    check_query(settings)
    engine = app.engine()
    with terminal_progress("sync") as (progress, classify_progress), store.one_shot_process():
        outcomes = run_registries(
            engine,
            settings,
            registries,
            full=full,
            progress=progress,
            classify_progress=classify_progress,
            workers=worker_count(settings.workers),
        )
    try:
        _report_all(outcomes)
    finally:  # rejected records (exit 3) do not stop the history of what did land
        if with_history and synced(outcomes, "ctgov"):
            _sync_history(app)


def _report_all(outcomes: list[tuple[str, SyncResult | TrackerError]]) -> None:
    """Each registry's summary (named when there are several); then the first failure, else exit 3 when
    records were rejected."""
    from tracker.registries import REGISTRY_LABELS

    partial: PartialSyncError | None = None
    failures: list[TrackerError] = []
    for registry, outcome in outcomes:
        if len(outcomes) > 1 or registry != "ctgov":
            click.echo(f"{REGISTRY_LABELS[registry]}:")
        if isinstance(outcome, TrackerError):
            if len(outcomes) > 1:  # the first failure is also the command's error line
                click.echo(f"failed: {outcome}", err=True)
            failures.append(outcome)
            continue
        try:
            _report(outcome)
        except PartialSyncError as exc:
            partial = partial or exc
    if failures:
        raise failures[0]
    if partial is not None:
        raise partial


def _sync_history(app: AppContext) -> None:
    from tracker.cli.history_cmds import history_progress, report_history
    from tracker.history import run_history

    progress, bar = history_progress()
    try:
        history_result = run_history(app.engine(), app.settings, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    report_history(history_result)


@main.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@pass_app
def import_command(app: AppContext, path: Path) -> None:
    """Import raw API v2 studies from a directory of JSON files, a .zip of them, or JSON Lines (.gz).

    Records land in chunks of 1000 through the same store as a sync, parsed and classified ahead by one
    worker process per core; rejected records give exit code 3.
    """
    from tracker import store
    from tracker.classify import store as classify_store  # noqa: F401  (loaded before the freeze)
    from tracker.sources import import_studies
    from tracker.workers import worker_count

    engine = app.engine()
    with terminal_progress("import") as (progress, classify_progress), store.one_shot_process():
        result = import_studies(
            engine,
            path,
            progress=progress,
            classify_progress=classify_progress,
            workers=worker_count(app.settings.workers),
        )
    _report(result)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show what the database holds: studies by status, the latest run, data date and watermark."""
    from tracker.status import format_status, status_summary

    summary = status_summary(app.reader(), app.settings.database_url)
    if as_json:
        _echo_json(summary)
    else:
        click.echo(format_status(summary))


@main.command()
@click.option("--since", metavar="DATE", help="Only events detected on or after this day (YYYY-MM-DD).")
@click.option("--until", metavar="DATE", help="Only events detected on or before this day (YYYY-MM-DD).")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    metavar="KIND",
    help="Only these kinds (repeat or comma-separate): new, status, phase, start_date, "
    "primary_completion_date, completion_date, enrollment, results_posted, removed, other.",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@click.option(
    "--include-baseline",
    is_flag=True,
    help="Also the events of the first load (every trial 'new' at once), hidden by default.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_app
def changes(
    app: AppContext,
    since: str | None,
    until: str | None,
    kinds: tuple[str, ...],
    limit: int | None,
    include_baseline: bool,
    as_json: bool,
) -> None:
    """List detected changes, newest first, each with its trial's title.

    The first load's events (the baseline) are left out unless --include-baseline.
    """
    from tracker.status import ChangeQuery, format_changes, list_changes, parse_day, parse_kinds

    change_query = ChangeQuery(
        since=parse_day(since, "--since"),
        until=parse_day(until, "--until"),
        kinds=parse_kinds(kinds),
        limit=limit,
        include_baseline=include_baseline,
    )
    events = list_changes(app.reader(), change_query)
    if as_json:
        _echo_json(events)
    else:
        click.echo(format_changes(events))


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@pass_app
def upgrade(app: AppContext) -> None:
    """Create or migrate the database schema to the newest revision.

    The only command that adds the tracker's tables to a database already holding other tables.
    """
    from tracker.db.migrate import current_revision
    from tracker.db.session import mask_url

    engine = app.engine(explicit=True)
    click.echo(f"Database {mask_url(app.settings.database_url)} at revision {current_revision(engine)}.")
