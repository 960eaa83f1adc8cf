"""Small helpers shared by the test modules."""

from __future__ import annotations

import socket
from typing import Any

from sqlalchemy import Engine, func, select

from tracker.db.models import Classification, StudyLabel
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


def stored_classification(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every stored classification (ID, content hash, relevance, multi-disease, result) and effective label
    (ID, dimension, key, role), ordered: what two ways of classifying the same studies must agree on."""
    with transaction(engine) as session:
        results = session.execute(
            select(
                Classification.registration_id,
                Classification.content_hash,
                Classification.relevance,
                Classification.multi_disease,
                Classification.result,
            ).order_by(Classification.registration_id)
        ).all()
        labels = session.execute(
            select(
                StudyLabel.registration_id, StudyLabel.dimension, StudyLabel.key, StudyLabel.role
            ).order_by(StudyLabel.registration_id, StudyLabel.dimension, StudyLabel.key, StudyLabel.role)
        ).all()
    return [tuple(row) for row in results], [tuple(row) for row in labels]
