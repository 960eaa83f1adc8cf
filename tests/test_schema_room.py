"""The schema room: read-only commands never create schema, foreign databases are refused, migrations
cannot half-happen (one transaction, one lock), and a file half-migrated by an older release is repaired."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from tracker.cli import main
from tracker.db.migrate import Schema, head_revision, schema_state, upgrade_to_head
from tracker.db.models import Base
from tracker.db.session import make_engine

READ_ONLY_COMMANDS = (
    ["status"],
    ["changes"],
    ["subscribe", "list"],
    ["keys"],
    ["export", "--out", "{tmp}/out.csv"],
)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_read_only_commands_leave_an_empty_database_empty(
    db_url: str, tmp_path: Path, command: list[str]
) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # an empty file, as `touch trials.db` leaves it
    args = [part.format(tmp=tmp_path) for part in command]
    code, output = run("--database-url", db_url, *args)
    assert code == 1
    assert output.strip().splitlines() == [
        f"Error: no tracker database at {db_url} — run tracker sync or tracker import first"
    ]
    assert table_names(db_url) == set()
    if db_url.startswith("sqlite"):
        assert Path(db_url.removeprefix("sqlite:///")).stat().st_size == 0


def test_read_only_command_creates_no_file_or_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'trials.db'}"
    code, output = run("--database-url", url, "status")
    assert code == 1 and "no tracker database at" in output
    assert not (tmp_path / "new").exists()


def test_dashboard_refuses_an_empty_database_before_starting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    code, output = run("--database-url", url, "dashboard", "--port", "1")
    assert code == 1 and "no tracker database at" in output
    assert "Dashboard on" not in output


def foreign_database(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER)"))
        connection.execute(text("INSERT INTO invoices VALUES (1, 100)"))
    engine.dispose()


@pytest.mark.parametrize("command", [["status"], ["sync", "--base-url", "http://127.0.0.1:1"], ["keys"]])
def test_a_foreign_database_is_refused_by_every_command(db_url: str, command: list[str]) -> None:
    foreign_database(db_url)
    code, output = run("--database-url", db_url, *command)
    assert code == 1
    assert "holds tables that are not a tracker's (invoices)" in output
    assert "tracker db upgrade" in output
    assert table_names(db_url) == {"invoices"}


def test_db_upgrade_adopts_a_foreign_database_when_asked(db_url: str) -> None:
    foreign_database(db_url)
    code, output = run("--database-url", db_url, "db", "upgrade")
    assert code == 0, output
    assert table_names(db_url) >= {"invoices", "studies", "alembic_version"}
    assert run("--database-url", db_url, "status")[0] == 0


def test_schema_state_is_one_query_at_head(db_url: str) -> None:
    engine = make_engine(db_url)
    assert schema_state(engine).schema is Schema.MISSING
    upgrade_to_head(engine)
    statements: list[str] = []

    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert schema_state(engine).schema is Schema.CURRENT
    assert [s for s in statements if not s.upper().startswith("PRAGMA")] == [
        "SELECT version_num FROM alembic_version"
    ]
    engine.dispose()


def test_head_revision_read_from_the_files_matches_alembic() -> None:
    from alembic.script import ScriptDirectory

    from tracker.db.migrate import alembic_config

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_the_start_up_check_imports_no_alembic(sqlite_url: str) -> None:
    assert run("--database-url", sqlite_url, "db", "upgrade")[0] == 0
    probe = textwrap.dedent(
        f"""
        import sys
        from tracker.db.migrate import open_for_reading, open_for_writing
        open_for_reading({sqlite_url!r}).dispose()
        open_for_writing({sqlite_url!r}).dispose()
        print("alembic" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def half_migrated_file(url: str, *, with_rows: bool = False) -> None:
    """What an older release left when killed mid-migration: every table, an empty alembic_version."""
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        if with_rows:
            connection.execute(
                text(
                    "INSERT INTO subscriptions (email, filters, created_at) "
                    "VALUES ('a@b.org', '{}', '2026-01-01')"
                )
            )
    engine.dispose()


def test_a_half_migrated_empty_file_is_repaired(db_url: str) -> None:
    half_migrated_file(db_url)
    code, output = run("--database-url", db_url, "status")
    assert code == 0, output
    engine = make_engine(db_url)
    assert schema_state(engine).schema is Schema.CURRENT
    engine.dispose()


def test_a_half_migrated_file_holding_rows_is_refused_precisely(sqlite_url: str) -> None:
    half_migrated_file(sqlite_url, with_rows=True)
    code, output = run("--database-url", sqlite_url, "status")
    assert code == 1
    assert "no recorded schema revision" in output and "subscriptions hold rows" in output
    assert "subscriptions" in table_names(sqlite_url)


# A new database's creation that stops after its third table and waits to be killed: the parent kills it
# with SIGKILL.
_KILLED_MIGRATION = """
import sys, time
from pathlib import Path
from sqlalchemy import Table, event
from tracker.db.migrate import upgrade_to_head
from tracker.db.session import make_engine

marker = Path(sys.argv[2])
created = []

@event.listens_for(Table, "after_create")
def hang_after_the_third(table, connection, **kwargs):
    created.append(table.name)
    if len(created) == 3:
        marker.write_text(",".join(created))
        while True:
            time.sleep(1)

upgrade_to_head(make_engine(sys.argv[1]))
"""


def test_sigkill_while_a_new_sqlite_database_is_created_leaves_a_working_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    marker = tmp_path / "three-tables-created"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_MIGRATION, url, str(marker)])
    try:
        for _ in range(600):  # wait for the marker, not for a time: each poll is one short wait
            if marker.exists() or child.poll() is not None:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.5)
        assert marker.exists(), "the migration never reached its third table"
        # Inside the migration's transaction, the file already has those tables.
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    # The killed transaction left nothing behind: no tables, no empty alembic_version.
    assert table_names(url) == set()
    engine = make_engine(url)
    assert schema_state(engine).schema is Schema.MISSING
    engine.dispose()
    upgrade = [sys.executable, "-m", "tracker", "--database-url", url, "db", "upgrade"]
    result = subprocess.run(upgrade, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert run("--database-url", url, "status")[0] == 0


def test_concurrent_first_starts_wait_rather_than_fail(db_url: str) -> None:
    for attempt in range(3):
        url = db_url
        if db_url.startswith("sqlite"):
            url = db_url.replace("trials.db", f"trials-{attempt}.db")
        elif attempt:
            break  # one Postgres database per test
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "tracker", "--database-url", url, "db", "upgrade"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outcomes = [(child.wait(), child.stderr.read() if child.stderr else "") for child in children]
        for child in children:
            for stream in (child.stdout, child.stderr):
                if stream:
                    stream.close()
        assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
        engine = make_engine(url)
        assert schema_state(engine).schema is Schema.CURRENT
        engine.dispose()


def test_a_non_numeric_port_is_one_clear_line() -> None:
    code, output = run("--database-url", "postgresql+psycopg://user@localhost:54x2/tracker", "status")
    assert code == 2
    assert output.strip().splitlines() == [
        "Error: invalid database URL postgresql+psycopg://user@localhost:54x2/tracker: "
        "the port is not a number"
    ]


def test_read_only_commands_open_a_sqlite_file_read_only(sqlite_url: str) -> None:
    from tracker.db.migrate import open_for_reading

    assert run("--database-url", sqlite_url, "db", "upgrade")[0] == 0
    reader = open_for_reading(sqlite_url)
    with reader.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM studies")).scalar() == 0
        with pytest.raises(Exception, match="readonly"):
            connection.execute(text("DELETE FROM studies"))
    reader.dispose()
