"""`make demo` / `tracker demo`: the shipped sample loads in a fresh clone with no network, and the
dashboard command checks its port before it says where it serves."""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker.cli import main
from tracker.db.session import make_engine
from tracker.demo import sample_path
from tracker.query import data_as_of

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "ms_sample.jsonl"


def test_the_shipped_sample_is_the_real_fixture_records() -> None:
    with gzip.open(sample_path(), "rt", encoding="utf-8") as handle:
        assert handle.read() == FIXTURE.read_text("utf-8")


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_demo_load_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    database = tmp_path / "demo.db"
    env = {**os.environ, "PYTHONPATH": str(clone), "TRACKER_CTGOV_BASE_URL": "http://127.0.0.1:1/api/v2"}
    env.pop("TRACKER_DATABASE_URL", None)
    probe = subprocess.run(
        [sys.executable, "-c", "import tracker.demo; print(tracker.demo.sample_path())"],
        cwd=clone, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(probe.stdout.strip()).is_relative_to(clone)  # the clone's files, not this tree's
    command = [
        sys.executable,
        "-m",
        "tracker",
        "--database-url",
        f"sqlite:///{database}",
        "demo",
        "--no-serve",
    ]
    result = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Demo sample: import success" in result.stderr
    engine = make_engine(f"sqlite:///{database}")
    assert data_as_of(engine).describe() == "data as of 2025-09-25 (newest update posted in the store)"
    engine.dispose()
    # Loading it again changes nothing (the same records), and is allowed.
    again = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "200 unchanged" in again.stderr


def test_demo_refuses_a_database_holding_other_studies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    runner = CliRunner()
    assert runner.invoke(main, ["--database-url", url, "import", str(FIXTURE)]).exit_code == 0
    result = runner.invoke(main, ["--database-url", url, "demo", "--no-serve"])
    assert result.exit_code == 2
    assert "already holds 200 studies; the demo loads into a database of its own" in result.output


def test_a_busy_port_is_reported_before_the_dashboard_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    runner = CliRunner()
    assert runner.invoke(main, ["--database-url", url, "import", str(FIXTURE)]).exit_code == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(main, ["--database-url", url, "dashboard", "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: port {port} on 127.0.0.1 is already in use; stop what listens there or pass --port"
    ]
