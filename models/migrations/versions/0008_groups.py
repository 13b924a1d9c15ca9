"""groups, group members and the Everyone group

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25

groups and group_members as Coder's tables of the same names (issue 5): a group belongs to
one organization and may carry a chat spend cap (``chat_spend_limit_micros``, NULL or > 0,
reference §2.5). Every organization has the implicit Everyone group, whose id is the
organization's id and whose members are the organization's members (no group_members rows):
a trigger creates it with each organization, and existing organizations get theirs here.
Organizations gain Coder's ``description`` and ``icon``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVERYONE_FUNCTION = """
CREATE FUNCTION insert_everyone_group() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO groups (id, organization_id, name) VALUES (NEW.id, NEW.id, 'Everyone')
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.add_column('organizations', sa.Column('description', sa.Text(), server_default='', nullable=False))
    op.add_column('organizations', sa.Column('icon', sa.Text(), server_default='', nullable=False))
    op.create_table('groups',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('organization_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), server_default='', nullable=False),
    sa.Column('avatar_url', sa.Text(), server_default='', nullable=False),
    sa.Column('chat_spend_limit_micros', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('chat_spend_limit_micros IS NULL OR chat_spend_limit_micros > 0', name='groups_chat_spend_limit_micros_check'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organization_id', 'name', name='groups_organization_id_name_key')
    )
    op.create_table('group_members',
    sa.Column('group_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'user_id')
    )
    op.create_index('idx_group_members_user_id', 'group_members', ['user_id'], unique=False)
    op.execute(EVERYONE_FUNCTION)
    op.execute(
        "CREATE TRIGGER trigger_insert_everyone_group AFTER INSERT ON organizations "
        "FOR EACH ROW EXECUTE FUNCTION insert_everyone_group()"
    )
    op.execute(
        "INSERT INTO groups (id, organization_id, name) "
        "SELECT id, id, 'Everyone' FROM organizations ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER trigger_insert_everyone_group ON organizations")
    op.execute("DROP FUNCTION insert_everyone_group()")
    op.drop_index('idx_group_members_user_id', table_name='group_members')
    op.drop_table('group_members')
    op.drop_table('groups')
    op.drop_column('organizations', 'icon')
    op.drop_column('organizations', 'description')
