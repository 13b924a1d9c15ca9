"""Organizations, users, memberships, groups and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import (
    bool_field,
    created_at,
    fk_uuid,
    text_array,
    text_field,
    tstz,
    updated_at,
    uuid_pk,
)


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    id: uuid.UUID = uuid_pk()
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    display_name: str = text_field("")
    description: str = text_field("")
    icon: str = text_field("")
    is_default: bool = bool_field(False)
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = uuid_pk()
    username: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    email: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    name: str = text_field("")
    login_type: str = text_field("password")
    status: str = text_field("active")
    # Site-wide roles (owner, user-admin, member, agents-access).
    rbac_roles: list[str] = text_array()
    deleted: bool = bool_field(False)
    # The user's own chat spend cap per usage period (reference §2.5); NULL: no override.
    chat_spend_limit_micros: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger,
            sa.CheckConstraint(
                "chat_spend_limit_micros IS NULL OR chat_spend_limit_micros > 0",
                name="users_chat_spend_limit_micros_check",
            ),
            nullable=True,
        ),
    )
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class OrganizationMember(SQLModel, table=True):
    __tablename__ = "organization_members"

    organization_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
        )
    )
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        )
    )
    roles: list[str] = text_array()
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class ApiKey(SQLModel, table=True):
    """A session token: ``<id>-<secret>``; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    hashed_secret: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    user_id: uuid.UUID = fk_uuid("users.id", ondelete="CASCADE", nullable=False)
    token_name: str = text_field("")
    login_type: str = text_field("token")
    expires_at: datetime | None = tstz()
    last_used: datetime | None = tstz()
    created_at: datetime = created_at()


# The implicit group of every organization: its id is the organization's id, a trigger creates
# it with the organization (migration 0008), and its members are the organization's members,
# without group_members rows.
EVERYONE_GROUP = "Everyone"


class Group(SQLModel, table=True):
    __tablename__ = "groups"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "name", name="groups_organization_id_name_key"),
        sa.CheckConstraint(
            "chat_spend_limit_micros IS NULL OR chat_spend_limit_micros > 0",
            name="groups_chat_spend_limit_micros_check",
        ),
    )

    id: uuid.UUID = uuid_pk()
    organization_id: uuid.UUID = fk_uuid("organizations.id", ondelete="CASCADE", nullable=False)
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    display_name: str = text_field("")
    avatar_url: str = text_field("")
    # The group's chat spend cap per usage period (reference §2.5); NULL: no group override.
    chat_spend_limit_micros: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, nullable=True)
    )
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()

    @property
    def is_everyone(self) -> bool:
        return self.id == self.organization_id


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_members"
    __table_args__ = (sa.Index("idx_group_members_user_id", "user_id"),)

    group_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
        )
    )
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        )
    )
    created_at: datetime = created_at()
