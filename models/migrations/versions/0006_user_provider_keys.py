"""user provider keys and default pricing

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

user_chat_provider_keys holds each user's own (BYOK) key per provider, encrypted, as Coder's
table of the same name (reference §2.4). The key policy's CHECK ``valid_credential_policy`` on
chat_providers already exists since 0001; the resolution rules live in models/key_policy.py.
chat_model_configs.cost_is_default is an agentfarm extension: the model's prices were taken
from litellm's bundled price map because the admin left them blank.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('user_chat_provider_keys',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('chat_provider_id', sa.UUID(), nullable=False),
    sa.Column('api_key', sa.Text(), nullable=False),
    sa.Column('api_key_key_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("api_key <> ''", name='user_chat_provider_keys_api_key_check'),
    sa.ForeignKeyConstraint(['chat_provider_id'], ['chat_providers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'chat_provider_id', name='user_chat_provider_keys_user_id_chat_provider_id_key')
    )
    op.add_column('chat_model_configs', sa.Column('cost_is_default', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    op.drop_column('chat_model_configs', 'cost_is_default')
    op.drop_table('user_chat_provider_keys')
