"""Commands: classify_cmds."""

from __future__ import annotations

from tracker.cli.app import main, pass_app  # noqa: F401
