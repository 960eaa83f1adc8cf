"""The ledger's light table views match the schema, and the read-only commands stay off the ORM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Date, DateTime, Integer, String, Text

from tracker.db.models import Base
from tracker.ledger import LIGHT_TABLES

PROJECT = Path(__file__).resolve().parents[1]


def _kind(column_type: object) -> type:
    """The type family the ledger must read a column as (String and Text read alike)."""
    for family in (Boolean, DateTime, Date, Integer):
        if isinstance(column_type, family):
            return family
    assert isinstance(column_type, (String, Text)), column_type
    return String


@pytest.mark.parametrize("light", LIGHT_TABLES, ids=lambda table: table.name)
def test_every_light_column_is_a_model_column_of_the_same_type(light) -> None:  # type: ignore[no-untyped-def]
    model = Base.metadata.tables[light.name]
    for column in light.columns:
        assert column.name in model.columns, f"{light.name}.{column.name} is not in the schema"
        assert _kind(column.type) is _kind(model.columns[column.name].type), f"{light.name}.{column.name}"


LOADED_AFTER = """
import sys
from tracker.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    heavy = ("sqlalchemy.orm", "tracker.db.models", "pydantic_settings", "alembic", "pandas")
    print(" ".join(name for name in heavy if name in sys.modules) or "-", file=sys.stderr)
"""


@pytest.mark.parametrize("command", [["status"], ["changes", "--limit", "5"]], ids=lambda c: c[0])
def test_status_and_changes_import_neither_the_orm_nor_the_models(tmp_path: Path, command: list[str]) -> None:
    database_url = f"sqlite:///{tmp_path / 'trials.db'}"
    data = PROJECT / "tests" / "fixtures" / "gold_dev_studies.jsonl"
    base = [sys.executable, "-m", "tracker", "--database-url", database_url]
    subprocess.run([*base, "import", str(data)], check=True, capture_output=True, cwd=PROJECT, timeout=300)
    shown = subprocess.run(
        [sys.executable, "-c", LOADED_AFTER, "--database-url", database_url, *command],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.strip().splitlines()[-1] == "-"
