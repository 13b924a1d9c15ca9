"""Per-user settings and the audit log.

``user_configs`` holds a user's own chat settings as key/value rows, as Coder's table of the
same name does (the personal custom prompt; later the per-model compaction thresholds).
``audit_logs`` records admin changes and chat create/patch (reference §8), readable by owners.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_at, fk_uuid, jsonb, text_field, updated_at, uuid_pk


class UserConfig(SQLModel, table=True):
    __tablename__ = "user_configs"

    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        )
    )
    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    value: str = text_field("")
    updated_at: datetime = updated_at()


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_logs"
    __table_args__ = (
        sa.Index("idx_audit_logs_time", sa.text("time DESC"), "id"),
        sa.Index("idx_audit_logs_user_id", "user_id"),
    )

    id: uuid.UUID = uuid_pk()
    time: datetime = created_at()
    # SET NULL: the entry outlives the user it names (its username is kept below).
    user_id: uuid.UUID | None = fk_uuid("users.id", ondelete="SET NULL")
    username: str = text_field("")
    action: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    resource_type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    resource_id: str = text_field("")
    request_path: str = text_field("")
    status_code: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    ip: str = text_field("")
    user_agent: str = text_field("")
    # The request's fields with secrets replaced (never a key, token or password).
    diff: dict[str, Any] = jsonb({}, "{}")
