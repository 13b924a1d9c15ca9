"""Column helpers shared by every table module."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlmodel import Field


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def uuid_pk() -> Any:
    return Field(
        default_factory=uuid.uuid4,
        sa_column=sa.Column(
            UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")
        ),
    )


def created_at() -> Any:
    return Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def updated_at() -> Any:
    return Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def tstz(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=nullable))


def fk_uuid(target: str, *, ondelete: str | None = None, nullable: bool = True) -> Any:
    return Field(
        default=None,
        sa_column=sa.Column(
            UUID(as_uuid=True), sa.ForeignKey(target, ondelete=ondelete), nullable=nullable
        ),
    )


def jsonb(default: Any, server_default: str) -> Any:
    factory = (lambda: dict(default)) if isinstance(default, dict) else (lambda: list(default))
    return Field(
        default_factory=factory,
        sa_column=sa.Column(JSONB, nullable=False, server_default=sa.text(f"'{server_default}'")),
    )


def pg_enum(enum_cls: type, name: str) -> sa.Enum:
    """A native Postgres enum storing the members' values (not their names)."""
    return sa.Enum(
        enum_cls,
        name=name,
        values_callable=lambda e: [m.value for m in e],
        create_type=False,
    )


def uuid_array() -> Any:
    return Field(
        default_factory=list,
        sa_column=sa.Column(
            ARRAY(UUID(as_uuid=True)), nullable=False, server_default=sa.text("'{}'")
        ),
    )


def text_array() -> Any:
    return Field(
        default_factory=list,
        sa_column=sa.Column(ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")),
    )


def text_field(default: str) -> Any:
    """A NOT NULL text column with the same default in Python and in the database."""
    return Field(
        default=default,
        sa_column=sa.Column(sa.Text, nullable=False, server_default=default),
    )


def bool_field(default: bool) -> Any:
    """A NOT NULL boolean column with the same default in Python and in the database."""
    return Field(
        default=default,
        sa_column=sa.Column(
            sa.Boolean, nullable=False, server_default=sa.text("true" if default else "false")
        ),
    )


def int_field(default: int) -> Any:
    """A NOT NULL integer column with the same default in Python and in the database."""
    return Field(
        default=default,
        sa_column=sa.Column(sa.Integer, nullable=False, server_default=str(default)),
    )
