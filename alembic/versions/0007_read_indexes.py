"""indexes for the read-only commands: removed studies, and change events past the baseline

Revision ID: 0007_read_indexes
Revises: 0006_registrations
Create Date: 2026-12-04 19:30:00

`tracker status` counts the studies the registry no longer returns; without an index on `removed_at`
that count reads every row of `studies`, raw JSON included (0.1 s warm at 100,000 studies, the whole
file from disk when cold). `tracker changes` lists the newest events that are not the first load's;
with (baseline, detected_at) the database walks straight to them instead of past every baseline event.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_read_indexes"
down_revision: str | None = "0006_registrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_studies_removed_at", "studies", ["removed_at"])
    op.create_index("ix_change_events_baseline_detected_at", "change_events", ["baseline", "detected_at"])


def downgrade() -> None:
    op.drop_index("ix_change_events_baseline_detected_at", table_name="change_events")
    op.drop_index("ix_studies_removed_at", table_name="studies")
