"""Shared fixtures: a fresh database per test on SQLite always, and on Postgres when it is reachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_ctgov import FakeCtgov
from sqlalchemy import Engine, create_engine, text

from tracker.db.migrate import upgrade_to_head
from tracker.db.session import make_engine

FIXTURES = Path(__file__).parent / "fixtures"
POSTGRES_ADMIN_URL = os.environ.get(
    "TRACKER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_skip_reason() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "no Postgres here"
        return f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} ({type(exc).__name__}); start it to run"
    return None


_POSTGRES_SKIP = _postgres_skip_reason()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database (no tables yet): SQLite file, or a new Postgres database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trials.db'}"
        return
    if _POSTGRES_SKIP:
        if os.environ.get("TRACKER_REQUIRE_POSTGRES"):  # CI starts Postgres: its absence is a failure there
            pytest.fail(_POSTGRES_SKIP)
        pytest.skip(_POSTGRES_SKIP)
    name = f"tracker_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a fresh database migrated to head."""
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'trials.db'}"


# --- fake ClinicalTrials.gov ------------------------------------------------------------------------------


@pytest.fixture
def fake_ctgov() -> Iterator[FakeCtgov]:
    """A fake ClinicalTrials.gov API v2 on 127.0.0.1 (empty; tests add studies with `set_studies`)."""
    with FakeCtgov() as server:
        yield server
