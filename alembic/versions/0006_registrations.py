"""registrations and trials: the registration is the unit, the trial is the view

Revision ID: 0006_registrations
Revises: 0005_study_details
Create Date: 2026-12-04 19:20:00

A second registry (the EU's CTIS) breaks "one NCT ID = one row": a trial may be registered on
ClinicalTrials.gov, in CTIS, or in both under different numbers. Every stored row is now one
registration, keyed by its own registry's ID, and registrations are linked into trials.

- Every `nct_id` column becomes `registration_id` (the key of a registration in any registry), wide
  enough for an EU CT number (`2024-510663-34-00`, 17 characters). Index and constraint names follow.
  SQLite renames in place in the schema text, as 0003 widened its types: the stored rows and their
  column order are untouched, and nothing is recreated (recreating `studies` would cascade its drop
  into every child table). Postgres renames with ALTER … RENAME; the widening is binary-coercible.
- `sync_runs` gains `registry`: each registry has its own runs and its own watermark.
- `studies` gains `registry` (ctgov / ctis), `trial_id` (the registration that stands for the trial
  the row belongs to; a row of its own until linked), `registry_status` (the registry's own status
  label) and `decision_date` (CTIS: the overall EU decision).
- `registration_identifiers`: the normalised identifiers each registration carries (its own, its
  secondary IDs), indexed by value so the registrations that name each other are found by lookup.
- `registration_countries`: per-country status and decision date (CTIS member states).
- `registration_links`: manual link / unlink decisions with their note; they outlive every re-sync.

Existing rows: trial_id = registration_id and registry = 'ctgov' here; their identifiers are derived
from their stored secondary IDs by `tracker.db.migrate` after the upgrade, through the same code
that derives them at ingest (migrations stay schema-only).
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_registrations"
down_revision: str | None = "0005_study_details"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD, NEW = "nct_id", "registration_id"
OLD_WIDTH, NEW_WIDTH = 16, 32


def _sqlite_rename(old: str, new: str, width: int) -> None:
    """Rename column `old` to `new` in every table and index of the stored schema text."""
    bind = op.get_bind()
    word = re.compile(old)  # names too: "ix_conditions_nct_id" has no word boundary before the column
    rows = bind.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND (sql LIKE ? OR name LIKE ?)",
        (f"%{old}%", f"%{old}%"),
    ).all()
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    for kind, name, sql in rows:
        text = word.sub(new, sql)
        text = re.sub(rf"(\b{new}\"?\s+)VARCHAR\(\d+\)", rf"\g<1>VARCHAR({width})", text)
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET name = ?, sql = ? WHERE type = ? AND name = ?",
            (word.sub(new, name), text, kind, name),
        )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _postgres_rename(old: str, new: str, width: int) -> None:
    bind = op.get_bind()
    tables = bind.exec_driver_sql(
        "SELECT table_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND column_name = %s ORDER BY table_name",
        (old,),
    ).scalars()
    for table in list(tables):
        op.execute(f'ALTER TABLE "{table}" RENAME COLUMN {old} TO {new}')
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN {new} TYPE VARCHAR({width})')
    constraints = bind.exec_driver_sql(
        "SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE n.nspname = current_schema() AND c.conname LIKE %s",
        (f"%{old}%",),
    ).all()
    for table, name in constraints:  # renaming a unique constraint renames its index too
        op.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "{name}" TO "{name.replace(old, new)}"')
    indexes = bind.exec_driver_sql(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE %s",
        (f"%{old}%",),
    ).scalars()
    for name in list(indexes):
        op.execute(f'ALTER INDEX "{name}" RENAME TO "{name.replace(old, new)}"')


def _rename(old: str, new: str, width: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rename(old, new, width)
    else:
        _postgres_rename(old, new, width)


def _registration_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [NEW], ["studies.registration_id"], name=op.f(f"fk_{table}_{NEW}_studies"), ondelete="CASCADE"
    )


def upgrade() -> None:
    _rename(OLD, NEW, NEW_WIDTH)
    op.add_column(
        "studies", sa.Column("registry", sa.String(length=10), server_default="ctgov", nullable=False)
    )
    op.add_column("studies", sa.Column("trial_id", sa.String(length=NEW_WIDTH), nullable=True))
    op.add_column("studies", sa.Column("registry_status", sa.Text(), nullable=True))
    op.add_column("studies", sa.Column("decision_date", sa.Date(), nullable=True))
    op.add_column(
        "sync_runs", sa.Column("registry", sa.String(length=10), server_default="ctgov", nullable=False)
    )
    op.execute("UPDATE studies SET trial_id = registration_id")
    op.create_index(op.f("ix_studies_trial_id"), "studies", ["trial_id"], unique=False)

    op.create_table(
        "registration_identifiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(NEW, sa.String(length=NEW_WIDTH), nullable=False),
        sa.Column("scheme", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=NEW_WIDTH), nullable=False),
        _registration_fk("registration_identifiers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_identifiers")),
    )
    op.create_index(
        op.f("ix_registration_identifiers_registration_id"), "registration_identifiers", [NEW], unique=False
    )
    op.create_index(
        op.f("ix_registration_identifiers_value"), "registration_identifiers", ["value"], unique=False
    )
    op.create_index(
        "uq_registration_identifiers_registration_id_scheme_value",
        "registration_identifiers",
        [NEW, "scheme", "value"],
        unique=True,
    )

    op.create_table(
        "registration_countries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(NEW, sa.String(length=NEW_WIDTH), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("decision_date", sa.Date(), nullable=True),
        _registration_fk("registration_countries"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_countries")),
    )
    op.create_index(
        op.f("ix_registration_countries_registration_id"), "registration_countries", [NEW], unique=False
    )
    op.create_index(
        "uq_registration_countries_registration_id_position",
        "registration_countries",
        [NEW, "position"],
        unique=True,
    )

    op.create_table(
        "registration_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("registration_a", sa.String(length=NEW_WIDTH), nullable=False),
        sa.Column("registration_b", sa.String(length=NEW_WIDTH), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_links")),
    )
    op.create_index(
        "uq_registration_links_registration_a_registration_b",
        "registration_links",
        ["registration_a", "registration_b"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("registration_links")
    op.drop_table("registration_countries")
    op.drop_table("registration_identifiers")
    op.drop_index(op.f("ix_studies_trial_id"), table_name="studies")
    # Plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35): a batch recreate of studies would cascade.
    for column in ("decision_date", "registry_status", "trial_id", "registry"):
        op.drop_column("studies", column)
    op.drop_column("sync_runs", "registry")
    _rename(NEW, OLD, OLD_WIDTH)
