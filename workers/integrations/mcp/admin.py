"""Admin MCP servers in a chat: which tools a step offers, and forwarding a call (§6.3).

Tools are offered as ``<slug>__<tool>``. A server's tool list is cached in Redis for
``CACHE_TTL_S`` (per user for oauth2 servers, whose lists depend on the token), a failed listing
for ``FAILURE_TTL_S``; an entry is dropped when its server's config changes and whenever a call
to that server fails, so the next step lists it again. Calls run as ``tool.run`` on the default
queue (they never touch a workspace), with ``model_intent`` stripped and a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from agentfarm import mcp_oauth
from models import db
from models.chat.tables import Chat
from models.crypto import SecretBox, SecretsUnavailable
from models.mcp import selection as mcp_selection
from models.mcp.tables import MCPAuthType, MCPServerConfig
from workers.integrations.mcp import connect, results
from workers.runtime import WorkerRuntime
from workers.tools.plan_mode import MCPTool, tool_refusal

log = logging.getLogger("agentfarm.mcp.admin")

SEPARATOR = "__"
CACHE_TTL_S = 60  # [inferred] "a short TTL"
FAILURE_TTL_S = 15
LIST_TIMEOUT_S = 15.0
CALL_TIMEOUT_S = 60.0
INTENT = "model_intent"
INTENT_SCHEMA = {
    "type": "string",
    "description": "Say in a few words why you are calling this tool (shown to the user).",
}


class NotConnected(Exception):
    """The user has no usable OAuth2 token for the server (message: what to do)."""


def auth_headers(
    session: Session, box: SecretBox, server: MCPServerConfig, user_id: uuid.UUID
) -> dict[str, str]:
    """The headers that authenticate ``user_id``'s requests to ``server``; an oauth2 token
    within ``mcp_oauth.EXPIRY_BUFFER`` of expiring is refreshed (under a row lock, so
    parallel calls refresh once)."""
    if server.auth_type == MCPAuthType.API_KEY and server.api_key_value:
        return {server.api_key_header or "Authorization": box.decrypt(server.api_key_value)}
    if server.auth_type == MCPAuthType.CUSTOM_HEADERS and server.custom_headers:
        return dict(json.loads(box.decrypt(server.custom_headers)))
    if server.auth_type != MCPAuthType.OAUTH2:
        return {}
    token = mcp_selection.user_token(session, server.id, user_id, for_update=True)
    reconnect = f"connect your account to MCP server {server.slug!r} (oauth2/connect)"
    if token is None:
        raise NotConnected(f"not connected: {reconnect}")
    if mcp_oauth.needs_refresh(token.expiry):
        if not token.refresh_token:
            raise NotConnected(f"the OAuth2 token expired: {reconnect}")
        secret = box.decrypt(server.oauth2_client_secret) if server.oauth2_client_secret else ""
        client = mcp_oauth.client_for(server, secret)
        try:
            fresh = asyncio.run(mcp_oauth.refresh(client, box.decrypt(token.refresh_token)))
        except mcp_oauth.OAuthError as exc:
            raise NotConnected(f"refreshing the OAuth2 token failed ({exc}): {reconnect}") from None
        token = mcp_selection.store_token(
            session,
            server_id=server.id,
            user_id=user_id,
            access=box.encrypt(fresh.access_token),
            refresh=box.encrypt(fresh.refresh_token) if fresh.refresh_token else None,
            token_type=fresh.token_type,
            expiry=mcp_oauth.expiry_of(fresh),
        )
        log.info("refreshed an MCP OAuth2 token", extra={"mcp_server": server.slug})
    return {"Authorization": f"{token.token_type or 'Bearer'} {box.decrypt(token.access_token)}"}


def _target(server: MCPServerConfig, headers: dict[str, str]) -> connect.HttpTarget:
    return connect.HttpTarget(url=server.url, transport=server.transport, headers=headers)


def cache_key(server: MCPServerConfig, user_id: uuid.UUID) -> str:
    if server.auth_type == MCPAuthType.OAUTH2:
        return f"mcp:tools:{server.id}:{user_id}"
    return f"mcp:tools:{server.id}"


def _listed(rt: WorkerRuntime, server: MCPServerConfig, headers: dict[str, str], key: str) -> Any:
    version = server.updated_at.isoformat()
    raw = rt.redis.get(key)
    cached = json.loads(raw) if raw else None
    if cached is not None and cached.get("v") == version:
        return cached.get("tools", cached.get("error"))
    try:
        tools: Any = connect.list_tools(_target(server, headers), timeout=LIST_TIMEOUT_S)
        entry, ttl = {"v": version, "tools": tools}, CACHE_TTL_S
    except connect.MCPUnavailable as exc:
        tools = f"listing tools failed: {exc}"
        entry, ttl = {"v": version, "error": tools}, FAILURE_TTL_S
    rt.redis.set(key, json.dumps(entry), ex=ttl)
    return tools


def allowed(server: MCPServerConfig, tool: str) -> bool:
    """The allow list (when not empty) admits, the deny list always blocks (deny wins)."""
    if tool in (server.tool_deny_list or []):
        return False
    allow = server.tool_allow_list or []
    return not allow or tool in allow


def _schema(server: MCPServerConfig, schema: dict[str, Any]) -> dict[str, Any]:
    if not server.model_intent:
        return schema
    props = {**(schema.get("properties") or {}), INTENT: INTENT_SCHEMA}
    required = [*(schema.get("required") or []), INTENT]
    return {**schema, "type": "object", "properties": props, "required": required}


def offered_tools(
    rt: WorkerRuntime, chat_id: uuid.UUID, taken_names: set[str]
) -> tuple[list[dict[str, Any]], dict[str, uuid.UUID]]:
    """The admin MCP tools one step of the chat offers, and each one's server."""
    offered: list[dict[str, Any]] = []
    servers: dict[str, uuid.UUID] = {}
    with db.session_scope() as session:
        chat = session.get(Chat, chat_id)
        if chat is None:
            return [], {}
        usable = []
        for server in mcp_selection.chat_servers(session, chat):
            if tool_refusal(server.slug, chat, MCPTool(True, server.allow_in_plan_mode)):
                continue
            try:
                usable.append((server, auth_headers(session, rt.secrets, server, chat.owner_id)))
            except (NotConnected, SecretsUnavailable) as exc:
                log.info("MCP server skipped: %s", exc, extra={"mcp_server": server.slug})
        owner = chat.owner_id
        session.expunge_all()
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(usable)))) as pool:
        listed = list(pool.map(lambda u: _listed(rt, u[0], u[1], cache_key(u[0], owner)), usable))
    for (server, _), tools in zip(usable, listed, strict=True):
        if isinstance(tools, str):
            log.warning("MCP server skipped: %s", tools, extra={"mcp_server": server.slug})
            continue
        for tool in tools:
            name = f"{server.slug}{SEPARATOR}{tool['name']}"
            if not allowed(server, tool["name"]) or name in taken_names:
                continue
            if not connect.TOOL_NAME_RE.fullmatch(name):
                log.info("MCP tool skipped: bad name %r", name, extra={"mcp_server": server.slug})
                continue
            taken_names.add(name)
            servers[name] = server.id
            function = {
                "name": name,
                "description": tool["description"] or f"{tool['name']} ({server.display_name})",
                "parameters": _schema(server, tool["input_schema"]),
            }
            offered.append({"type": "function", "function": function})
    return offered, servers


