"""Templates, workspaces and the processes tools start in them; deployment settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import (
    bool_field,
    created_at,
    fk_uuid,
    jsonb,
    text_field,
    tstz,
    updated_at,
    uuid_pk,
)

MAX_TEMPLATE_DESCRIPTION = 128


class WorkspaceStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    DELETED = "deleted"


class NetworkPolicy(StrEnum):
    OPEN = "open"
    NONE = "none"


class Template(SQLModel, table=True):
    __tablename__ = "templates"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "name", name="uq_templates_org_name"),
        sa.CheckConstraint(
            f"char_length(description) <= {MAX_TEMPLATE_DESCRIPTION}",
            name="templates_description_length",
        ),
        sa.CheckConstraint("network_policy IN ('open', 'none')", name="templates_network_policy"),
        sa.CheckConstraint("provisioner IN ('local')", name="templates_provisioner"),
    )

    id: uuid.UUID = uuid_pk()
    organization_id: uuid.UUID = fk_uuid("organizations.id", ondelete="CASCADE", nullable=False)
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    display_name: str = text_field("")
    description: str = text_field("")
    readme: str = text_field("")
    provisioner: str = text_field("local")
    sandbox: bool = bool_field(False)
    network_policy: str = text_field("open")
    # Idle time after which a workspace of this template is stopped; NULL: deployment fallback.
    autostop_ttl_ms: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    deprecated: bool = bool_field(False)
    created_by: uuid.UUID | None = fk_uuid("users.id", ondelete="SET NULL")
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class Workspace(SQLModel, table=True):
    __tablename__ = "workspaces"
    __table_args__ = (
        sa.Index("idx_workspaces_owner", "owner_id"),
        sa.Index("idx_workspaces_host", "host"),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'stopped', 'failed', 'deleted')",
            name="workspaces_status",
        ),
    )

    id: uuid.UUID = uuid_pk()
    owner_id: uuid.UUID = fk_uuid("users.id", ondelete="CASCADE", nullable=False)
    organization_id: uuid.UUID = fk_uuid("organizations.id", ondelete="CASCADE", nullable=False)
    template_id: uuid.UUID = fk_uuid("templates.id", ondelete="RESTRICT", nullable=False)
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # The workspace host (worker queue workspace.<host>) that owns the directory.
    host: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    directory: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = text_field(WorkspaceStatus.PENDING.value)
    last_activity_at: datetime | None = tstz()
    deadline: datetime | None = tstz()
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class WorkspaceProcess(SQLModel, table=True):
    """A process a tool started; its output lives in the host's spool directory."""

    __tablename__ = "workspace_processes"
    __table_args__ = (sa.Index("idx_workspace_processes_chat", "chat_id"),)

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    workspace_id: uuid.UUID = fk_uuid("workspaces.id", ondelete="CASCADE", nullable=False)
    chat_id: uuid.UUID | None = fk_uuid("chats.id", ondelete="SET NULL")
    host: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    command: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    started_at: datetime = created_at()


class ToolCallStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    # A client-declared dynamic tool: the result comes from POST /chats/{chat}/tool-results.
    CLIENT = "client"
    DONE = "done"


class ChatToolCall(SQLModel, table=True):
    """One tool call of one step; the step's calls run in parallel as ``tool.run`` messages."""

    __tablename__ = "chat_tool_calls"
    __table_args__ = (
        sa.UniqueConstraint("chat_id", "step_key", "tool_call_id", name="uq_chat_tool_calls"),
        sa.Index("idx_chat_tool_calls_step", "chat_id", "step_key"),
    )

    id: uuid.UUID = uuid_pk()
    chat_id: uuid.UUID = fk_uuid("chats.id", ondelete="CASCADE", nullable=False)
    generation: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    step_key: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    position: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    tool_call_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    tool_name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    args: Any = Field(default=None, sa_column=sa.Column(JSONB))
    status: str = text_field(ToolCallStatus.QUEUED.value)
    result: Any = Field(default=None, sa_column=sa.Column(JSONB))
    is_error: bool = bool_field(False)
    worker_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(sa.Uuid))
    started_at: datetime | None = tstz()
    finished_at: datetime | None = tstz()
    created_at: datetime = created_at()
    # Set when the tool came from an admin MCP server (its parts carry the id too).
    mcp_server_config_id: uuid.UUID | None = fk_uuid("mcp_server_configs.id", ondelete="SET NULL")


class SiteConfig(SQLModel, table=True):
    """Deployment-wide settings as key/value rows (workspace TTL, template allowlist, …)."""

    __tablename__ = "site_configs"

    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    value: dict[str, Any] = jsonb({}, "{}")
    updated_at: datetime = updated_at()
