"""column defaults

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Every NOT NULL column gets its database default (reference §2), so rows written by raw SQL
or by another client get the same values the ORM gives them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column('api_keys', 'token_name',
               existing_type=sa.TEXT(),
               server_default='',
               existing_nullable=False)
    op.alter_column('api_keys', 'login_type',
               existing_type=sa.TEXT(),
               server_default='token',
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'display_name',
               existing_type=sa.TEXT(),
               server_default='',
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'enabled',
               existing_type=sa.BOOLEAN(),
               server_default=sa.text('true'),
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'is_default',
               existing_type=sa.BOOLEAN(),
               server_default=sa.text('false'),
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'deleted',
               existing_type=sa.BOOLEAN(),
               server_default=sa.text('false'),
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'compression_threshold',
               existing_type=sa.INTEGER(),
               server_default='70',
               existing_nullable=False)
    op.alter_column('chat_providers', 'display_name',
               existing_type=sa.TEXT(),
               server_default='',
               existing_nullable=False)
    op.alter_column('chat_providers', 'api_key',
               existing_type=sa.TEXT(),
               server_default='',
               existing_nullable=False)
    op.alter_column('chat_providers', 'enabled',
               existing_type=sa.BOOLEAN(),
               server_default=sa.text('true'),
               existing_nullable=False)
    op.alter_column('chat_providers', 'base_url',
               existing_type=sa.TEXT(),
               server_default='',
               existing_nullable=False)
    op.alter_column('chat_providers', 'central_api_key_enabled',
               existing_type=sa.BOOLEAN(),
               server_default=sa.text('true'),
               existing_nullable=False)
    op.alter_column('chat_providers', 'allow_user_api_key',
               existing_type=sa.BOOLEAN(),
               server_default=sa.text('false'),
               existing_nullable=False)
    op.alter_column('chat_providers', 'allow_central_api_key_fallback',
               existing_type=sa.BOOLEAN(),
               server_default=sa.text('false'),
               existing_nullable=False)
    op.alter_column('organizations', 'display_name',
               existing_type=sa.TEXT(),
               server_default='',
               existing_nullable=False)
    op.alter_column('organizations', 'is_default',
               existing_type=sa.BOOLEAN(),
               server_default=sa.text('false'),
               existing_nullable=False)
    op.alter_column('users', 'name',
               existing_type=sa.TEXT(),
               server_default='',
               existing_nullable=False)
    op.alter_column('users', 'login_type',
               existing_type=sa.TEXT(),
               server_default='password',
               existing_nullable=False)
    op.alter_column('users', 'status',
               existing_type=sa.TEXT(),
               server_default='active',
               existing_nullable=False)
    op.alter_column('users', 'deleted',
               existing_type=sa.BOOLEAN(),
               server_default=sa.text('false'),
               existing_nullable=False)


def downgrade() -> None:
    op.alter_column('users', 'deleted',
               existing_type=sa.BOOLEAN(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('users', 'status',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('users', 'login_type',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('users', 'name',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('organizations', 'is_default',
               existing_type=sa.BOOLEAN(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('organizations', 'display_name',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_providers', 'allow_central_api_key_fallback',
               existing_type=sa.BOOLEAN(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_providers', 'allow_user_api_key',
               existing_type=sa.BOOLEAN(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_providers', 'central_api_key_enabled',
               existing_type=sa.BOOLEAN(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_providers', 'base_url',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_providers', 'enabled',
               existing_type=sa.BOOLEAN(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_providers', 'api_key',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_providers', 'display_name',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'compression_threshold',
               existing_type=sa.INTEGER(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'deleted',
               existing_type=sa.BOOLEAN(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'is_default',
               existing_type=sa.BOOLEAN(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'enabled',
               existing_type=sa.BOOLEAN(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('chat_model_configs', 'display_name',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('api_keys', 'login_type',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
    op.alter_column('api_keys', 'token_name',
               existing_type=sa.TEXT(),
               server_default=None,
               existing_nullable=False)
