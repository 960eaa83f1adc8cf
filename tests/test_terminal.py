"""Terminal output: on a real terminal (a pty), log lines are written above the progress bar, never into it,
and classification has a bar of its own."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from fake_ctgov import FakeCtgov, Fault, make_study


def run_in_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the tracker with stdout and stderr on a pseudo-terminal; return everything it drew."""
    leader, follower = pty.openpty()
    # A real terminal has a size (a new pty has 0 columns, on which tqdm draws nothing).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    child = subprocess.Popen(
        [sys.executable, "-m", "tracker", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def test_log_lines_go_above_the_progress_bar(fake_ctgov: FakeCtgov, tmp_path: Path) -> None:
    fake_ctgov.set_studies([make_study(f"NCT{n:08d}") for n in range(1, 13)])
    fake_ctgov.inject(Fault("delay", seconds=0), Fault("503", retry_after=0))  # page 2 fails once
    env = {
        **os.environ,
        "TRACKER_PAGE_SIZE": "5",
        "TRACKER_REQUESTS_PER_SECOND": "0",
    }
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    screen = run_in_terminal(["--database-url", url, "sync", "--base-url", fake_ctgov.url], env)
    lines = screen.replace("\r\n", "\n").split("\n")
    (retry_line,) = [line for line in lines if "retrying in" in line]
    # tqdm clears the bar with carriage returns before the log line; what follows the last one is the
    # log line alone, starting with its timestamp, not a half-drawn bar.
    assert retry_line.rsplit("\r", 1)[-1][:2] == "20", repr(retry_line)
    assert "sync: " in screen.replace("tracker.sync: ", "")  # the sync bar was drawn
    # Classification runs inside each page's transaction, under the sync bar; nothing is left for a
    # classification pass of its own (that bar appears only when an older classifier's labels are redone).
    assert "classify:" not in screen, screen
    assert "classified 12 new or changed studies" in screen
    assert "full success: 12 inserted" in screen
