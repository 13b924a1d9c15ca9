"""chats.client_type

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Chats that existed before this migration were all created from the web UI, so they are
backfilled to 'ui'; from here on a chat created without a client_type is an API chat.
The column is added with DEFAULT 'ui' (which fills existing rows in one step) and the
default is then switched to 'api'.
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    postgresql.ENUM("ui", "api", name="chat_client_type").create(op.get_bind())
    op.execute("ALTER TABLE chats ADD COLUMN client_type chat_client_type NOT NULL DEFAULT 'ui'")
    op.execute("ALTER TABLE chats ALTER COLUMN client_type SET DEFAULT 'api'")


def downgrade() -> None:
    op.execute("ALTER TABLE chats DROP COLUMN client_type")
    postgresql.ENUM(name="chat_client_type").drop(op.get_bind())
