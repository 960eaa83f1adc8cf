"""Commands: dashboard (serves the Streamlit app in dashboard/app.py through dashboard/server.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tracker.cli.app import AppContext, main, pass_app
from tracker.errors import ConfigError

if TYPE_CHECKING:
    from tracker.config import Settings

DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "127.0.0.1"


def dashboard_script() -> Path:
    """dashboard/server.py, found next to the installed `dashboard` package: the launcher that serves
    dashboard/app.py with the local map outlines and the security headers."""
    import dashboard  # the package only; importing it runs no Streamlit code

    for folder in dashboard.__path__:
        script = Path(folder) / "server.py"
        if script.is_file() and (Path(folder) / "app.py").is_file():
            return script
    raise ConfigError("dashboard/server.py not found; reinstall the package")


def streamlit_command(
    settings: Settings, *, port: int, address: str, environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The `streamlit run` command line and its environment: headless, no usage statistics, and the
    database URL handed over as TRACKER_DATABASE_URL (the app reads its settings from there)."""
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(dashboard_script()),
        "--server.headless=true",
        f"--server.port={port}",
        f"--server.address={address}",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=viewer",
        "--global.developmentMode=false",
    ]
    env = {
        **environ,
        "TRACKER_DATABASE_URL": settings.database_url,
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    return argv, env


@main.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="TCP port to serve on.",
)
@click.option(
    "--address",
    default=DEFAULT_ADDRESS,
    show_default=True,
    metavar="HOST",
    help="Interface to listen on (0.0.0.0 for every interface, e.g. in a container).",
)
@pass_app
def dashboard(app: AppContext, port: int, address: str) -> None:
    """Serve the dashboard on http://ADDRESS:PORT (Streamlit, headless).

    The database is created and migrated first, so an empty database shows how to fill it.
    """
    app.engine()  # migrate to head now: the dashboard itself only reads
    # The child process needs the whole environment (PATH, locale, TRACKER_* settings) plus the URL.
    argv, env = streamlit_command(app.settings, port=port, address=address, environ=os.environ)
    click.echo(f"Dashboard on http://{address}:{port} (Ctrl+C to stop)", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # exec, not a child process: signals (Ctrl+C, a service manager's stop) reach Streamlit directly.
    os.execve(sys.executable, argv, env)
