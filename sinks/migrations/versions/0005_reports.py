"""reports: results.participant_name, report_builds, report_deliveries

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Upgrade schema."""
    # Results stored before this revision have no name: their reports say "-" until a new version carries one.
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('participant_name', sa.String(length=200), nullable=True))
    op.create_table('report_builds',
    sa.Column('activity_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('built_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('last_test_day', sa.Date(), nullable=False),
    sa.Column('results', sa.Integer(), nullable=False),
    sa.Column('directory', sa.String(length=1000), nullable=False),
    sa.Column('files', JSON, nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('activity_id', 'version')
    )
    op.create_table('report_deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('activity_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('target', sa.String(length=1000), nullable=False),
    sa.Column('operator', sa.String(length=100), nullable=False),
    sa.CheckConstraint("kind IN ('recap', 'full')", name='ck_report_deliveries_kind'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('report_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_deliveries_activity_id'), ['activity_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('report_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_deliveries_activity_id'))
    op.drop_table('report_deliveries')
    op.drop_table('report_builds')
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_column('participant_name')
