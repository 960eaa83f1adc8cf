"""`tracker status` and `tracker changes`: JSON shapes, human output and argument errors."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from click.testing import CliRunner
from fake_ctgov import FakeCtgov, make_study
from sqlalchemy import event

from tracker.cli import main
from tracker.db.session import make_engine
from tracker.status import ChangeQuery, list_changes


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


@pytest.fixture
def synced(fake_ctgov: FakeCtgov, db_url: str) -> str:
    """A database after a first sync and a second one that saw one status change."""
    fake_ctgov.set_studies([make_study(f"NCT{n:08d}", status="RECRUITING") for n in range(1, 6)])
    sync = ["--database-url", db_url, "sync", "--base-url", fake_ctgov.url, "--requests-per-second", "0"]
    assert run(*sync)[0] == 0
    fake_ctgov.data_timestamp = "2025-09-26T09:00:00"
    fake_ctgov.upsert_study(make_study("NCT00000002", status="COMPLETED", last_update="2025-09-26"))
    assert run(*sync)[0] == 0
    return db_url


def test_status_json(synced: str) -> None:
    code, output = run("--database-url", synced, "status", "--json")
    assert code == 0
    summary = json.loads(output)
    assert summary["studies"] == 5
    assert summary["by_status"] == {"RECRUITING": 4, "COMPLETED": 1}
    assert summary["data_timestamp"] == "2025-09-26T09:00:00"
    assert summary["watermark"] == "2025-09-26"
    last = summary["last_sync"]
    assert (last["mode"], last["outcome"]) == ("incremental", "success")
    assert last["started"] and last["finished"]
    assert last["counts"]["updated"] == 1
    assert set(last["counts"]) >= {"inserted", "updated", "unchanged", "rejected", "removed", "pages"}


def test_status_masks_the_password() -> None:
    # A URL that cannot connect still shows masked in the error line, never the password.
    code, output = run("--database-url", "postgresql+psycopg://u:s3cret@127.0.0.1:1/x", "status")
    assert code != 0
    assert "s3cret" not in output


def test_status_human(synced: str) -> None:
    code, output = run("--database-url", synced, "status")
    assert code == 0
    assert "Studies:         5" in output
    assert "Last run:        incremental success" in output
    assert "Watermark:       2025-09-26" in output


def test_status_of_an_empty_tracker_database(sqlite_url: str) -> None:
    assert run("--database-url", sqlite_url, "db", "upgrade")[0] == 0
    code, output = run("--database-url", sqlite_url, "status", "--json")
    summary = json.loads(output)
    assert (code, summary["studies"], summary["last_sync"], summary["watermark"]) == (0, 0, None, None)
    assert summary["database"] == sqlite_url
    assert (summary["data_as_of"], summary["data_as_of_text"]) == (None, "no data yet")


def test_status_says_data_as_of_the_registry_timestamp(synced: str) -> None:
    code, output = run("--database-url", synced, "status")
    assert code == 0
    assert "data as of 2025-09-26 (registry data timestamp of the last clean sync)" in output


def test_changes_json_newest_first(synced: str) -> None:
    code, output = run("--database-url", synced, "changes", "--json", "--include-baseline")
    assert code == 0
    events = json.loads(output)
    newest = events[0]
    assert set(newest) == {
        "registration_id",
        "title",
        "detected_at",
        "kind",
        "field",
        "old",
        "new",
        "baseline",
    }
    assert newest["title"] == "Study NCT00000002"
    assert (newest["registration_id"], newest["kind"], newest["old"], newest["new"]) == (
        "NCT00000002",
        "status",
        "RECRUITING",
        "COMPLETED",
    )
    assert newest["baseline"] is False
    assert [e["detected_at"] for e in events] == sorted((e["detected_at"] for e in events), reverse=True)
    assert sum(e["kind"] == "new" for e in events) == 5


def test_changes_filters(synced: str) -> None:
    today = date.today().isoformat()
    _, output = run("--database-url", synced, "changes", "--json", "--kind", "status")
    assert [(e["registration_id"], e["old"], e["new"]) for e in json.loads(output)] == [
        ("NCT00000002", "RECRUITING", "COMPLETED")
    ]
    _, output = run(
        "--database-url", synced, "changes", "--json", "--since", today, "--until", today,
        "--include-baseline",
    )  # fmt: skip
    assert len(json.loads(output)) == 6
    _, output = run("--database-url", synced, "changes", "--json", "--until", "2000-01-01")
    assert json.loads(output) == []
    _, output = run(
        "--database-url", synced, "changes", "--kind", "status,new", "--limit", "2", "--include-baseline"
    )  # fmt: skip
    assert len(output.strip().splitlines()) == 4  # two events, each with its title line


def test_changes_hide_the_baseline_and_show_titles(synced: str) -> None:
    code, output = run("--database-url", synced, "changes")
    assert code == 0
    # The first load's five "new" events are the baseline; only the later status change is news.
    assert (
        output.strip()
        .splitlines()[0]
        .endswith("NCT00000002  status (overall_status): RECRUITING → COMPLETED")
    )
    assert output.strip().splitlines()[1].strip() == "Study NCT00000002"
    assert len(output.strip().splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "Error: invalid date for --since: 'yesterday' (expected YYYY-MM-DD)"),
        (["--until", "2025-13-01"], "Error: invalid date for --until: '2025-13-01' (expected YYYY-MM-DD)"),
        (["--kind", "bogus"], "Error: unknown change kind 'bogus'"),
        (
            ["--since", "2025-02-01", "--until", "2025-01-31"],
            "Error: --since 2025-02-01 is after --until 2025-01-31",
        ),
    ],
)
def test_changes_argument_errors(sqlite_url: str, args: list[str], message: str) -> None:
    code, output = run("--database-url", sqlite_url, "changes", *args)
    assert code == 2
    assert output.strip().startswith(message)
    assert len(output.strip().splitlines()) == 1


def test_db_upgrade(sqlite_url: str) -> None:
    code, output = run("--database-url", sqlite_url, "db", "upgrade")
    assert code == 0
    assert output.startswith(f"Database {sqlite_url} at revision ")


def test_status_json_masks_the_database_password(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite URLs carry no password")
    # The local server trusts the connection, so any password gets in; it must never be printed.
    with_password = db_url.replace("postgres@", "postgres:s3cret@", 1)
    assert run("--database-url", with_password, "db", "upgrade")[0] == 0
    code, output = run("--database-url", with_password, "status", "--json")
    assert code == 0, output
    assert "s3cret" not in output
    assert json.loads(output)["database"] == db_url.replace("postgres@", "postgres:***@", 1)


def test_changes_limit_reads_only_the_newest_events_from_the_database(synced: str) -> None:
    engine = make_engine(synced)
    everything = list_changes(engine, ChangeQuery())
    statements: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", remember)
    try:
        newest = list_changes(engine, ChangeQuery(kinds=("new", "status"), limit=2))
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert newest == [e for e in everything if e["kind"] in ("new", "status")][:2]
    (query,) = [s for s in statements if "change_events" in s]  # one query, limited by the database
    assert "LIMIT" in query.upper() and "kind IN" in query.replace('"', "").replace("change_events.", "")
