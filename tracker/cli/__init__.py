"""Command-line interface. `main` is the console script `tracker`; each module adds its commands.

The command modules import only click at load time; each command imports its libraries when it runs, so
`tracker --help` and the quick read-only commands do not pay for pandas, the digest stack or alembic.
"""

from tracker.cli import (  # noqa: F401  (importing registers the commands)
    classify_cmds,
    dashboard_cmds,
    digest_cmds,
    history_cmds,
    link_cmds,
    sync_cmds,
)
from tracker.cli.app import main

__all__ = ["main"]
