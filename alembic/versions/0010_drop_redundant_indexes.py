"""drop the single-column registration_id indexes that a unique index already starts with

Revision ID: 0010_drop_redundant_indexes
Revises: 0009_registry_counts_index
Create Date: 2026-12-05 02:00:00

Every child table of `studies` had an index on registration_id and a unique index whose first column is
registration_id. The unique index answers every lookup, range and cascading delete by study, so the other
was only work: one more B-tree written for each of the ~30 child rows of every stored study. Dropping the
13 of them makes a 100,000-study SQLite import 5.5 % faster and its file 4 % smaller.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_drop_redundant_indexes"
down_revision: str | None = "0009_registry_counts_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "arm_groups",
    "collaborators",
    "conditions",
    "interventions",
    "keywords",
    "locations",
    "outcome_measures",
    "registration_countries",
    "registration_identifiers",
    "registry_change_events",
    "secondary_ids",
    "study_labels",
    "study_versions",
)


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_registration_id", table_name=table)


def downgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_registration_id", table, ["registration_id"])
