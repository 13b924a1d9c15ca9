"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Enum types are created by hand (alembic does not emit them for create_type=False columns).
chats.client_type arrives in 0002, as it did in Coder's history.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ENUMS = {
    "chat_status": (
        "waiting", "pending", "running", "paused", "completed", "error", "requires_action",
    ),
    "chat_message_role": ("system", "user", "assistant", "tool"),
    "chat_message_visibility": ("user", "model", "both"),
    "chat_mode": ("computer_use", "explore"),
    "chat_plan_mode": ("plan",),
}


def upgrade() -> None:
    for name, values in ENUMS.items():
        postgresql.ENUM(*values, name=name).create(op.get_bind())
    op.create_table('organizations',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('users',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('username', sa.Text(), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('login_type', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('rbac_roles', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email'),
    sa.UniqueConstraint('username')
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('hashed_secret', sa.LargeBinary(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('token_name', sa.Text(), nullable=False),
    sa.Column('login_type', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('chat_providers',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('api_key', sa.Text(), nullable=False),
    sa.Column('api_key_key_id', sa.Text(), nullable=True),
    sa.Column('created_by', sa.UUID(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('base_url', sa.Text(), nullable=False),
    sa.Column('central_api_key_enabled', sa.Boolean(), nullable=False),
    sa.Column('allow_user_api_key', sa.Boolean(), nullable=False),
    sa.Column('allow_central_api_key_fallback', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("provider IN ('anthropic', 'azure', 'bedrock', 'google', 'openai', 'openai-compat', 'openrouter', 'vercel')", name='chat_providers_provider_check'),
    sa.CheckConstraint('(central_api_key_enabled OR allow_user_api_key) AND (NOT allow_central_api_key_fallback OR (central_api_key_enabled AND allow_user_api_key))', name='valid_credential_policy'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider')
    )
    op.create_index('idx_chat_providers_enabled', 'chat_providers', ['enabled'], unique=False)
    op.create_table('organization_members',
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('roles', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('organization_id', 'user_id')
    )
    op.create_table('chat_model_configs',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('provider', sa.Text(), nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('created_by', sa.UUID(), nullable=True),
    sa.Column('updated_by', sa.UUID(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('context_limit', sa.BigInteger(), nullable=False),
    sa.Column('compression_threshold', sa.Integer(), nullable=False),
    sa.Column('options', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('compression_threshold >= 0 AND compression_threshold <= 100', name='chat_model_configs_compression_threshold_check'),
    sa.CheckConstraint('context_limit > 0', name='chat_model_configs_context_limit_check'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['provider'], ['chat_providers.provider'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['updated_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_chat_model_configs_enabled', 'chat_model_configs', ['enabled'], unique=False)
    op.create_index('idx_chat_model_configs_provider_model', 'chat_model_configs', ['provider', 'model'], unique=False)
    op.create_index('idx_chat_model_configs_single_default', 'chat_model_configs', [sa.literal_column('(1)')], unique=True, postgresql_where=sa.text('is_default AND NOT deleted'))
    op.create_table('chats',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=False),
    sa.Column('owner_id', sa.UUID(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=True),
    sa.Column('build_id', sa.Uuid(), nullable=True),
    sa.Column('agent_id', sa.Uuid(), nullable=True),
    sa.Column('parent_chat_id', sa.UUID(), nullable=True),
    sa.Column('root_chat_id', sa.UUID(), nullable=True),
    sa.Column('last_model_config_id', sa.UUID(), nullable=False),
    sa.Column('title', sa.Text(), server_default=sa.text("'New Chat'"), nullable=False),
    sa.Column('status', postgresql.ENUM('waiting', 'pending', 'running', 'paused', 'completed', 'error', 'requires_action', name='chat_status', create_type=False), server_default=sa.text("'waiting'"), nullable=False),
    sa.Column('worker_id', sa.Uuid(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('generation', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('interrupt_promote_id', sa.BigInteger(), nullable=True),
    sa.Column('archived', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('mode', postgresql.ENUM('computer_use', 'explore', name='chat_mode', create_type=False), nullable=True),
    sa.Column('mcp_server_ids', postgresql.ARRAY(sa.UUID()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('labels', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('pin_order', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_read_message_id', sa.BigInteger(), nullable=True),
    sa.Column('last_injected_context', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('dynamic_tools', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('plan_mode', postgresql.ENUM('plan', name='chat_plan_mode', create_type=False), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['last_model_config_id'], ['chat_model_configs.id'], ),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_chat_id'], ['chats.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['root_chat_id'], ['chats.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_chats_labels', 'chats', ['labels'], unique=False, postgresql_using='gin')
    op.create_index('idx_chats_last_model_config_id', 'chats', ['last_model_config_id'], unique=False)
    op.create_index('idx_chats_organization_id', 'chats', ['organization_id'], unique=False)
    op.create_index('idx_chats_owner', 'chats', ['owner_id'], unique=False)
    op.create_index('idx_chats_owner_updated', 'chats', ['owner_id', sa.literal_column('updated_at DESC'), 'id'], unique=False)
    op.create_index('idx_chats_parent_chat_id', 'chats', ['parent_chat_id'], unique=False)
    op.create_index('idx_chats_pending', 'chats', ['status'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('idx_chats_root_chat_id', 'chats', ['root_chat_id'], unique=False)
    op.create_index('idx_chats_workspace', 'chats', ['workspace_id'], unique=False)
    op.create_table('chat_messages',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('chat_id', sa.UUID(), nullable=False),
    sa.Column('model_config_id', sa.UUID(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('role', postgresql.ENUM('system', 'user', 'assistant', 'tool', name='chat_message_role', create_type=False), nullable=False),
    sa.Column('content', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('content_version', sa.SmallInteger(), server_default='1', nullable=False),
    sa.Column('visibility', postgresql.ENUM('user', 'model', 'both', name='chat_message_visibility', create_type=False), server_default=sa.text("'both'"), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=True),
    sa.Column('output_tokens', sa.BigInteger(), nullable=True),
    sa.Column('total_tokens', sa.BigInteger(), nullable=True),
    sa.Column('reasoning_tokens', sa.BigInteger(), nullable=True),
    sa.Column('cache_creation_tokens', sa.BigInteger(), nullable=True),
    sa.Column('cache_read_tokens', sa.BigInteger(), nullable=True),
    sa.Column('context_limit', sa.BigInteger(), nullable=True),
    sa.Column('compressed', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('total_cost_micros', sa.BigInteger(), nullable=True),
    sa.Column('runtime_ms', sa.BigInteger(), nullable=True),
    sa.Column('deleted', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('provider_response_id', sa.Text(), nullable=True),
    sa.Column('step_key', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_config_id'], ['chat_model_configs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_chat_messages_chat', 'chat_messages', ['chat_id', 'id'], unique=False)
    op.create_index('idx_chat_messages_created_at', 'chat_messages', ['created_at'], unique=False)
    op.create_index('idx_chat_messages_owner_spend', 'chat_messages', ['chat_id', 'created_at'], unique=False, postgresql_where=sa.text('total_cost_micros IS NOT NULL'))
    op.create_index('uq_chat_messages_step_key', 'chat_messages', ['chat_id', 'step_key'], unique=True, postgresql_where=sa.text('step_key IS NOT NULL'))
    op.create_table('chat_queued_messages',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('chat_id', sa.UUID(), nullable=False),
    sa.Column('content', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('model_config_id', sa.UUID(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_config_id'], ['chat_model_configs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_chat_queued_messages_chat', 'chat_queued_messages', ['chat_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('idx_chat_queued_messages_chat', table_name='chat_queued_messages')
    op.drop_table('chat_queued_messages')
    op.drop_index('uq_chat_messages_step_key', table_name='chat_messages', postgresql_where=sa.text('step_key IS NOT NULL'))
    op.drop_index('idx_chat_messages_owner_spend', table_name='chat_messages', postgresql_where=sa.text('total_cost_micros IS NOT NULL'))
    op.drop_index('idx_chat_messages_created_at', table_name='chat_messages')
    op.drop_index('idx_chat_messages_chat', table_name='chat_messages')
    op.drop_table('chat_messages')
    op.drop_index('idx_chats_workspace', table_name='chats')
    op.drop_index('idx_chats_root_chat_id', table_name='chats')
    op.drop_index('idx_chats_pending', table_name='chats', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('idx_chats_parent_chat_id', table_name='chats')
    op.drop_index('idx_chats_owner_updated', table_name='chats')
    op.drop_index('idx_chats_owner', table_name='chats')
    op.drop_index('idx_chats_organization_id', table_name='chats')
    op.drop_index('idx_chats_last_model_config_id', table_name='chats')
    op.drop_index('idx_chats_labels', table_name='chats', postgresql_using='gin')
    op.drop_table('chats')
    op.drop_index('idx_chat_model_configs_single_default', table_name='chat_model_configs', postgresql_where=sa.text('is_default AND NOT deleted'))
    op.drop_index('idx_chat_model_configs_provider_model', table_name='chat_model_configs')
    op.drop_index('idx_chat_model_configs_enabled', table_name='chat_model_configs')
    op.drop_table('chat_model_configs')
    op.drop_table('organization_members')
    op.drop_index('idx_chat_providers_enabled', table_name='chat_providers')
    op.drop_table('chat_providers')
    op.drop_table('api_keys')
    op.drop_table('users')
    op.drop_table('organizations')
    for name in ENUMS:
        postgresql.ENUM(name=name).drop(op.get_bind())
