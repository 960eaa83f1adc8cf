"""The schema exists only through Alembic: migrations and models agree on SQLite and Postgres."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from tracker.db.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from tracker.db.models import Base
from tracker.db.session import make_engine


def test_autogenerate_finds_no_difference(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_upgrade_is_idempotent_and_downgrade_removes_everything(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    command.downgrade(alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
