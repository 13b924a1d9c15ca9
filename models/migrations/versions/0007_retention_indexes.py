"""retention purge indexes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

The retention purge (models/retention.py) deletes archived chats past the window and the
files nothing kept references, 1,000 rows per transaction. These indexes keep each batch
proportional to its own rows instead of to the size of the tables:

- idx_chats_archived_updated_at: expired chats are found by archive time (``updated_at``);
  only archived chats are indexed, so it stays small and costs active chats nothing.
- idx_chat_messages_file_parts: the messages that carry file parts (a small fraction), so
  the files kept chats reference are found without reading every message.
- idx_chat_file_links_file_id: deleting a file cascades to its links by file_id, and the
  "is this file linked to a kept chat" test looks links up by file; the primary key leads
  with chat_id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILE_PARTS = sa.text("""content @> '[{"type": "file"}]'::jsonb""")


def upgrade() -> None:
    op.create_index('idx_chats_archived_updated_at', 'chats', ['updated_at'], unique=False,
                    postgresql_where=sa.text('archived'))
    op.create_index('idx_chat_messages_file_parts', 'chat_messages', ['chat_id'], unique=False,
                    postgresql_where=FILE_PARTS)
    op.create_index('idx_chat_file_links_file_id', 'chat_file_links', ['file_id'], unique=False)


def downgrade() -> None:
    op.drop_index('idx_chat_file_links_file_id', table_name='chat_file_links')
    op.drop_index('idx_chat_messages_file_parts', table_name='chat_messages')
    op.drop_index('idx_chats_archived_updated_at', table_name='chats')
