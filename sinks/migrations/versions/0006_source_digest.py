"""source digest: dead letters and quarantined records keyed by position and content

A broker that lost its log (restarted empty, topics recreated) hands the same positions out again once the labs
resend: keyed by position alone, a new dead letter or quarantined record at a reused position was taken for the
earlier one and silently not stored. Rows stored before this revision get an empty digest; the store treats
such a dead letter as standing for its whole position (sinks/store.py ``_without_legacy_letters``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_POSITION = ['source_topic', 'source_partition', 'source_offset']


def _sqlite() -> bool:
    return op.get_context().dialect.name == 'sqlite'


def _rebuild_sqlite_quarantine(*, digest: bool) -> None:
    """SQLite cannot change a primary key in place, and a batch copy that widens one warns: the table is
    rebuilt with the new key and its rows copied."""
    key = [*_POSITION, 'value_sha256'] if digest else _POSITION
    kept = ['source_topic', 'source_partition', 'source_offset', 'event_id', 'event_type', 'reason', 'event_json',
            'event_bytes', 'first_seen_at']
    op.create_table('_sink_quarantine_new',
    sa.Column('source_topic', sa.String(length=249), nullable=False),
    sa.Column('source_partition', sa.Integer(), nullable=False),
    sa.Column('source_offset', sa.BigInteger(), nullable=False),
    *([sa.Column('value_sha256', sa.String(length=64), server_default='', nullable=False)] if digest else []),
    sa.Column('event_id', sa.String(length=36), nullable=True),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('event_json', sa.Text(), nullable=False),
    sa.Column('event_bytes', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint(*key, name='sink_quarantine_pkey')
    )
    op.execute(f"INSERT INTO _sink_quarantine_new ({', '.join(kept)}) SELECT {', '.join(kept)} FROM sink_quarantine")
    op.drop_table('sink_quarantine')
    op.rename_table('_sink_quarantine_new', 'sink_quarantine')
    op.create_index('ix_sink_quarantine_event_type', 'sink_quarantine', ['event_type'], unique=False)
    op.create_index('ix_sink_quarantine_first_seen_at', 'sink_quarantine', ['first_seen_at'], unique=False)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('deadletters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('value_sha256', sa.String(length=64), server_default='', nullable=False))
        batch_op.drop_constraint('uq_deadletters_source', type_='unique')
        batch_op.create_unique_constraint('uq_deadletters_source', [*_POSITION, 'value_sha256'])
    if _sqlite():
        _rebuild_sqlite_quarantine(digest=True)
    else:
        with op.batch_alter_table('sink_quarantine', schema=None) as batch_op:
            batch_op.add_column(sa.Column('value_sha256', sa.String(length=64), server_default='', nullable=False))
            batch_op.drop_constraint('sink_quarantine_pkey', type_='primary')
            batch_op.create_primary_key('sink_quarantine_pkey', [*_POSITION, 'value_sha256'])


def downgrade() -> None:
    """Downgrade schema: one row per position again (the later of two rows at a reused position goes)."""
    for table, key in (('deadletters', 'event_id'), ('sink_quarantine', 'first_seen_at')):
        op.execute(f"DELETE FROM {table} WHERE value_sha256 <> '' AND EXISTS (SELECT 1 FROM {table} o WHERE "
                   + " AND ".join(f"o.{c} = {table}.{c}" for c in _POSITION)
                   + f" AND (o.value_sha256 = '' OR o.{key} < {table}.{key}))")
    if _sqlite():
        _rebuild_sqlite_quarantine(digest=False)
    else:
        with op.batch_alter_table('sink_quarantine', schema=None) as batch_op:
            batch_op.drop_constraint('sink_quarantine_pkey', type_='primary')
            batch_op.drop_column('value_sha256')
            batch_op.create_primary_key('sink_quarantine_pkey', _POSITION)
    with op.batch_alter_table('deadletters', schema=None) as batch_op:
        batch_op.drop_constraint('uq_deadletters_source', type_='unique')
        batch_op.drop_column('value_sha256')
        batch_op.create_unique_constraint('uq_deadletters_source', _POSITION)
