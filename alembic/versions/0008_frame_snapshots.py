"""frame snapshots: the dashboard's trial frame stored as a read model

Revision ID: 0008_frame_snapshots
Revises: 0007_read_indexes
Create Date: 2026-12-04 21:00:00

Building the trial frame is most of a dashboard process's cold start (8 s at 100,000 studies). Each row
of `frame_snapshots` holds one frame the query layer built, as Apache Parquet, with the data version it
was built from and the frame format of the code that built it (`tracker.frame_snapshot`): a process whose
data has not changed since loads it instead. Schema only; the table starts empty and fills itself.

The data version (`tracker.query.data_version`) is read on every dashboard rerun and before every snapshot
is trusted; the latest classification and registry-history times in it were table scans (85 ms at 100,000
classifications, whose rows carry their JSON result). Indexes make them one lookup each.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_frame_snapshots"
down_revision: str | None = "0007_read_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns whose latest value the data version reads.
INDEXED = (
    ("classifications", "classified_at"),
    ("registry_histories", "index_read_at"),
    ("registry_histories", "versions_accepted_at"),
)


def upgrade() -> None:
    op.create_table(
        "frame_snapshots",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("data_version", sa.Text(), nullable=False),
        sa.Column("frame_format", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_frame_snapshots")),
    )
    for table, column in INDEXED:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(INDEXED):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
    op.drop_table("frame_snapshots")
