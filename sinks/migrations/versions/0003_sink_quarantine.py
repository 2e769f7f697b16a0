"""sink quarantine: refused output events kept with their reason; attendance indexed by NIP

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('sink_quarantine',
    sa.Column('source_topic', sa.String(length=249), nullable=False),
    sa.Column('source_partition', sa.Integer(), nullable=False),
    sa.Column('source_offset', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=True),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('event_json', sa.Text(), nullable=False),
    sa.Column('event_bytes', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('source_topic', 'source_partition', 'source_offset')
    )
    with op.batch_alter_table('sink_quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sink_quarantine_event_type'), ['event_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_sink_quarantine_first_seen_at'), ['first_seen_at'], unique=False)
    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attendance_nip'), ['nip'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attendance_nip'))
    with op.batch_alter_table('sink_quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sink_quarantine_first_seen_at'))
        batch_op.drop_index(batch_op.f('ix_sink_quarantine_event_type'))
    op.drop_table('sink_quarantine')
