"""`tracker dashboard`: the command line it hands to Streamlit, and its option errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tracker.cli import main
from tracker.cli.dashboard_cmds import dashboard_script, streamlit_command
from tracker.config import load_settings


def test_streamlit_command_is_headless_without_usage_stats_and_passes_the_database_url() -> None:
    settings = load_settings(database_url="sqlite:////srv/trials.db")
    argv, env = streamlit_command(settings, port=8123, address="0.0.0.0", environ={"PATH": "/usr/bin"})
    assert argv[1:4] == ["-m", "streamlit", "run"]
    # The launcher (local map outlines, security headers) that serves app.py beside it.
    assert Path(argv[4]) == dashboard_script() and dashboard_script().name == "server.py"
    assert (dashboard_script().parent / "app.py").is_file()
    assert "--server.headless=true" in argv
    assert "--server.port=8123" in argv and "--server.address=0.0.0.0" in argv
    assert "--browser.gatherUsageStats=false" in argv
    assert env["TRACKER_DATABASE_URL"] == "sqlite:////srv/trials.db"
    assert env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
    assert env["PATH"] == "/usr/bin"  # the rest of the environment is kept


def test_dashboard_help_names_the_options() -> None:
    result = CliRunner().invoke(main, ["dashboard", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--address" in result.output


def test_bad_port_is_one_line_error() -> None:
    result = CliRunner().invoke(main, ["dashboard", "--port", "70000"])
    assert result.exit_code == 2
    assert "70000 is not in the range 1<=x<=65535" in result.output
    assert "Traceback" not in result.output


def test_unusable_database_url_is_one_line_error_before_streamlit_starts() -> None:
    result = CliRunner().invoke(main, ["--database-url", "not a url", "dashboard"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
