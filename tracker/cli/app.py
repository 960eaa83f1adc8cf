"""The `tracker` command group: reads options, calls one library function, prints.

Every `TrackerError` becomes one `Error: …` line on stderr and the error's exit code; no tracebacks.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from tracker.errors import ConfigError, TrackerError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tracker.config import Settings


@dataclass
class AppContext:
    """What every command gets: settings (env + global flags) and the database, opened on first use."""

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    _reader: Engine | None = field(default=None, repr=False)

    def override(self, **overrides: Any) -> Settings:
        """Settings with command-level flags applied (None means 'not given')."""
        from tracker.config import SettingError, load_settings

        given = {key: value for key, value in overrides.items() if value is not None}
        if not given:
            return self.settings
        try:
            self.settings = load_settings(**{**self.settings.as_dict(), **given})
        except SettingError as exc:
            if exc.field not in given:
                raise
            # The user typed a flag, not an environment variable: name the flag.
            flag = "--" + exc.field.replace("_", "-")
            raise ConfigError(f"invalid {flag} {given[exc.field]!r}: {exc.reason}") from None
        self._engine = None
        self._reader = None
        return self.settings

    def engine(self, *, explicit: bool = False) -> Engine:
        """For commands that write: the schema is created or migrated first. A database holding someone
        else's tables is refused unless `explicit` (`tracker db upgrade`)."""
        if self._engine is None:
            from tracker.db.migrate import open_for_writing

            self._engine = open_for_writing(self.settings.database_url, explicit=explicit)
        return self._engine

    def reader(self) -> Engine:
        """For commands that only read: opened read-only; a database without a tracker schema is an
        error that says how to fill it, and nothing is created in it."""
        if self._reader is None:
            from tracker.db.migrate import open_for_reading

            self._reader = open_for_reading(self.settings.database_url)
        return self._reader


pass_app = click.make_pass_decorator(AppContext)


def _fail(exc: TrackerError) -> None:
    """Print the error as one line and exit with its code."""
    from tracker.db.session import one_line

    click.echo(f"Error: {one_line(exc)}", err=True)
    sys.exit(exc.exit_code)


class TrackerGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrackerError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=TrackerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    metavar="URL",
    help="SQLAlchemy URL (default: TRACKER_DATABASE_URL or sqlite:///data/trials.db).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.version_option(package_name="ms-trial-tracker")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, verbose: bool) -> None:
    """Track the multiple sclerosis clinical-trial landscape on ClinicalTrials.gov."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        from tracker.config import load_settings

        settings = load_settings(database_url=database_url)
    except TrackerError as exc:
        _fail(exc)
    ctx.obj = AppContext(settings)
