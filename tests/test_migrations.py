"""The schema is Alembic's: migrations and models agree on SQLite and Postgres, and a new database built
in one step from the models is the one the migrations build revision by revision."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, UniqueConstraint, inspect

from tracker.db.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from tracker.db.models import Base
from tracker.db.session import make_engine


def test_autogenerate_finds_no_difference(db_url: str) -> None:
    engine = make_engine(db_url)
    command.upgrade(alembic_config(engine), "head")  # every revision in turn, not the one-step creation
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


def test_a_new_database_has_the_schema_the_migrations_build(db_url: str) -> None:
    # `upgrade_to_head` creates an empty database from the models at the head revision; a database
    # migrated revision by revision must end up with the same tables, columns, keys and indexes.
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()
    created = schema_of(engine)
    command.downgrade(alembic_config(engine), "base")
    command.upgrade(alembic_config(engine), "head")
    assert current_revision(engine) == head_revision()
    migrated = schema_of(engine)
    engine.dispose()
    assert created.keys() == migrated.keys()
    for table in created:
        assert created[table] == migrated[table], table


def schema_of(engine: Engine) -> dict[str, dict[str, Any]]:
    """Each table's columns, keys, indexes and constraints as the database reports them (order-free)."""
    inspector = inspect(engine)
    described: dict[str, dict[str, Any]] = {}
    for table in inspector.get_table_names():
        described[table] = {
            "columns": {
                column["name"]: (
                    str(column["type"]),
                    column["nullable"],
                    column.get("default"),
                    column.get("autoincrement"),
                )
                for column in inspector.get_columns(table)
            },
            "primary_key": inspector.get_pk_constraint(table),
            "foreign_keys": sorted(map(repr, inspector.get_foreign_keys(table))),
            "indexes": sorted(map(repr, inspector.get_indexes(table))),
            "unique": sorted(map(repr, inspector.get_unique_constraints(table))),
            "checks": sorted(map(repr, inspector.get_check_constraints(table))),
        }
    return described


def test_every_child_of_a_study_is_found_by_an_index_that_starts_with_its_study() -> None:
    # The child tables carry no index of their own on registration_id (0010 dropped them): lookups and
    # cascading deletes by study rely on a unique index or constraint that starts with the column.
    for table in Base.metadata.sorted_tables:
        if "registration_id" not in table.columns or table.primary_key.columns.keys() == ["registration_id"]:
            continue
        uniques = [index for index in table.indexes if index.unique] + [
            constraint for constraint in table.constraints if isinstance(constraint, UniqueConstraint)
        ]
        assert "registration_id" in {next(iter(unique.columns)).name for unique in uniques}, table.name
