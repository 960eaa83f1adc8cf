"""One dashboard cold start as a process: Streamlit's AppTest imports the app and runs it once (trial frame,
event frame, index and charts built from an empty cache) against the database given, then exits.

    .venv/bin/python benchmarks/dashboard_cold.py sqlite:///PATH.db
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def main() -> int:
    os.environ["TRACKER_DATABASE_URL"] = sys.argv[1]
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(APP), default_timeout=600)
    started = time.perf_counter()
    app.run()
    if app.exception:
        print("; ".join(str(exception.value) for exception in app.exception), file=sys.stderr)
        return 1
    print(f"first run {time.perf_counter() - started:.2f} s, {app.metric[0].value} trials shown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
