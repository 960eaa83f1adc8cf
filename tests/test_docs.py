"""The README documents every command and every environment setting (a new one without docs fails here)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from tracker.cli import main
from tracker.config import FIELD_NAMES
from tracker.export import EXPORT_HEADER

README = (Path(__file__).parents[1] / "README.md").read_text()


def command_paths(group: click.Group, prefix: str = "tracker") -> list[str]:
    paths = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        paths.append(path)
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, path))
    return paths


@pytest.mark.parametrize("path", command_paths(main))
def test_every_command_is_in_the_cli_reference(path: str) -> None:
    assert f"`{path}" in README, f"README has no CLI reference entry for `{path}`"


@pytest.mark.parametrize("path", command_paths(main))
def test_every_command_has_help(path: str) -> None:
    command: click.Command = main
    for name in path.split()[1:]:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert command.help and command.help.strip()


@pytest.mark.parametrize("field", sorted(FIELD_NAMES))
def test_every_setting_is_documented(field: str) -> None:
    assert f"TRACKER_{field.upper()}" in README


@pytest.mark.parametrize("column", EXPORT_HEADER)
def test_every_export_column_is_documented(column: str) -> None:
    assert f"`{column}`" in README
