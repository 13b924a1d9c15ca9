"""retention purge: doomed chats and a sweep cursor

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

The purge (models/retention.py) used to empty expired chats one group at a time. A chat's
rows lie scattered over the tables' pages, interleaved with every other chat active at the
same time, so each deleted row cost a page of its own (bench/purge.py: ~10 us a row on
1M messages, most of it reading and dirtying pages). It now works in two steps:

- chat_purges: the chats a purge cycle deletes ("doomed"), chosen in one short transaction
  with their rows locked; an unarchive of a doomed chat is refused, so the set is final.
- purge_sweeps: where the cycle's sweep stands (a table and the next page). Each batch deletes
  the doomed chats' rows from a range of pages, in page order, so every page is read and
  written once per cycle however many chats share it; then the doomed chats themselves go.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'chat_purges',
        sa.Column('chat_id', sa.Uuid(), nullable=False),
        sa.Column('doomed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('chat_id'),
    )
    op.create_table(
        'purge_sweeps',
        sa.Column('singleton', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column('relation', sa.Text(), nullable=False),
        sa.Column('next_block', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.CheckConstraint('singleton', name='ck_purge_sweeps_singleton'),
        sa.PrimaryKeyConstraint('singleton'),
    )


def downgrade() -> None:
    op.drop_table('purge_sweeps')
    op.drop_table('chat_purges')
