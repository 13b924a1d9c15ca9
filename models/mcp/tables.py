"""Admin MCP servers and users' OAuth2 tokens for them (reference §2.6, §6.3), and what a
workspace's ``.mcp.json`` servers offered when they were last discovered (§6.2).

Secret columns hold Fernet ciphertext ('' when unset) next to the digest of the key that
produced it (``*_key_id``); they are never returned by the API (only ``has_*`` flags).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import (
    bool_field,
    created_at,
    fk_uuid,
    jsonb,
    text_array,
    text_field,
    tstz,
    updated_at,
    uuid_pk,
)


class MCPTransport(StrEnum):
    STREAMABLE_HTTP = "streamable_http"
    SSE = "sse"


class MCPAuthType(StrEnum):
    NONE = "none"
    OAUTH2 = "oauth2"
    API_KEY = "api_key"
    CUSTOM_HEADERS = "custom_headers"


class MCPAvailability(StrEnum):
    FORCE_ON = "force_on"
    DEFAULT_ON = "default_on"
    DEFAULT_OFF = "default_off"


def _check(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v.value}'" for v in values) + ")"


class MCPServerConfig(SQLModel, table=True):
    __tablename__ = "mcp_server_configs"
    __table_args__ = (
        sa.CheckConstraint(_check("transport", MCPTransport), name="mcp_server_configs_transport"),
        sa.CheckConstraint(_check("auth_type", MCPAuthType), name="mcp_server_configs_auth_type"),
        sa.CheckConstraint(
            _check("availability", MCPAvailability), name="mcp_server_configs_availability"
        ),
        sa.Index("idx_mcp_server_configs_enabled", "enabled", postgresql_where=sa.text("enabled")),
        sa.Index(
            "idx_mcp_server_configs_forced",
            "enabled",
            "availability",
            postgresql_where=sa.text("enabled AND availability = 'force_on'"),
        ),
    )

    id: uuid.UUID = uuid_pk()
    display_name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    slug: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    description: str = text_field("")
    icon_url: str = text_field("")
    transport: str = text_field(MCPTransport.STREAMABLE_HTTP.value)
    url: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    auth_type: str = text_field(MCPAuthType.NONE.value)
    oauth2_client_id: str = text_field("")
    oauth2_client_secret: str = text_field("")
    oauth2_client_secret_key_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    oauth2_auth_url: str = text_field("")
    oauth2_token_url: str = text_field("")
    oauth2_scopes: str = text_field("")
    # agentfarm extensions, filled by auto-discovery: how the client authenticates at the token
    # endpoint ('' = client_secret_post when there is a secret, else none) and the RFC 8707
    # resource indicator to send ('' = none; manual configurations send none).
    oauth2_token_auth_method: str = text_field("")
    oauth2_resource: str = text_field("")
    api_key_header: str = text_field("Authorization")
    api_key_value: str = text_field("")
    api_key_value_key_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # Ciphertext of a JSON object of header name → value ('' when there are none).
    custom_headers: str = text_field("")
    custom_headers_key_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    tool_allow_list: list[str] = text_array()
    tool_deny_list: list[str] = text_array()
    availability: str = text_field(MCPAvailability.DEFAULT_OFF.value)
    enabled: bool = bool_field(False)
    model_intent: bool = bool_field(False)
    allow_in_plan_mode: bool = bool_field(False)
    created_by: uuid.UUID | None = fk_uuid("users.id", ondelete="SET NULL")
    updated_by: uuid.UUID | None = fk_uuid("users.id", ondelete="SET NULL")
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class MCPServerUserToken(SQLModel, table=True):
    """One user's OAuth2 token for one oauth2 MCP server (both tokens encrypted)."""

    __tablename__ = "mcp_server_user_tokens"
    __table_args__ = (
        sa.UniqueConstraint(
            "mcp_server_config_id", "user_id", name="mcp_server_user_tokens_config_user"
        ),
        sa.Index("idx_mcp_server_user_tokens_user_id", "user_id"),
    )

    id: uuid.UUID = uuid_pk()
    mcp_server_config_id: uuid.UUID = fk_uuid(
        "mcp_server_configs.id", ondelete="CASCADE", nullable=False
    )
    user_id: uuid.UUID = fk_uuid("users.id", ondelete="CASCADE", nullable=False)
    access_token: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    access_token_key_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    refresh_token: str = text_field("")
    refresh_token_key_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    token_type: str = text_field("Bearer")
    expiry: datetime | None = tstz()
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class WorkspaceMCPDiscovery(SQLModel, table=True):
    """The tools a workspace's ``.mcp.json`` servers offered when last discovered on its host.

    ``tools``: ``[{name, server, tool, description, input_schema}]`` (``name`` is what the model
    is offered, ``<server>__<tool>``); ``errors``: ``[{server, error}]`` for skipped servers.
    The host rediscovers when ``.mcp.json`` changes (``config_digest``) or the entry is old.
    """

    __tablename__ = "workspace_mcp_discoveries"

    workspace_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
        )
    )
    config_digest: str = text_field("")
    tools: list[dict[str, Any]] = jsonb([], "[]")
    errors: list[dict[str, Any]] = jsonb([], "[]")
    discovered_at: datetime = created_at()
