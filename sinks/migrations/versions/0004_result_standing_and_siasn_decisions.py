"""result standing and SI ASN holds: results.standing, session summary context, held/void pushes, decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Results stored before this revision were all pushed as counted: the server default says so.
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('standing', sa.String(length=16), server_default='counted', nullable=False))
        batch_op.add_column(sa.Column('standing_detail', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('host_activity_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('organiser_id', sa.String(length=64), nullable=True))
        batch_op.create_check_constraint('ck_results_standing',
                                         "standing IN ('counted', 'incomplete', 'not_recognised')")
        batch_op.create_index(batch_op.f('ix_results_standing'), ['standing'], unique=False)

    with op.batch_alter_table('session_summaries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agency_name', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('organiser_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('accreditation_warning', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('utc_offset_minutes', sa.Integer(), nullable=True))

    with op.batch_alter_table('siasn_outbox', schema=None) as batch_op:
        batch_op.create_check_constraint(
            'ck_siasn_outbox_status', "status IN ('pending', 'delivered', 'rejected', 'superseded', 'held', 'void')")

    op.create_table('siasn_decisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('nip', sa.String(length=18), nullable=False),
    sa.Column('activity_id', sa.String(length=64), nullable=False),
    sa.Column('result_version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('operator', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('previous_status', sa.String(length=64), nullable=False),
    sa.Column('new_status', sa.String(length=16), nullable=False),
    sa.CheckConstraint("action IN ('hold', 'release', 'void')", name='ck_siasn_decisions_action'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('siasn_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_siasn_decisions_activity_id'), ['activity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_siasn_decisions_decided_at'), ['decided_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_siasn_decisions_nip'), ['nip'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('siasn_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_siasn_decisions_nip'))
        batch_op.drop_index(batch_op.f('ix_siasn_decisions_decided_at'))
        batch_op.drop_index(batch_op.f('ix_siasn_decisions_activity_id'))
    op.drop_table('siasn_decisions')
    # Held and void pushes have no meaning without this revision: they go back to what the pusher knows.
    op.execute("UPDATE siasn_outbox SET status = 'pending' WHERE status = 'held'")
    op.execute("UPDATE siasn_outbox SET status = 'superseded' WHERE status = 'void'")
    with op.batch_alter_table('siasn_outbox', schema=None) as batch_op:
        batch_op.drop_constraint('ck_siasn_outbox_status', type_='check')
    with op.batch_alter_table('session_summaries', schema=None) as batch_op:
        batch_op.drop_column('utc_offset_minutes')
        batch_op.drop_column('accreditation_warning')
        batch_op.drop_column('organiser_id')
        batch_op.drop_column('agency_name')
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_results_standing'))
        batch_op.drop_constraint('ck_results_standing', type_='check')
        batch_op.drop_column('organiser_id')
        batch_op.drop_column('host_activity_id')
        batch_op.drop_column('standing_detail')
        batch_op.drop_column('standing')
