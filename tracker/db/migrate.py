"""The schema room: what a database holds, and bringing it to the newest schema through Alembic.

Every command starts with one cheap revision query (`schema_state`); Alembic is imported only when a
migration must run. An empty database is created in one step from the models and stamped at the head
revision (Alembic's recipe for a new database); one that holds an older schema is migrated revision by
revision. Commands that only read never create schema (`require_schema`); commands that write
create or migrate it (`ensure_schema`). A database that holds tables but is not a tracker's is refused
unless `tracker db upgrade` is run on it explicitly.

Migrations cannot half-happen: each runs in one transaction (SQLite supports transactional DDL once the
driver stops managing transactions itself) and under a lock (SQLite `BEGIN IMMEDIATE`, a Postgres advisory
lock), so two first starts at once queue instead of failing, and a killed migration leaves the file as it
was. A file half-migrated by an older release (tables but an empty `alembic_version`) is repaired when
its tables hold no rows, and refused with the tables' names otherwise.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from tracker.db.session import make_engine, mask_url, no_database_error, one_line
from tracker.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Revisions that add fields derived from the raw JSON every study keeps: an upgrade across one refills
# the existing rows through the store (migrations stay schema-only and never import application code).
REFILL_REVISIONS = frozenset({"0005_study_details", "0006_registrations"})

log = logging.getLogger(__name__)
VERSIONS_DIR = PROJECT_ROOT / "alembic" / "versions"
VERSION_TABLE = "alembic_version"
# Tables other libraries own in a tracker database (APScheduler's job store creates its own).
FOREIGN_TABLE_PREFIXES = ("apscheduler_", "sqlite_")
# Any constant works; it only has to be the same for every tracker process on a Postgres database.
POSTGRES_MIGRATION_LOCK = 0x7472_6163_6B65_72  # "tracker"

_REVISION = re.compile(r"^revision(?::[^=]+)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision(?::[^=]+)?=\s*(.+)$", re.MULTILINE)


class Schema(Enum):
    MISSING = "missing"  # no tables at all (a new file, an empty database)
    CURRENT = "current"  # at this release's head revision
    BEHIND = "behind"  # a tracker database at an older revision
    AHEAD = "ahead"  # a revision this release does not know (a newer tracker wrote it)
    HALF = "half"  # tracker tables but no recorded revision: a migration was killed by an older release
    FOREIGN = "foreign"  # tables, none of them a tracker's bookkeeping


@dataclass(frozen=True, slots=True)
class SchemaState:
    schema: Schema
    revision: str | None
    tables: tuple[str, ...] = ()


def alembic_config(engine: Engine | None = None, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    # env.py picks the live connection (or engine) up from here, so passwords never pass through ini text.
    if connection is not None:
        config.attributes["connection"] = connection
    if engine is not None:
        config.attributes["engine"] = engine
    return config


@cache
def _revision_graph() -> dict[str, tuple[str, ...]]:
    """revision → its down revisions, read from the migration files' text (no Alembic import)."""
    graph: dict[str, tuple[str, ...]] = {}
    for path in sorted(VERSIONS_DIR.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        down = _DOWN_REVISION.search(source)
        if revision is None:
            continue
        graph[revision.group(1)] = tuple(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1))) if down else ()
    return graph


def head_revision() -> str | None:
    """The newest revision: the one no other migration revises."""
    graph = _revision_graph()
    revised = {down for downs in graph.values() for down in downs}
    heads = sorted(set(graph) - revised)
    if len(heads) > 1:
        raise DatabaseError(f"migrations have several heads ({', '.join(heads)}); reinstall the package")
    return heads[0] if heads else None


def _recorded_revision(connection: Connection) -> tuple[bool, str | None]:
    """(version table exists, revision recorded in it) in one query on the happy path."""
    query = text(f"SELECT version_num FROM {VERSION_TABLE}")
    if connection.in_transaction():  # inside the migration: a failed query must not abort it (Postgres)
        savepoint = connection.begin_nested()
        try:
            row = connection.execute(query).first()
        except SQLAlchemyError:
            savepoint.rollback()
            return False, None
        savepoint.commit()
        return True, row[0] if row else None
    try:
        row = connection.execute(query).first()
    except SQLAlchemyError:
        connection.rollback()
        return False, None
    return True, row[0] if row else None


