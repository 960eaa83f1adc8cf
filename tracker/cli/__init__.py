"""Command-line interface. `main` is the console script `tracker`; each module adds its commands."""

from tracker.cli import (  # noqa: F401  (importing registers the commands)
    classify_cmds,
    dashboard_cmds,
    digest_cmds,
    history_cmds,
    sync_cmds,
)
from tracker.cli.app import main

__all__ = ["main"]
