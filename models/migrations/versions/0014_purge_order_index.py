"""retention purge: expired chats in purge order from one index

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

The purge (models/retention.py) takes expired chats children first, oldest first, a few at a
time. idx_chats_archived_updated_at (0007) gave them in archive order only, so every batch
sorted every expired chat to put the children first: work in proportion to the backlog, per
batch. idx_chats_purge_order holds that order itself ((root_chat_id IS NULL), updated_at, for
archived chats only), so a batch reads just the chats it takes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('idx_chats_purge_order', 'chats', [sa.text('(root_chat_id IS NULL)'), 'updated_at'],
                    unique=False, postgresql_where=sa.text('archived'))
    op.drop_index('idx_chats_archived_updated_at', table_name='chats')


def downgrade() -> None:
    op.create_index('idx_chats_archived_updated_at', 'chats', ['updated_at'], unique=False,
                    postgresql_where=sa.text('archived'))
    op.drop_index('idx_chats_purge_order', table_name='chats')
