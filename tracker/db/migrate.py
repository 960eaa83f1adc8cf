"""Bring a database to the newest schema through Alembic (the only way the schema changes)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from tracker.db.session import mask_url, one_line
from tracker.errors import DatabaseError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Revisions that add fields derived from the raw JSON every study keeps: an upgrade across one refills
# the existing rows through the store (migrations stay schema-only and never import application code).
REFILL_REVISIONS = frozenset({"0005_study_details"})

log = logging.getLogger(__name__)


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    if engine is not None:
        # env.py picks the live engine up from here, so URLs with passwords never pass through ini text.
        config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Run pending migrations; a no-op (one quick query) when the database is already at head."""
    try:
        before, head = current_revision(engine), head_revision()
        if before == head:
            return
        crossed = _revisions_between(before, head)
        command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot open database {mask_url(str(engine.url))}: {one_line(exc.orig)}"
        ) from None
    except SQLAlchemyError as exc:
        raise DatabaseError(f"migration failed on {mask_url(str(engine.url))}: {one_line(exc)}") from None
    if before is not None and crossed & REFILL_REVISIONS:
        from tracker.store import refill_details  # the store imports the models; keep this module light

        count = refill_details(engine)
        log.info("filled the new detail fields of %d stored studies from their raw JSON", count)


def _revisions_between(lower: str | None, upper: str | None) -> set[str]:
    """The revisions an upgrade from `lower` (None: empty database) to `upper` applies."""
    if upper is None:
        return set()
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.iterate_revisions(upper, lower or "base")}
