"""Commands: dashboard (serves the Streamlit app in dashboard/app.py through dashboard/server.py) and demo
(a shipped sample, then the dashboard)."""

from __future__ import annotations

import errno
import os
import socket
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


def check_port_free(address: str, port: int) -> None:
    """Fail before anything is printed or exec'd when the port is taken (Streamlit would only say so after
    the "Dashboard on …" line, and then exit)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {address} is already in use; stop what listens there or pass --port"
                ) from None
            raise ConfigError(f"cannot listen on {address}:{port}: {exc.strerror}") from None


def serve(app: AppContext, port: int, address: str) -> None:
    """Check the database and the port, then become the Streamlit server (exec)."""
    app.reader()  # checks the schema (read-only, creating nothing) before the server starts
    check_port_free(address, port)
    # The child process needs the whole environment (PATH, locale, TRACKER_* settings) plus the URL.
    argv, env = streamlit_command(app.settings, port=port, address=address, environ=os.environ)
    click.echo(f"Dashboard on http://{address}:{port} (Ctrl+C to stop)", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # exec, not a child process: signals (Ctrl+C, a service manager's stop) reach Streamlit directly.
    os.execve(sys.executable, argv, env)


_PORT_OPTION = click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="TCP port to serve on.",
)
_ADDRESS_OPTION = click.option(
    "--address",
    default=DEFAULT_ADDRESS,
    show_default=True,
    metavar="HOST",
    help="Interface to listen on (0.0.0.0 for every interface, e.g. in a container).",
)


@main.command()
@_PORT_OPTION
@_ADDRESS_OPTION
@pass_app
def dashboard(app: AppContext, port: int, address: str) -> None:
    """Serve the dashboard on http://ADDRESS:PORT (Streamlit, headless).

    The dashboard only reads: the database must have been filled by `tracker sync` or `tracker import`.
    """
    serve(app, port, address)


@main.command()
@_PORT_OPTION
@_ADDRESS_OPTION
@click.option("--no-serve", is_flag=True, help="Only load the sample; do not start the dashboard.")
@pass_app
def demo(app: AppContext, port: int, address: str, no_serve: bool) -> None:
    """Load a small real sample of MS trials shipped with the package, then serve the dashboard.

    No network needed. Use a database of its own (`make demo` uses sqlite:///data/demo.db): a database
    that already holds other studies is refused, so the sample never mixes with real data.
    """
    from tracker.demo import load_demo

    result = load_demo(app.engine())
    click.echo(f"Demo sample: {result.summary()}", err=True)
    if not no_serve:
        serve(app, port, address)
