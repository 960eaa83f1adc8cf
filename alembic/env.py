"""Alembic environment: runs migrations on the connection or engine handed over by tracker.db.migrate,
or on TRACKER_DATABASE_URL (plain `alembic upgrade head`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tracker.config import load_settings
from tracker.db.models import Base
from tracker.db.session import make_engine

target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # APScheduler's job store creates and owns its own table.
    return not (type_ == "table" and name is not None and name.startswith("apscheduler_"))


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        # tracker.db.migrate holds this connection's transaction (and its lock) open around the whole run.
        _migrate(connection)
        return
    engine = context.config.attributes.get("engine") or make_engine(load_settings().database_url)
    with engine.begin() as connection:
        _migrate(connection)


run_migrations()
