"""study details: outcome measures, arm groups, secondary IDs; design, eligibility and summary columns

Revision ID: 0003_study_details
Revises: 0002b
Create Date: 2026-12-01 21:50:00

Schema only. Rows stored before this revision get their details from the raw JSON they already keep:
`tracker.db.migrate.upgrade_to_head` refills them through the store's own write path after the upgrade
(see `tracker.store.refill_details`), so this file never imports code that later revisions may change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003_study_details'
down_revision: str | None = '0002b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STUDY_COLUMNS = (
    ('brief_summary', sa.Text()),
    ('allocation', sa.String(length=40)),
    ('intervention_model', sa.String(length=40)),
    ('masking', sa.String(length=40)),
    ('primary_purpose', sa.String(length=40)),
    ('eligibility_criteria', sa.Text()),
    ('minimum_age', sa.String(length=40)),
    ('maximum_age', sa.String(length=40)),
    ('minimum_age_years', sa.Float()),
    ('maximum_age_years', sa.Float()),
    ('sex', sa.String(length=40)),
    ('healthy_volunteers', sa.Boolean()),
    ('std_ages', sa.JSON()),
)


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
        sa.Column('type', sa.String(length=40), nullable=True),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('intervention_names', sa.JSON(), nullable=False),
    )
    _child_table(
        'secondary_ids',
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('identifier', sa.Text(), nullable=False),
        sa.Column('type', sa.String(length=40), nullable=True),
        sa.Column('domain', sa.Text(), nullable=True),
    )


def downgrade() -> None:
    for name in ('secondary_ids', 'arm_groups', 'outcome_measures'):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{name}_nct_id'))
        op.drop_table(name)
    # SQLite before 3.35 cannot DROP COLUMN: batch mode rebuilds the table there.
    with op.batch_alter_table('studies', schema=None) as batch_op:
        for name, _ in reversed(STUDY_COLUMNS):
            batch_op.drop_column(name)
