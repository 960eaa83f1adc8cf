"""The `tracker` command group: reads options, calls one library function, prints.

Every `TrackerError` becomes one `Error: …` line on stderr and the error's exit code; no tracebacks.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from tracker.errors import TrackerError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tracker.config import Settings


@dataclass
class AppContext:
    """What every command gets: settings (env + global flags) and a database brought to head on first use."""

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

    def override(self, **overrides: Any) -> Settings:
        """Settings with command-level flags applied (None means 'not given')."""
        from tracker.config import load_settings

        if not any(value is not None for value in overrides.values()):
            return self.settings
        self.settings = load_settings(**{**self.settings.model_dump(), **overrides})
        self._engine = None
        return self.settings

    def engine(self) -> Engine:
        if self._engine is None:
            from tracker.db.migrate import upgrade_to_head
            from tracker.db.session import make_engine

            engine = make_engine(self.settings.database_url)
            upgrade_to_head(engine)
            self._engine = engine
        return self._engine


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
