"""config_version: a version number the configuration tables bump themselves

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24

One row; a statement-level trigger on each configuration table (models/config_version.py's
VERSIONED_TABLES) adds one to it in the writing transaction, so workers can cache what they
derive from those tables until the version moves (workers/config_cache.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Fixed here rather than imported: a migration must not change when the models do.
TABLES = (
    "chat_providers",
    "chat_model_configs",
    "user_chat_provider_keys",
    "chat_usage_limit_config",
    "site_configs",
    "mcp_server_configs",
)

BUMP_FUNCTION = """
CREATE FUNCTION config_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO config_version AS v (singleton, version) VALUES (true, 1)
    ON CONFLICT (singleton) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        'config_version',
        sa.Column('singleton', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column('version', sa.BigInteger(), server_default='0', nullable=False),
        sa.CheckConstraint('singleton', name='ck_config_version_singleton'),
        sa.PrimaryKeyConstraint('singleton'),
    )
    op.execute("INSERT INTO config_version (singleton, version) VALUES (true, 0)")
    op.execute(BUMP_FUNCTION)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_config_version AFTER INSERT OR UPDATE OR DELETE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION config_version_bump()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_config_version_truncate AFTER TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION config_version_bump()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_config_version ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_config_version_truncate ON {table}")
    op.execute("DROP FUNCTION IF EXISTS config_version_bump()")
    op.drop_table('config_version')
