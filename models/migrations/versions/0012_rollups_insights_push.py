"""cost rollups, PR insights, web push

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24

usage_rollup_pending is filled by a statement-level AFTER INSERT trigger on chat_messages (every
message that can carry spend) and drained by the usage.rollup actor into usage_chat_days and
usage_user_days (models/usage_rollups.py). chat_diff_statuses follows Coder's table (reference
§2.3) plus the PR's own created/merged/closed times; external_auth_links holds users' git
provider tokens (Fernet ciphertext); webpush_subscriptions follows Coder's table with one row per
(user, endpoint).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MARK_PENDING_FUNCTION = """
CREATE FUNCTION usage_rollup_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_rollup_pending (message_id)
    SELECT id FROM new_rows WHERE role = 'assistant' OR total_cost_micros IS NOT NULL;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table('usage_rollup_pending',
    sa.Column('message_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    op.create_table('external_auth_links',
    sa.Column('provider_id', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('oauth_access_token', sa.Text(), nullable=False),
    sa.Column('oauth_access_token_key_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('provider_id', 'user_id')
    )
    op.create_table('usage_user_days',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('model_config_id', sa.Uuid(), nullable=False),
    sa.Column('spend_micros', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('total_cost_micros', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('priced_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('unpriced_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cache_read_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cache_creation_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('runtime_ms', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'day', 'model_config_id')
    )
    op.create_table('webpush_subscriptions',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('endpoint', sa.Text(), nullable=False),
    sa.Column('endpoint_p256dh_key', sa.Text(), nullable=False),
    sa.Column('endpoint_auth_key', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'endpoint', name='webpush_subscriptions_user_id_endpoint_key')
    )
    op.create_table('chat_diff_statuses',
    sa.Column('chat_id', sa.Uuid(), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('pull_request_state', sa.Text(), nullable=True),
    sa.Column('pull_request_title', sa.Text(), server_default='', nullable=False),
    sa.Column('pull_request_draft', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('changes_requested', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('additions', sa.Integer(), server_default='0', nullable=True),
    sa.Column('deletions', sa.Integer(), server_default='0', nullable=True),
    sa.Column('changed_files', sa.Integer(), server_default='0', nullable=True),
    sa.Column('author_login', sa.Text(), nullable=True),
    sa.Column('author_avatar_url', sa.Text(), nullable=True),
    sa.Column('base_branch', sa.Text(), nullable=True),
    sa.Column('head_branch', sa.Text(), nullable=True),
    sa.Column('pr_number', sa.Integer(), nullable=True),
    sa.Column('commits', sa.Integer(), nullable=True),
    sa.Column('approved', sa.Boolean(), nullable=True),
    sa.Column('reviewer_count', sa.Integer(), nullable=True),
    sa.Column('git_branch', sa.Text(), server_default='', nullable=False),
    sa.Column('git_remote_origin', sa.Text(), server_default='', nullable=False),
    sa.Column('pr_created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pr_merged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pr_closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stale_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chat_id')
    )
    op.create_index('idx_chat_diff_statuses_stale_at', 'chat_diff_statuses', ['stale_at'], unique=False)
    op.create_table('usage_chat_days',
    sa.Column('chat_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('model_config_id', sa.Uuid(), nullable=False),
    sa.Column('total_cost_micros', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('priced_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('unpriced_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cache_read_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cache_creation_tokens', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('runtime_ms', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('chat_id', 'day', 'model_config_id')
    )
    op.create_index('idx_usage_chat_days_day', 'usage_chat_days', ['day'], unique=False)
    op.execute(MARK_PENDING_FUNCTION)
    op.execute(
        "CREATE TRIGGER chat_messages_usage_pending AFTER INSERT ON chat_messages "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION usage_rollup_mark_pending()"
    )
    # Every message written before this migration is rolled up by the first runs of usage.rollup.
    op.execute(
        "INSERT INTO usage_rollup_pending (message_id) SELECT id FROM chat_messages "
        "WHERE role = 'assistant' OR total_cost_micros IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS chat_messages_usage_pending ON chat_messages")
    op.execute("DROP FUNCTION IF EXISTS usage_rollup_mark_pending()")
    op.drop_index('idx_usage_chat_days_day', table_name='usage_chat_days')
    op.drop_table('usage_chat_days')
    op.drop_index('idx_chat_diff_statuses_stale_at', table_name='chat_diff_statuses')
    op.drop_table('chat_diff_statuses')
    op.drop_table('webpush_subscriptions')
    op.drop_table('usage_user_days')
    op.drop_table('external_auth_links')
    op.drop_table('usage_rollup_pending')
