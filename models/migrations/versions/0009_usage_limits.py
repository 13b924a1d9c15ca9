"""chat usage limits

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25

chat_usage_limit_config is Coder's singleton spend-limit configuration (reference §2.5),
seeded here with its one disabled row; users.chat_spend_limit_micros is the per-user override
(groups.chat_spend_limit_micros came with the groups in 0008). The rules are in
models/usage_limits.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('chat_usage_limit_config',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('singleton', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('default_limit_micros', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('period', sa.Text(), server_default=sa.text("'month'"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('singleton', name='chat_usage_limit_config_singleton_check'),
    sa.CheckConstraint('default_limit_micros >= 0', name='chat_usage_limit_config_default_limit_micros_check'),
    sa.CheckConstraint("period IN ('day', 'week', 'month')", name='chat_usage_limit_config_period_check'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('singleton')
    )
    op.execute("INSERT INTO chat_usage_limit_config (singleton, enabled) VALUES (true, false)")
    op.add_column('users', sa.Column('chat_spend_limit_micros', sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        'users_chat_spend_limit_micros_check', 'users',
        'chat_spend_limit_micros IS NULL OR chat_spend_limit_micros > 0',
    )


def downgrade() -> None:
    op.drop_constraint('users_chat_spend_limit_micros_check', 'users', type_='check')
    op.drop_column('users', 'chat_spend_limit_micros')
    op.drop_table('chat_usage_limit_config')
