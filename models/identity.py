"""Organizations, users, memberships and API keys."""

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
