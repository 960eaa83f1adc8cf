"""idempotent writes: registry text without length limits, unique versions, events, children and labels,
lease purposes and digest claims

Revision ID: 0003_idempotent_writes
Revises: 0002b
Create Date: 2026-12-01 21:45:00

- Registry text columns that were VARCHAR(n) become TEXT: the registry has no length limits worth trusting.
  On Postgres VARCHAR→TEXT is binary-coercible (no table rewrite). SQLite never enforced the length; its
  declared types are rewritten in place in the schema text (same TEXT affinity, so the stored rows are
  untouched) rather than by recreating `studies`, which would copy every raw record and, with foreign keys
  on, cascade the drop of the old table into every child table.
- Unique indexes make re-landing a page a no-op: one version per (study, content hash), one change event per
  (study, event key), one child row per (study, position), one label per (study, dimension, key, role).
  Duplicates left by older concurrent runs are removed first (the oldest row stays).
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_idempotent_writes"
down_revision: str | None = "0002b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table → {column: its old VARCHAR length}
WIDENED: dict[str, dict[str, int]] = {
    "studies": {
        "acronym": 200,
        "overall_status": 40,
        "last_known_status": 40,
        "study_type": 40,
        "enrollment_type": 40,
        "start_date_type": 40,
        "primary_completion_date_type": 40,
        "completion_date_type": 40,
        "lead_sponsor_class": 40,
    },
    "interventions": {"type": 40},
    "collaborators": {"agency_class": 40},
    "locations": {"country": 100, "status": 40},
}

UNIQUE_INDEXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "study_versions": ("uq_study_versions_nct_id_content_hash", ("nct_id", "content_hash")),
    "change_events": ("uq_change_events_nct_id_event_key", ("nct_id", "event_key")),
    "conditions": ("uq_conditions_nct_id_position", ("nct_id", "position")),
    "keywords": ("uq_keywords_nct_id_position", ("nct_id", "position")),
    "interventions": ("uq_interventions_nct_id_position", ("nct_id", "position")),
    "collaborators": ("uq_collaborators_nct_id_position", ("nct_id", "position")),
    "locations": ("uq_locations_nct_id_position", ("nct_id", "position")),
    "study_labels": ("uq_study_labels_nct_id_dimension_key_role", ("nct_id", "dimension", "key", "role")),
}


def _sqlite_retype(table: str, columns: dict[str, int], *, widen: bool) -> None:
    """Rewrite the declared types of `columns` in SQLite's stored CREATE TABLE text (same affinity)."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    text = sql.scalar_one()
    for column, length in columns.items():
        name = rf'((?:"{column}"|\b{column})\s+)'
        if widen:
            text = re.sub(name + r"VARCHAR\(\d+\)", rf"\g<1>TEXT", text)
        else:
            text = re.sub(name + r"TEXT\b", rf"\g<1>VARCHAR({length})", text)
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (text, table))
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _retype(widen: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in WIDENED.items():
        if sqlite:
            _sqlite_retype(table, columns, widen=widen)
            continue
        for column, length in columns.items():
            old, new = sa.String(length), sa.Text()
            op.alter_column(
                table,
                column,
                existing_type=old if widen else new,
                type_=new if widen else old,
                existing_nullable=True,
            )


def _drop_duplicates(table: str, columns: tuple[str, ...]) -> None:
    keys = ", ".join(columns)
    op.execute(
        f"DELETE FROM {table} WHERE id NOT IN (SELECT MIN(id) FROM {table} GROUP BY {keys})"  # noqa: S608
    )


def upgrade() -> None:
    _retype(widen=True)
    op.add_column("change_events", sa.Column("event_key", sa.String(length=200), nullable=True))
    op.add_column("locks", sa.Column("purpose", sa.String(length=40), nullable=True))
    for table, (index, columns) in UNIQUE_INDEXES.items():
        if table != "change_events":  # every existing event has no key yet: NULLs never collide
            _drop_duplicates(table, columns)
        op.create_index(index, table, list(columns), unique=True)
    op.create_table(
        "digest_claims",
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_digest_claims_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_digest_claims")),
    )


def downgrade() -> None:
    op.drop_table("digest_claims")
    for table, (index, _columns) in UNIQUE_INDEXES.items():
        op.drop_index(index, table_name=table)
    # Plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35): a batch recreate of change_events would cascade.
    op.drop_column("locks", "purpose")
    op.drop_column("change_events", "event_key")
    _retype(widen=False)