def run_call(
    rt: WorkerRuntime, chat_id: uuid.UUID, server_id: uuid.UUID, name: str, args: dict[str, Any]
) -> tuple[Any, bool]:
    """Forward one call of ``<slug>__<tool>`` to its admin server."""
    with db.session_scope() as session:
        chat = session.get(Chat, chat_id)
        server = session.get(MCPServerConfig, server_id)
        if chat is None:
            return {"error": "chat not found"}, True
        if server is None or not server.enabled:
            return {"error": f"MCP server of tool {name!r} is no longer available"}, True
        refusal = tool_refusal(name, chat, MCPTool(True, server.allow_in_plan_mode))
        if refusal is not None:
            return {"error": refusal}, True
        tool = name.removeprefix(server.slug + SEPARATOR)
        if not allowed(server, tool):
            return {"error": f"tool {tool!r} of MCP server {server.slug!r} is not allowed"}, True
        try:
            headers = auth_headers(session, rt.secrets, server, chat.owner_id)
        except (NotConnected, SecretsUnavailable) as exc:
            return {"error": f"MCP server {server.slug!r}: {exc}"}, True
        key = cache_key(server, chat.owner_id)
        session.expunge(server)
    if server.model_intent:
        args = {k: v for k, v in args.items() if k != INTENT}
    try:
        answer = connect.call_tool(_target(server, headers), tool, args, timeout=CALL_TIMEOUT_S)
    except connect.MCPUnavailable as exc:
        rt.redis.delete(key)
        return {"error": f"MCP server {server.slug!r} is unavailable: {exc}"}, True
    result, is_error = results.convert(answer)
    if is_error:
        rt.redis.delete(key)  # the tool may be gone: list again next step
    return result, is_error


def any_enabled(session: Session) -> bool:
    """Whether any admin MCP server is enabled (else no step has admin MCP tools to offer)."""
    found = session.execute(
        sa.select(MCPServerConfig.id).where(MCPServerConfig.enabled).limit(1)  # type: ignore[call-overload]
    ).first()
    return found is not None


def add_tools(rt: WorkerRuntime, taken: Any) -> None:
    """Offer the chat's admin MCP tools in a taken step (``workers.turn.run.run_step``; outside any
    transaction, since a tool list may have to be fetched)."""
    names = {t["function"]["name"] for t in taken.tools}
    offered, servers = offered_tools(rt, taken.chat_id, names)
    taken.tools = [*taken.tools, *offered]
    taken.mcp_tools = servers
