"""overrides of endpoint keys (per role) and of eligibility facets

Revision ID: 0002b
Revises: 0001
Create Date: 2026-12-01 22:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002b"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("overrides", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoints_primary", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("endpoints_secondary", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("eligibility", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("overrides", schema=None) as batch_op:
        batch_op.drop_column("eligibility")
        batch_op.drop_column("endpoints_secondary")
        batch_op.drop_column("endpoints_primary")
