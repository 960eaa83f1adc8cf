"""Small helpers shared by the test modules."""

from __future__ import annotations

import socket

from sqlalchemy import Engine, func, select

from tracker.db.session import transaction


def count_rows(engine: Engine, model: type, *where: object) -> int:
    """Rows of `model` matching the `where` clauses."""
    with transaction(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
