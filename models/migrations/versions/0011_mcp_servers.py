"""admin MCP servers, users' MCP OAuth2 tokens, workspace MCP discoveries

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24

mcp_server_configs and mcp_server_user_tokens follow Coder's tables (reference §2.6); secrets are
Fernet ciphertext. oauth2_token_auth_method and oauth2_resource are agentfarm extensions filled
by OAuth2 auto-discovery. workspace_mcp_discoveries keeps what a workspace's .mcp.json servers
offered when its host last discovered them, so a step can offer the tools without the host.
chat_tool_calls.mcp_server_config_id marks calls of admin MCP tools.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('mcp_server_configs',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('slug', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('icon_url', sa.Text(), server_default='', nullable=False),
    sa.Column('transport', sa.Text(), server_default='streamable_http', nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('auth_type', sa.Text(), server_default='none', nullable=False),
    sa.Column('oauth2_client_id', sa.Text(), server_default='', nullable=False),
    sa.Column('oauth2_client_secret', sa.Text(), server_default='', nullable=False),
    sa.Column('oauth2_client_secret_key_id', sa.Text(), nullable=True),
    sa.Column('oauth2_auth_url', sa.Text(), server_default='', nullable=False),
    sa.Column('oauth2_token_url', sa.Text(), server_default='', nullable=False),
    sa.Column('oauth2_scopes', sa.Text(), server_default='', nullable=False),
    sa.Column('oauth2_token_auth_method', sa.Text(), server_default='', nullable=False),
    sa.Column('oauth2_resource', sa.Text(), server_default='', nullable=False),
    sa.Column('api_key_header', sa.Text(), server_default='Authorization', nullable=False),
    sa.Column('api_key_value', sa.Text(), server_default='', nullable=False),
    sa.Column('api_key_value_key_id', sa.Text(), nullable=True),
    sa.Column('custom_headers', sa.Text(), server_default='', nullable=False),
    sa.Column('custom_headers_key_id', sa.Text(), nullable=True),
    sa.Column('tool_allow_list', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('tool_deny_list', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('availability', sa.Text(), server_default='default_off', nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('model_intent', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('allow_in_plan_mode', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_by', sa.UUID(), nullable=True),
    sa.Column('updated_by', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("auth_type IN ('none', 'oauth2', 'api_key', 'custom_headers')", name='mcp_server_configs_auth_type'),
    sa.CheckConstraint("availability IN ('force_on', 'default_on', 'default_off')", name='mcp_server_configs_availability'),
    sa.CheckConstraint("transport IN ('streamable_http', 'sse')", name='mcp_server_configs_transport'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['updated_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_index('idx_mcp_server_configs_enabled', 'mcp_server_configs', ['enabled'], unique=False, postgresql_where=sa.text('enabled'))
    op.create_index('idx_mcp_server_configs_forced', 'mcp_server_configs', ['enabled', 'availability'], unique=False, postgresql_where=sa.text("enabled AND availability = 'force_on'"))
    op.create_table('mcp_server_user_tokens',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('mcp_server_config_id', sa.UUID(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('access_token', sa.Text(), nullable=False),
    sa.Column('access_token_key_id', sa.Text(), nullable=True),
    sa.Column('refresh_token', sa.Text(), server_default='', nullable=False),
    sa.Column('refresh_token_key_id', sa.Text(), nullable=True),
    sa.Column('token_type', sa.Text(), server_default='Bearer', nullable=False),
    sa.Column('expiry', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['mcp_server_config_id'], ['mcp_server_configs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mcp_server_config_id', 'user_id', name='mcp_server_user_tokens_config_user')
    )
    op.create_index('idx_mcp_server_user_tokens_user_id', 'mcp_server_user_tokens', ['user_id'], unique=False)
    op.create_table('workspace_mcp_discoveries',
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('config_digest', sa.Text(), server_default='', nullable=False),
    sa.Column('tools', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('discovered_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id')
    )
    op.add_column('chat_tool_calls', sa.Column('mcp_server_config_id', sa.UUID(), nullable=True))
    op.create_foreign_key('chat_tool_calls_mcp_server_config_id_fkey', 'chat_tool_calls', 'mcp_server_configs', ['mcp_server_config_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    op.drop_constraint('chat_tool_calls_mcp_server_config_id_fkey', 'chat_tool_calls', type_='foreignkey')
    op.drop_column('chat_tool_calls', 'mcp_server_config_id')
    op.drop_table('workspace_mcp_discoveries')
    op.drop_index('idx_mcp_server_user_tokens_user_id', table_name='mcp_server_user_tokens')
    op.drop_table('mcp_server_user_tokens')
    op.drop_index('idx_mcp_server_configs_forced', table_name='mcp_server_configs', postgresql_where=sa.text("enabled AND availability = 'force_on'"))
    op.drop_index('idx_mcp_server_configs_enabled', table_name='mcp_server_configs', postgresql_where=sa.text('enabled'))
    op.drop_table('mcp_server_configs')
