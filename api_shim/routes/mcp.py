"""``/api/experimental/mcp/servers``: admin MCP server configs (reference §6.3).

Admins (the owner role) create, change and delete servers and see every one; other users see
the enabled ones with the admin-only fields left out. Secrets are write-only: responses carry
``has_oauth2_secret``, ``has_api_key`` and ``has_custom_headers`` only. An ``oauth2`` server
without a manual client is auto-discovered and registered when it is saved.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, SecretStr
from sqlmodel import Session, select

from agentfarm import mcp_oauth
from api_shim.deps import AppSettings, CurrentUser, DbSession, OwnerUser, Secrets, parse_uuid
from api_shim.deps import require_owner as _require_owner
from api_shim.request_bodies import create_fields, sent_fields
from models.crypto import SecretBox
from models.errors import BadRequest, Forbidden
from models.identity.tables import User
from models.mcp import rules as mcp_rules
from models.mcp.tables import MCPServerConfig

router = APIRouter(prefix="/api/experimental/mcp/servers", tags=["mcp"])


class CreateMCPServerRequest(BaseModel):
    display_name: str = ""
    slug: str = ""
    description: str = ""
    icon_url: str = ""
    transport: str = ""
    url: str = ""
    auth_type: str = ""
    oauth2_client_id: str = ""
    oauth2_client_secret: SecretStr | None = None
    oauth2_auth_url: str = ""
    oauth2_token_url: str = ""
    oauth2_scopes: str = ""
    api_key_header: str = ""
    api_key_value: SecretStr | None = None
    custom_headers: dict[str, str] | None = None
    tool_allow_list: list[str] | None = None
    tool_deny_list: list[str] | None = None
    availability: str = ""
    enabled: bool = False
    model_intent: bool = False
    allow_in_plan_mode: bool = False


class UpdateMCPServerRequest(BaseModel):
    display_name: str | None = None
    slug: str | None = None
    description: str | None = None
    icon_url: str | None = None
    transport: str | None = None
    url: str | None = None
    auth_type: str | None = None
    oauth2_client_id: str | None = None
    oauth2_client_secret: SecretStr | None = None
    oauth2_auth_url: str | None = None
    oauth2_token_url: str | None = None
    oauth2_scopes: str | None = None
    api_key_header: str | None = None
    api_key_value: SecretStr | None = None
    custom_headers: dict[str, str] | None = None
    tool_allow_list: list[str] | None = None
    tool_deny_list: list[str] | None = None
    availability: str | None = None
    enabled: bool | None = None
    model_intent: bool | None = None
    allow_in_plan_mode: bool | None = None


def is_admin(user: User) -> bool:
    try:
        _require_owner(user)
    except Forbidden:
        return False
    return True


def _discover(box: SecretBox, row: MCPServerConfig, access_url: str) -> None:
    """Auto-discover the authorization server and register the farm as a client (§6.3)."""
    redirect = mcp_oauth.callback_url(access_url, str(row.id))
    try:
        client = asyncio.run(mcp_oauth.discover_and_register(row.url, redirect))
    except mcp_oauth.OAuthError as exc:
        raise BadRequest("OAuth2 auto-discovery failed.", detail=str(exc)) from None
    mcp_rules.store_discovered(box, row, client)


def render(session: Session, user: User, rows: list[MCPServerConfig]) -> list[dict[str, Any]]:
    admin = is_admin(user)
    connected = mcp_rules.connected_ids(session, user.id)
    return [mcp_rules.server_json(r, admin=admin, connected=connected) for r in rows]


@router.get("", summary="MCP servers (admins: all; others: the enabled ones, redacted)")
def list_servers(user: CurrentUser, session: DbSession) -> list[dict[str, Any]]:
    query = select(MCPServerConfig).order_by(MCPServerConfig.slug)
    if not is_admin(user):
        query = query.where(MCPServerConfig.enabled)
    return render(session, user, list(session.exec(query).all()))


@router.post("", status_code=201, summary="Add an MCP server (admin)")
def create_server(
    body: CreateMCPServerRequest,
    user: OwnerUser,
    session: DbSession,
    box: Secrets,
    settings: AppSettings,
) -> dict[str, Any]:
    row = MCPServerConfig(
        id=uuid.uuid4(), display_name="", slug="", url="", created_by=user.id, updated_by=user.id
    )
    mcp_rules.apply_changes(session, box, row, create_fields(body))
    if mcp_rules.needs_discovery(row):
        _discover(box, row, settings.access_url)
    session.add(row)
    session.commit()
    return render(session, user, [row])[0]


@router.get("/{mcp_server}", summary="One MCP server")
def get_server(mcp_server: str, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    server_id = parse_uuid(mcp_server, "MCP server config ID")
    row = mcp_rules.get_server(session, server_id, enabled_only=not is_admin(user))
    return render(session, user, [row])[0]


@router.patch("/{mcp_server}", summary="Change an MCP server (admin; every field optional)")
def update_server(
    mcp_server: str,
    body: UpdateMCPServerRequest,
    user: OwnerUser,
    session: DbSession,
    box: Secrets,
    settings: AppSettings,
) -> dict[str, Any]:
    server_id = parse_uuid(mcp_server, "MCP server config ID")
    row = mcp_rules.get_server(session, server_id, enabled_only=False)
    mcp_rules.apply_changes(session, box, row, sent_fields(body))
    if mcp_rules.needs_discovery(row):
        _discover(box, row, settings.access_url)
    row.updated_by = user.id
    session.commit()
    return render(session, user, [row])[0]


@router.delete("/{mcp_server}", status_code=204, summary="Delete an MCP server (admin)")
def delete_server(mcp_server: str, user: OwnerUser, session: DbSession) -> Response:
    server_id = parse_uuid(mcp_server, "MCP server config ID")
    row = mcp_rules.get_server(session, server_id, enabled_only=False)
    session.delete(row)
    session.commit()
    return Response(status_code=204)
