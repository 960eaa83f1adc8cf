"""Commands: link, unlink (manual decisions on which registrations are one trial)."""

from __future__ import annotations

import click

from tracker.cli.app import AppContext, main, pass_app


def _registration_id(value: str) -> str:
    from tracker.identifiers import registry_ids_in

    found = registry_ids_in(value)
    if len(found) != 1 or found[0].scheme == "eudract":
        raise click.BadParameter(
            f"{value!r} is not a registration ID: give an NCT ID (NCT01234567) or an EU CT number "
            "(2024-510663-34-00)"
        )
    return found[0].value


def _decide(app: AppContext, first: str, second: str, action: str, note: str) -> None:
    from tracker.link_store import record_decision

    a, b = _registration_id(first), _registration_id(second)
    if a == b:
        raise click.BadParameter(f"{a} is the same registration twice")
    engine = app.engine()
    trials = record_decision(engine, a, b, action, note)  # type: ignore[arg-type]
    missing = [rid for rid in (a, b) if rid not in trials]
    if action == "link":
        click.echo(f"Linked {a} and {b}: one trial, {trials.get(a) or trials.get(b) or min(a, b)}.")
    else:
        click.echo(f"Unlinked {a} and {b}: trials {trials.get(a, a)} and {trials.get(b, b)}.")
    for rid in missing:
        click.echo(f"{rid} is not stored yet; the decision applies when it arrives.")


@main.command()
@click.argument("first", metavar="ID")
@click.argument("second", metavar="ID")
@click.option("--note", required=True, metavar="TEXT", help="Why (kept with the decision).")
@pass_app
def link(app: AppContext, first: str, second: str, note: str) -> None:
    """Make two registrations (NCT ID, EU CT number) one trial, whatever their identifiers say.

    The decision is kept and outlives every re-sync; `tracker unlink` reverses it.
    """
    _decide(app, first, second, "link", note)


@main.command()
@click.argument("first", metavar="ID")
@click.argument("second", metavar="ID")
@click.option("--note", required=True, metavar="TEXT", help="Why (kept with the decision).")
@pass_app
def unlink(app: AppContext, first: str, second: str, note: str) -> None:
    """Keep two registrations apart as separate trials, whatever their identifiers say.

    The decision is kept and outlives every re-sync; `tracker link` reverses it.
    """
    _decide(app, first, second, "unlink", note)
