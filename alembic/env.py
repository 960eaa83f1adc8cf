"""Alembic environment: runs migrations on the engine handed over by tracker, or on TRACKER_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from tracker.config import load_settings
from tracker.db.models import Base
from tracker.db.session import make_engine

target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # APScheduler's job store creates and owns its own table.
    return not (type_ == "table" and name is not None and name.startswith("apscheduler_"))


def run_migrations() -> None:
    engine = context.config.attributes.get("engine") or make_engine(load_settings().database_url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


run_migrations()
