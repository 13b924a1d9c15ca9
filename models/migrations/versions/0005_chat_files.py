"""chat files

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # chat_files: uploads owned by a user and an organization (no FK to chats).
    op.create_table('chat_files',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('owner_id', sa.UUID(), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), server_default='', nullable=False),
    sa.Column('mimetype', sa.Text(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_chat_files_organization_id', 'chat_files', ['organization_id'], unique=False)
    op.create_index('idx_chat_files_owner_id', 'chat_files', ['owner_id'], unique=False)
    # chat_file_links: the primary key is the reference's UNIQUE(chat_id, file_id).
    op.create_table('chat_file_links',
    sa.Column('chat_id', sa.UUID(), nullable=False),
    sa.Column('file_id', sa.UUID(), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['file_id'], ['chat_files.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chat_id', 'file_id')
    )
    op.create_index('idx_chat_file_links_chat_id', 'chat_file_links', ['chat_id'], unique=False)


def downgrade() -> None:
    op.drop_index('idx_chat_file_links_chat_id', table_name='chat_file_links')
    op.drop_table('chat_file_links')
    op.drop_index('idx_chat_files_owner_id', table_name='chat_files')
    op.drop_index('idx_chat_files_organization_id', table_name='chat_files')
    op.drop_table('chat_files')