def _state_on(connection: Connection) -> SchemaState:
    has_version_table, revision = _recorded_revision(connection)
    head = head_revision()
    if revision is not None:
        if revision == head:
            return SchemaState(Schema.CURRENT, revision)
        known = revision in _revision_graph()
        return SchemaState(Schema.BEHIND if known else Schema.AHEAD, revision)
    tables = tuple(
        sorted(
            name
            for name in inspect(connection).get_table_names()
            if name != VERSION_TABLE and not name.startswith(FOREIGN_TABLE_PREFIXES)
        )
    )
    if has_version_table:
        return SchemaState(Schema.HALF if tables else Schema.MISSING, None, tables)
    return SchemaState(Schema.FOREIGN if tables else Schema.MISSING, None, tables)


def schema_state(engine: Engine) -> SchemaState:
    """What the database holds, from one revision query when it is a current tracker database."""
    try:
        with engine.connect() as connection:
            return _state_on(connection)
    except OperationalError as exc:
        url = mask_url(str(engine.url))
        raise DatabaseError(f"cannot open database {url}: {one_line(exc.orig)}") from None


def current_revision(engine: Engine) -> str | None:
    return schema_state(engine).revision


def _refusal(raw_url: str, state: SchemaState) -> DatabaseError | None:
    url = mask_url(raw_url)
    if state.schema is Schema.FOREIGN:
        shown = ", ".join(state.tables[:5]) + ("…" if len(state.tables) > 5 else "")
        return DatabaseError(
            f"{url} holds tables that are not a tracker's ({shown}); use another database, "
            "or run `tracker db upgrade` to add the tracker's tables to this one"
        )
    if state.schema is Schema.AHEAD:
        return DatabaseError(
            f"{url} is at schema revision {state.revision}, newer than this tracker knows "
            f"({head_revision()}); upgrade the tracker package"
        )
    return None


def open_for_reading(url: str) -> Engine:
    """An engine for commands that only read: the database must already be a tracker's, and it is opened
    read-only (SQLite mode=ro), so nothing is ever created in it. An older tracker schema is migrated
    first through a writable engine (it already holds a tracker's data)."""
    engine = make_engine(url, read_only=True)
    state = schema_state(engine)
    if state.schema is Schema.MISSING:
        engine.dispose()
        raise no_database_error(url)
    refusal = _refusal(url, state)
    if refusal is not None:
        engine.dispose()
        raise refusal
    if state.schema in (Schema.BEHIND, Schema.HALF):
        writer = make_engine(url)
        try:
            upgrade_to_head(writer)
        finally:
            writer.dispose()
    return engine


def open_for_writing(url: str, *, explicit: bool = False) -> Engine:
    """An engine for commands that write, its schema created or migrated to head (`ensure_schema`)."""
    engine = make_engine(url)
    ensure_schema(engine, explicit=explicit)
    return engine


def ensure_schema(engine: Engine, *, explicit: bool = False) -> SchemaState:
    """For commands that write: create or migrate the schema. A foreign database is refused unless
    `explicit` (the user ran `tracker db upgrade` on it)."""
    state = schema_state(engine)
    if state.schema is Schema.CURRENT:
        return state
    refusal = _refusal(str(engine.url), state)
    if refusal is not None and not (explicit and state.schema is Schema.FOREIGN):
        raise refusal
    upgrade_to_head(engine, adopt_foreign=explicit)
    return schema_state(engine)


