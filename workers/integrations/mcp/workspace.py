"""Workspace MCP (reference §6.2): discovery and calls on the workspace host, offering from the
database.

Discovery runs in the ``workspace.context`` hop (on the host's queue, before the chat's first
step with the workspace): each ``.mcp.json`` server is connected with a 30 s timeout, in
parallel, and its tools are stored in ``workspace_mcp_discoveries``; a broken server is skipped
with a logged reason. The result is cached per workspace until ``.mcp.json`` changes or
``DISCOVERY_TTL`` passes, so a step offers ``<server>__<tool>`` without touching the host.
A call (``tool.run`` on the host's queue) reads ``.mcp.json`` again, starts or reaches that one
server and calls the tool with a 60 s timeout.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session

from models import db
from models.base import utcnow
from models.chat.tables import Chat
from models.mcp.tables import WorkspaceMCPDiscovery
from models.workspaces.tables import ChatToolCall, Template, Workspace, WorkspaceStatus
from workers.integrations.mcp import connect, results
from workers.integrations.mcp.workspace_config import ConfigError, ServerSpec, read_config, target
from workers.tools.plan_mode import MCPTool, tool_refusal

log = logging.getLogger("agentfarm.mcp.workspace")

SEPARATOR = "__"
CONNECT_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 60.0
DISCOVERY_TTL = timedelta(minutes=10)  # [inferred] how long a discovery is reused
STDERR_TAIL = 600
WORKSPACE_MCP = MCPTool(admin=False)


def _stderr_tail(handle: Any) -> str:
    handle.seek(0)
    text = handle.read()[-STDERR_TAIL:].strip()
    return f"; stderr: {text}" if text else ""


def _discover_one(spec: ServerSpec, where: dict[str, Any]) -> list[dict[str, Any]] | str:
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog:
        try:
            tools = connect.list_tools(
                target(spec, errlog=errlog, **where), timeout=CONNECT_TIMEOUT_S
            )
        except ConfigError as exc:
            return str(exc)
        except connect.MCPUnavailable as exc:
            return f"{exc}{_stderr_tail(errlog)}"
    return [
        {
            "name": f"{spec.name}{SEPARATOR}{t['name']}",
            "server": spec.name,
            "tool": t["name"],
            "description": t["description"],
            "input_schema": t["input_schema"],
        }
        for t in tools
    ]


def _where(workspace: Workspace, template: Template | None, spool: Path) -> dict[str, Any]:
    return {
        "root": Path(workspace.directory),
        "spool": spool,
        "sandboxed": bool(template and template.sandbox),
        "network": template.network_policy if template else "open",
    }


def refresh_discovery(chat_id: uuid.UUID, spool: Path) -> None:
    """Discover the chat's workspace's ``.mcp.json`` tools unless a fresh discovery of the
    same file is stored. Runs on the workspace host; never raises."""
    try:
        with db.session_scope() as session:
            chat = session.get(Chat, chat_id)
            workspace = (
                session.get(Workspace, chat.workspace_id) if chat and chat.workspace_id else None
            )
            if workspace is None or workspace.status != WorkspaceStatus.RUNNING:
                return
            where = _where(workspace, session.get(Template, workspace.template_id), spool)
            known = session.get(WorkspaceMCPDiscovery, workspace.id)
            workspace_id = workspace.id
            fresh = known is not None and utcnow() - known.discovered_at < DISCOVERY_TTL
            known_digest = known.config_digest if fresh and known is not None else None
        specs, errors, digest = read_config(where["root"])
        if known_digest == digest:
            return
        tools: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(specs)))) as pool:
            found = list(pool.map(lambda s: _discover_one(s, where), specs))
        for spec, outcome in zip(specs, found, strict=True):
            if isinstance(outcome, str):
                errors.append({"server": spec.name, "error": outcome})
            else:
                tools += outcome
        for error in errors:
            log.warning(
                "workspace MCP server %s skipped: %s",
                error["server"],
                error["error"],
                extra={"workspace_id": str(workspace_id)},
            )
        with db.session_scope() as session:
            _store(session, workspace_id, digest, tools, errors)
    except Exception:
        log.exception("workspace MCP discovery failed", extra={"chat_id": str(chat_id)})


def _store(
    session: Session,
    workspace_id: uuid.UUID,
    digest: str,
    tools: list[dict[str, Any]],
    errors: list[dict[str, Any]],
) -> None:
    values = {"config_digest": digest, "tools": tools, "errors": errors, "discovered_at": utcnow()}
    session.execute(
        pg_insert(WorkspaceMCPDiscovery)
        .values(workspace_id=workspace_id, **values)
        .on_conflict_do_update(index_elements=["workspace_id"], set_=values)
    )


def offered_tools(
    session: Session, chat: Chat, workspace: Workspace | None, taken_names: set[str]
) -> list[dict[str, Any]]:
    """The workspace MCP tools a step of ``chat`` offers (none in plan or explore mode)."""
    if workspace is None or workspace.status != WorkspaceStatus.RUNNING:
        return []
    if tool_refusal("", chat, WORKSPACE_MCP) is not None:
        return []
    found = session.get(WorkspaceMCPDiscovery, workspace.id)
    offered = []
    for tool in found.tools if found is not None else []:
        name = tool["name"]
        if name in taken_names or not connect.TOOL_NAME_RE.fullmatch(name):
            continue
        taken_names.add(name)
        function = {
            "name": name,
            "description": tool["description"] or f"{tool['tool']} ({tool['server']})",
            "parameters": tool["input_schema"],
        }
        offered.append({"type": "function", "function": function})
    return offered


def run_call(row: ChatToolCall, args: dict[str, Any], spool: Path) -> tuple[Any, bool]:
    """Call a workspace MCP tool on this (the workspace's) host."""
    unknown = {"error": f"tool {row.tool_name!r} is not available"}, True
    with db.session_scope() as session:
        chat = session.get(Chat, row.chat_id)
        workspace = (
            session.get(Workspace, chat.workspace_id) if chat and chat.workspace_id else None
        )
        found = session.get(WorkspaceMCPDiscovery, workspace.id) if workspace else None
        entry = next(
            (t for t in (found.tools if found else []) if t["name"] == row.tool_name), None
        )
        if chat is None or workspace is None or entry is None:
            return unknown
        refusal = tool_refusal(row.tool_name, chat, WORKSPACE_MCP)
        if refusal is not None:
            return {"error": refusal}, True
        if workspace.status != WorkspaceStatus.RUNNING:
            return {"error": f"workspace {workspace.name} is {workspace.status}"}, True
        workspace.last_activity_at = utcnow()
        where = _where(workspace, session.get(Template, workspace.template_id), spool)
        workspace_id = workspace.id
    specs, _, _ = read_config(where["root"])
    spec = next((s for s in specs if s.name == entry["server"]), None)
    if spec is None:
        return {"error": f"MCP server {entry['server']!r} is no longer in .mcp.json"}, True
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog:
        try:
            answer = connect.call_tool(
                target(spec, errlog=errlog, **where), entry["tool"], args, timeout=CALL_TIMEOUT_S
            )
        except ConfigError as exc:
            return {"error": f"MCP server {spec.name!r}: {exc}"}, True
        except connect.MCPUnavailable as exc:
            _forget(workspace_id)
            reason = f"{exc}{_stderr_tail(errlog)}"
            return {"error": f"MCP server {spec.name!r} is unavailable: {reason}"}, True
    return results.convert(answer)


def _forget(workspace_id: uuid.UUID) -> None:
    """A server failed: rediscover at the next chat's context hop instead of reusing."""
    with db.session_scope() as session:
        found = session.get(WorkspaceMCPDiscovery, workspace_id)
        if found is not None:
            found.config_digest = ""


def add_tools(session: Session, chat: Chat, workspace: Workspace | None, taken: Any) -> None:
    """Offer the workspace MCP tools in a step being taken (``workers.turn.run.take_chat``)."""
    names = {t["function"]["name"] for t in taken.tools}
    offered = offered_tools(session, chat, workspace, names)
    taken.tools = [*taken.tools, *offered]
    taken.workspace_mcp_tools = frozenset(t["function"]["name"] for t in offered)
