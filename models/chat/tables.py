"""Chats, their messages and their queue of follow-ups (reference §2.1–§2.3)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import (
    created_at,
    fk_uuid,
    jsonb,
    pg_enum,
    tstz,
    updated_at,
    uuid_array,
    uuid_pk,
)
from models.enums import (
    ChatMode,
    ChatStatus,
    ClientType,
    MessageRole,
    MessageVisibility,
    PlanMode,
)

# The predicate of idx_chat_messages_file_parts; queries repeat it verbatim to use the index.
FILE_PARTS_PREDICATE = """content @> '[{"type": "file"}]'::jsonb"""


class Chat(SQLModel, table=True):
    __tablename__ = "chats"
    __table_args__ = (
        sa.Index("idx_chats_owner", "owner_id"),
        sa.Index("idx_chats_organization_id", "organization_id"),
        sa.Index("idx_chats_workspace", "workspace_id"),
        sa.Index("idx_chats_parent_chat_id", "parent_chat_id"),
        sa.Index("idx_chats_root_chat_id", "root_chat_id"),
        sa.Index("idx_chats_last_model_config_id", "last_model_config_id"),
        sa.Index("idx_chats_labels", "labels", postgresql_using="gin"),
        sa.Index("idx_chats_pending", "status", postgresql_where=sa.text("status = 'pending'")),
        sa.Index("idx_chats_owner_updated", "owner_id", sa.text("updated_at DESC"), "id"),
        # The retention purge finds archived chats by archive time (models/retention.py).
        sa.Index(
            "idx_chats_archived_updated_at", "updated_at", postgresql_where=sa.text("archived")
        ),
    )

    id: uuid.UUID = uuid_pk()
    organization_id: uuid.UUID = fk_uuid("organizations.id", ondelete="CASCADE", nullable=False)
    owner_id: uuid.UUID = fk_uuid("users.id", ondelete="CASCADE", nullable=False)
    # Workspaces arrive with the tools issue; until then the column is a plain nullable uuid.
    workspace_id: uuid.UUID | None = fk_uuid("workspaces.id", ondelete="SET NULL")
    build_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(sa.Uuid, nullable=True))
    agent_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(sa.Uuid, nullable=True))
    parent_chat_id: uuid.UUID | None = fk_uuid("chats.id", ondelete="SET NULL")
    root_chat_id: uuid.UUID | None = fk_uuid("chats.id", ondelete="SET NULL")
    last_model_config_id: uuid.UUID = fk_uuid("chat_model_configs.id", nullable=False)
    title: str = Field(
        default="New Chat",
        sa_column=sa.Column(sa.Text, nullable=False, server_default=sa.text("'New Chat'")),
    )
    status: ChatStatus = Field(
        default=ChatStatus.WAITING,
        sa_column=sa.Column(
            pg_enum(ChatStatus, "chat_status"),
            nullable=False,
            server_default=sa.text("'waiting'"),
        ),
    )
    worker_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(sa.Uuid))
    started_at: datetime | None = tstz()
    heartbeat_at: datetime | None = tstz()
    # Bumped every time a new run is requested (status -> pending); a queue message that
    # carries an older generation is stale and dropped.
    generation: int = Field(
        default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0")
    )
    # A queued message to promote once the interrupted run has persisted its partial step
    # (busy_behavior=interrupt on a running chat).
    interrupt_promote_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    archived: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default="false")
    )
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    mode: ChatMode | None = Field(
        default=None, sa_column=sa.Column(pg_enum(ChatMode, "chat_mode"), nullable=True)
    )
    mcp_server_ids: list[uuid.UUID] = uuid_array()
    labels: dict[str, str] = jsonb({}, "{}")
    pin_order: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )
    last_read_message_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    last_injected_context: Any = Field(default=None, sa_column=sa.Column(JSONB))
    dynamic_tools: Any = Field(default=None, sa_column=sa.Column(JSONB))
    plan_mode: PlanMode | None = Field(
        default=None, sa_column=sa.Column(pg_enum(PlanMode, "chat_plan_mode"), nullable=True)
    )
    client_type: ClientType = Field(
        default=ClientType.API,
        sa_column=sa.Column(
            pg_enum(ClientType, "chat_client_type"),
            nullable=False,
            server_default=sa.text("'api'"),
        ),
    )
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class ChatMessage(SQLModel, table=True):
    __tablename__ = "chat_messages"
    __table_args__ = (
        sa.Index("idx_chat_messages_chat", "chat_id", "id"),
        sa.Index("idx_chat_messages_created_at", "created_at"),
        sa.Index(
            "idx_chat_messages_owner_spend",
            "chat_id",
            "created_at",
            postgresql_where=sa.text("total_cost_micros IS NOT NULL"),
        ),
        # The idempotency key of a persisted step: a redelivered step can never write twice.
        sa.Index(
            "uq_chat_messages_step_key",
            "chat_id",
            "step_key",
            unique=True,
            postgresql_where=sa.text("step_key IS NOT NULL"),
        ),
        # Messages with file parts: the retention purge keeps the files they reference.
        sa.Index(
            "idx_chat_messages_file_parts",
            "chat_id",
            postgresql_where=sa.text(FILE_PARTS_PREDICATE),
        ),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )
    chat_id: uuid.UUID = fk_uuid("chats.id", ondelete="CASCADE", nullable=False)
    model_config_id: uuid.UUID | None = fk_uuid("chat_model_configs.id")
    created_by: uuid.UUID | None = Field(default=None, sa_column=sa.Column(sa.Uuid))
    role: MessageRole = Field(
        sa_column=sa.Column(pg_enum(MessageRole, "chat_message_role"), nullable=False)
    )
    content: list[dict[str, Any]] = jsonb([], "[]")
    content_version: int = Field(
        default=1, sa_column=sa.Column(sa.SmallInteger, nullable=False, server_default="1")
    )
    visibility: MessageVisibility = Field(
        default=MessageVisibility.BOTH,
        sa_column=sa.Column(
            pg_enum(MessageVisibility, "chat_message_visibility"),
            nullable=False,
            server_default=sa.text("'both'"),
        ),
    )
    input_tokens: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    output_tokens: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    total_tokens: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    reasoning_tokens: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    cache_creation_tokens: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    cache_read_tokens: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    context_limit: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    compressed: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default="false")
    )
    total_cost_micros: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    runtime_ms: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    deleted: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default="false")
    )
    provider_response_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    step_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = created_at()


class ChatQueuedMessage(SQLModel, table=True):
    __tablename__ = "chat_queued_messages"
    __table_args__ = (sa.Index("idx_chat_queued_messages_chat", "chat_id", "id"),)

    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )
    chat_id: uuid.UUID = fk_uuid("chats.id", ondelete="CASCADE", nullable=False)
    content: list[dict[str, Any]] = jsonb([], "[]")
    model_config_id: uuid.UUID | None = fk_uuid("chat_model_configs.id")
    created_by: uuid.UUID | None = Field(default=None, sa_column=sa.Column(sa.Uuid))
    created_at: datetime = created_at()
