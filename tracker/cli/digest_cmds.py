"""Commands: export, subscribe (add, list, remove), digest, schedule."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tracker.cli.app import AppContext, main, pass_app
from tracker.cli.options import filter_from_options, filter_options
from tracker.errors import ConfigError

if TYPE_CHECKING:
    from tracker.digest.send import Sender


@main.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="CSV file to write.")
@click.option(
    "--xlsx",
    "xlsx_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also (or instead) write a workbook: Trials, Outcomes, Arms, Glossary and Provenance sheets.",
)
@click.option("--excel", is_flag=True, help="Start the file with a UTF-8 BOM so Excel reads accents right.")
@filter_options
@pass_app
def export(app: AppContext, out: Path | None, xlsx_path: Path | None, excel: bool, **filters: Any) -> None:
    """Write the trials matching the filters to a CSV file (--out), a workbook (--xlsx) or both.

    Beside the CSV, FILE.csv.json records the provenance: export time, the registry's data timestamp, the
    last sync run, the filters, the taxonomy version and the row count; the workbook carries the same in
    its Provenance sheet.
    """
    if out is None and xlsx_path is None:
        raise click.UsageError("give --out FILE.csv, --xlsx FILE.xlsx or both.")
    from tracker.export import write_export
    from tracker.query import resolve_names
    from tracker.workers import worker_count

    engine = app.reader()
    trial_filter = resolve_names(engine, filter_from_options(filters))
    result = write_export(
        engine,
        trial_filter,
        out,
        excel=excel,
        xlsx_path=xlsx_path,
        workers=worker_count(app.settings.workers),
    )
    if result.path is not None:
        click.echo(f"Wrote {result.row_count} trials to {result.path} (provenance: {result.sidecar_path}).")
    if result.xlsx_path is not None:
        click.echo(f"Wrote {result.row_count} trials to {result.xlsx_path} (workbook).")


@main.group()
def subscribe() -> None:
    """Manage weekly digest subscriptions."""


@subscribe.command("add")
@click.argument("email")
@click.option("--name", help="A name for this subscription, shown in the digest's subject.")
@filter_options
@pass_app
def subscribe_add(app: AppContext, email: str, name: str | None, **filters: Any) -> None:
    """Subscribe EMAIL to a digest of changes to the trials matching the filters."""
    from tracker.query import resolve_names
    from tracker.subscriptions import add_subscription

    engine = app.engine()
    trial_filter = resolve_names(engine, filter_from_options(filters))
    outcome = add_subscription(engine, email, trial_filter, name=name)
    info = outcome.subscription
    verb = "Subscribed" if outcome.created else "Already subscribed"
    click.echo(f"{verb}: #{info.id} {info.email} ({info.trial_filter.describe()}).")


@subscribe.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_app
def subscribe_list(app: AppContext, as_json: bool) -> None:
    """List subscriptions: id, address, name, filter, and the start of the next digest's period."""
    from tracker.subscriptions import list_subscriptions

    subscriptions = list_subscriptions(app.reader())
    if as_json:
        rows = [
            {
                "id": info.id,
                "email": info.email,
                "name": info.name,
                "filters": info.trial_filter.to_dict(),
                "created_at": info.created_at.isoformat(),
                "last_digest_until": info.last_digest_until.isoformat() if info.last_digest_until else None,
            }
            for info in subscriptions
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not subscriptions:
        click.echo("No subscriptions.")
        return
    for info in subscriptions:
        name = f" [{info.name}]" if info.name else ""
        click.echo(
            f"#{info.id} {info.email}{name}: {info.trial_filter.describe()}; "
            f"next digest from {info.digest_start:%Y-%m-%d %H:%M} UTC"
        )
        for problem in info.filter_problems:
            click.echo(f"  outdated filter, no digest until renewed: {problem}")


@subscribe.command("remove")
@click.argument("email_or_id", metavar="EMAIL|ID")
@pass_app
def subscribe_remove(app: AppContext, email_or_id: str) -> None:
    """Remove subscription ID, or every subscription of EMAIL."""
    from tracker.subscriptions import remove_subscriptions

    for info in remove_subscriptions(app.engine(), email_or_id):
        click.echo(f"Removed #{info.id} {info.email} ({info.trial_filter.describe()}).")


def parse_moment(value: str | None, option: str, *, end_of_day: bool = False) -> datetime | None:
    """YYYY-MM-DD (UTC midnight; with `end_of_day`, the midnight after) or YYYY-MM-DDTHH:MM[:SS] (UTC)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end_of_day else 0), datetime.min.time())
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"invalid date for {option}: {value!r} (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        ) from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@main.command()
@click.option("--since", metavar="DATE", help="Period start (YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC).")
@click.option("--until", metavar="DATE", help="Period end; a plain date includes that whole day (UTC).")
@click.option("--send", is_flag=True, help="Send by SMTP (TRACKER_SMTP_*) and record what was sent.")
@click.option("--dry-run", is_flag=True, help="Do not send and record nothing (the default without --send).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --dry-run: write one .eml file per subscriber here instead of printing.",
)
@click.option(
    "--subscription", "subscription_ids", type=int, multiple=True, help="Only this subscription ID."
)
@pass_app
def digest(
    app: AppContext,
    since: str | None,
    until: str | None,
    send: bool,
    dry_run: bool,
    out: Path | None,
    subscription_ids: tuple[int, ...],
) -> None:
    """Build each subscriber's digest of changes to the trials matching their filter.

    By default a digest covers everything detected since that subscriber's last digest (the first time:
    since they subscribed). Without --send it only previews: the text is printed, or with --out written as
    .eml files, and nothing is recorded. Exits non-zero when any digest could not be sent.
    """
    from tracker.digest.run import run_digests
    from tracker.digest.send import DeliveryError, EmlWriter, SmtpSender, TextPrinter

    if send and (dry_run or out):
        raise ConfigError("--send cannot be combined with --dry-run or --out")
    settings = app.settings
    sender: Sender
    if send:
        sender = SmtpSender(settings)
    elif out is not None:
        sender = EmlWriter(out)
    else:
        sender = TextPrinter(click.echo)
    with sender:
        report = run_digests(
            app.engine(),
            settings,
            sender,
            since=parse_moment(since, "--since"),
            until=parse_moment(until, "--until", end_of_day=True),
            dry_run=not send,
            subscription_ids=subscription_ids or None,
        )
    if not report.outcomes:
        click.echo("No subscriptions.")
        return
    for outcome in report.outcomes:
        click.echo(outcome.line(), err=outcome.status == "failed")
    click.echo(report.summary())
    if report.failed:
        raise DeliveryError(f"{len(report.failed)} of {len(report.outcomes)} digests could not be sent")


@main.command()
@pass_app
def schedule(app: AppContext) -> None:
    """Run the scheduler: sync daily (TRACKER_SYNC_CRON) and send digests weekly (TRACKER_DIGEST_CRON).

    Jobs live in the database, so a run missed while the scheduler was down is caught up once. Only one
    scheduler may run per database. SIGTERM or Ctrl-C stops it after the running job.
    """
    from tracker.scheduler import run_scheduler

    run_scheduler(app.engine(), app.settings)
    click.echo("Scheduler stopped.")