def upgrade_to_head(engine: Engine, *, adopt_foreign: bool = True) -> None:
    """Run pending migrations in one locked transaction; a no-op (one quick query) when at head."""
    url = mask_url(str(engine.url))
    if schema_state(engine).schema is Schema.CURRENT:
        return
    migration_engine = _migration_engine(engine)
    before: str | None = None  # the revision migrated from, when the database already had one
    try:
        with migration_engine.begin() as connection:
            _take_migration_lock(connection)
            # Another process may have migrated while this one waited for the lock.
            state = _state_on(connection)
            if state.schema is Schema.CURRENT:
                return
            if state.schema is Schema.FOREIGN and not adopt_foreign:
                raise _refusal(str(engine.url), state) or DatabaseError(f"{url} is not a tracker database")
            if state.schema is Schema.HALF:
                _repair_half_migrated(connection, state, url)
            if state.schema is Schema.MISSING:
                _create_at_head(connection)
                return
            from alembic import command

            before = state.revision if state.schema is Schema.BEHIND else None
            command.upgrade(alembic_config(connection=connection), "head")
    except OperationalError as exc:
        raise DatabaseError(f"cannot migrate database {url}: {one_line(exc.orig)}") from None
    except SQLAlchemyError as exc:
        raise DatabaseError(f"migration failed on {url}: {one_line(exc)}") from None
    finally:
        if migration_engine is not engine:
            migration_engine.dispose()
    if before is not None and _revisions_after(before) & REFILL_REVISIONS:
        from tracker.store import refill_details  # the store imports the models; keep this module light

        count = refill_details(engine)
        log.info("filled the new detail fields of %d stored studies from their raw JSON", count)


def _create_at_head(connection: Connection) -> None:
    """An empty database gets the head schema in one step: the models' tables and the head revision
    recorded, as Alembic's cookbook builds a new database. Replaying every revision on nothing took ten
    times as long on a user's first sync; tests/test_migrations.py checks both routes build the same
    schema on SQLite and Postgres."""
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

    from tracker.db.models import Base

    Base.metadata.create_all(connection)
    # Alembic's own version table, as `alembic stamp` would create it.
    versions = Table(
        VERSION_TABLE,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
    )
    versions.create(connection, checkfirst=True)
    connection.execute(versions.delete())
    connection.execute(versions.insert().values(version_num=head_revision()))


def _revisions_after(revision: str) -> set[str]:
    """The revisions an upgrade from `revision` to head applies (read from the migration files)."""
    graph = _revision_graph()
    applied: set[str] = set()
    pending = [head_revision()]
    while pending:
        current = pending.pop()
        if current is None or current == revision or current in applied:
            continue
        applied.add(current)
        pending.extend(graph.get(current, ()))
    return applied


def _migration_engine(engine: Engine) -> Engine:
    """Postgres: the engine itself (its DDL is transactional). SQLite: a private engine on which the
    driver leaves transactions to SQLAlchemy, so CREATE TABLE joins the one `BEGIN IMMEDIATE`."""
    if engine.dialect.name != "sqlite":
        return engine
    migration_engine = create_engine(engine.url, poolclass=NullPool)

    @event.listens_for(migration_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver would otherwise commit before each DDL
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=60000")  # a concurrent first start waits for the lock
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(migration_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return migration_engine


def _take_migration_lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Held until the transaction ends; a second first start waits here instead of failing.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})


def _repair_half_migrated(connection: Connection, state: SchemaState, url: str) -> None:
    """Tables without a recorded revision: drop them when they hold nothing, else refuse precisely."""
    quote = connection.dialect.identifier_preparer.quote
    holding = [
        name
        for name in state.tables
        if connection.execute(text(f"SELECT 1 FROM {quote(name)} LIMIT 1")).first() is not None
    ]
    if holding:
        raise DatabaseError(
            f"{url} has tracker tables but no recorded schema revision (an interrupted migration), and "
            f"{', '.join(holding)} hold rows; restore a backup, or move the file aside and run tracker sync"
        )
    cascade = " CASCADE" if connection.dialect.name == "postgresql" else ""
    for name in _children_first(connection, state.tables):
        connection.execute(text(f"DROP TABLE IF EXISTS {quote(name)}{cascade}"))
    connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))


def _children_first(connection: Connection, tables: tuple[str, ...]) -> list[str]:
    """Tables ordered so each is dropped before the tables it references (SQLite checks foreign keys
    on DROP TABLE, and the pragma that would switch that off cannot change inside a transaction)."""
    inspector = inspect(connection)
    parents = {
        name: {fk["referred_table"] for fk in inspector.get_foreign_keys(name)} & set(tables) - {name}
        for name in tables
    }
    ordered: list[str] = []
    remaining = dict(parents)
    while remaining:
        # a table nobody remaining still references can go now
        referenced = {parent for deps in remaining.values() for parent in deps}
        ready = sorted(name for name in remaining if name not in referenced) or sorted(remaining)[:1]
        for name in ready:
            ordered.append(name)
            del remaining[name]
    return ordered
