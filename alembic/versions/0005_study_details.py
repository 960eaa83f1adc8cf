"""study details: outcome measures, arm groups, secondary IDs; design, eligibility and summary columns

Revision ID: 0005_study_details
Revises: 0004_registry_history
Create Date: 2026-12-01 21:50:00

Schema only. Rows stored before this revision get their details from the raw JSON they already keep:
`tracker.db.migrate.upgrade_to_head` refills them through the store's own write path after the upgrade
(see `tracker.store.refill_details`), so this file never imports code that later revisions may change.

Registry text is unbounded TEXT (as since 0003_idempotent_writes), and each child table has a unique index
on its position within the study (outcome measures: within their role), so re-landing a page is a no-op.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005_study_details'
down_revision: str | None = '0004_registry_history'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STUDY_COLUMNS = (
    ('brief_summary', sa.Text()),
    ('allocation', sa.Text()),
    ('intervention_model', sa.Text()),
    ('masking', sa.Text()),
    ('primary_purpose', sa.Text()),
    ('eligibility_criteria', sa.Text()),
    ('minimum_age', sa.Text()),
    ('maximum_age', sa.Text()),
    ('minimum_age_years', sa.Float()),
    ('maximum_age_years', sa.Float()),
    ('sex', sa.Text()),
    ('healthy_volunteers', sa.Boolean()),
    ('std_ages', sa.JSON()),
)


# table → the columns of its unique index (beside nct_id)
UNIQUE_POSITION: dict[str, tuple[str, ...]] = {
    'outcome_measures': ('role', 'position'),
    'arm_groups': ('position',),
    'secondary_ids': ('position',),
}


def _unique_name(name: str) -> str:
    return f"uq_{name}_{'_'.join(('nct_id', *UNIQUE_POSITION[name]))}"


def _child_table(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('nct_id', sa.String(length=16), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(
            ['nct_id'], ['studies.nct_id'], name=op.f(f'fk_{name}_nct_id_studies'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{name}')),
    )
    with op.batch_alter_table(name, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f'ix_{name}_nct_id'), ['nct_id'], unique=False)
        batch_op.create_index(_unique_name(name), ['nct_id', *UNIQUE_POSITION[name]], unique=True)


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) works on SQLite without a table rebuild.
    for name, column_type in STUDY_COLUMNS:
        op.add_column('studies', sa.Column(name, column_type, nullable=True))
    _child_table(
        'outcome_measures',
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('measure', sa.Text(), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('time_frame', sa.Text(), nullable=True),
    )
    _child_table(
        'arm_groups',
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('label', sa.Text(), nullable=False),
        sa.Column('type', sa.Text(), nullable=True),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('intervention_names', sa.JSON(), nullable=False),
    )
    _child_table(
        'secondary_ids',
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('identifier', sa.Text(), nullable=False),
        sa.Column('type', sa.Text(), nullable=True),
        sa.Column('domain', sa.Text(), nullable=True),
    )


def downgrade() -> None:
    for name in ('secondary_ids', 'arm_groups', 'outcome_measures'):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_index(_unique_name(name))
            batch_op.drop_index(batch_op.f(f'ix_{name}_nct_id'))
        op.drop_table(name)
    # SQLite before 3.35 cannot DROP COLUMN: batch mode rebuilds the table there.
    with op.batch_alter_table('studies', schema=None) as batch_op:
        for name, _ in reversed(STUDY_COLUMNS):
            batch_op.drop_column(name)
