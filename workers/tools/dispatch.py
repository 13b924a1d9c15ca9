"""Which implementation runs a tool call, and the bookkeeping around workspace tools.

``execute_call`` is the body of the ``tool.run`` actor: admin MCP tools, subagent control,
plan-mode tools, platform tools (anywhere), workspace tools and workspace ``.mcp.json`` tools
(on the host that owns the workspace). The chat's mode is checked again here: the model may
call a tool it was not offered, and plan mode may have been switched since the step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agentfarm.settings import workspace_host_list
from models import db
from models.base import utcnow
from models.chat.tables import Chat
from models.enums import PlanMode
from models.workspaces.tables import (
    ChatToolCall,
    Template,
    Workspace,
    WorkspaceProcess,
    WorkspaceStatus,
)
from workers.integrations.mcp import admin
from workers.integrations.mcp import workspace as workspace_mcp
from workers.runtime import WorkerRuntime
from workers.subagents import spawn as subagents
from workers.tools import git_report, plan_mode, toolset
from workers.tools.platform import PlatformToolError, run_platform_tool
from workers.tools.workspaces import spool_dir

log = logging.getLogger("agentfarm.tools")

NO_WORKSPACE = (
    "this chat has no workspace yet; create one with create_workspace (see list_templates) "
    "before using {tool}"
)


def execute_call(rt: WorkerRuntime, row: ChatToolCall) -> tuple[Any, bool]:
    """Dispatch to the tool's implementation; never raises (except ``NotReady``)."""
    args = row.args if isinstance(row.args, dict) else {}
    try:
        if row.mcp_server_config_id is not None:  # admin MCP: its own plan-mode rule
            return admin.run_call(rt, row.chat_id, row.mcp_server_config_id, row.tool_name, args)
        with db.session_scope() as session:
            chat = session.get(Chat, row.chat_id)
            if chat is None:
                return {"error": "chat not found"}, True
            refusal = plan_mode.tool_refusal(row.tool_name, chat)
            if refusal is not None:
                return {"error": refusal}, True
            if row.tool_name in subagents.CONTROL_TOOLS:
                return subagents.run_control_tool(rt, session, row, args), False
            if row.tool_name == "ask_user_question":
                return plan_mode.ask_user_question(args), False
        if row.tool_name in toolset.PLATFORM_TOOLS:
            return run_platform_tool(rt, row.tool_name, row.chat_id, args), False
        if row.tool_name in toolset.workspace_tool_names():
            return _run_workspace_tool(rt, row, args)
        return _run_workspace_mcp_tool(rt, row, args)
    except subagents.NotReady:
        raise
    except (PlatformToolError, subagents.SubagentError, plan_mode.PlanToolError) as exc:
        return {"error": str(exc)}, True
    except Exception as exc:
        log.exception("tool crashed", extra={"tool": row.tool_name})
        return {"error": f"internal error running {row.tool_name}: {type(exc).__name__}"}, True


def _run_workspace_tool(
    rt: WorkerRuntime, row: ChatToolCall, args: dict[str, Any]
) -> tuple[Any, bool]:

    with db.session_scope() as session:
        chat = session.get(Chat, row.chat_id)
        workspace = (
            session.get(Workspace, chat.workspace_id) if chat and chat.workspace_id else None
        )
        if workspace is None:
            return {"error": NO_WORKSPACE.format(tool=row.tool_name)}, True
        if workspace.status != WorkspaceStatus.RUNNING:
            return {
                "error": f"workspace {workspace.name} is {workspace.status}; "
                "call start_workspace first"
            }, True
        template = session.get(Template, workspace.template_id)
        workspace.last_activity_at = utcnow()
        if chat is not None and chat.plan_mode == PlanMode.PLAN:
            refusal = plan_mode.plan_write_refusal(
                row.tool_name, args, workspace_dir=workspace.directory, chat_id=chat.id
            )
            if refusal is not None:
                return {"error": refusal}, True
        if row.tool_name == "propose_plan" and chat is not None:
            return plan_mode.propose_plan(
                session, chat, args, workspace_dir=workspace.directory
            ), False
        session.expunge_all()
    result, is_error = toolset.run_workspace_tool(
        row.tool_name,
        args,
        root=Path(workspace.directory),
        spool=spool_dir(),
        chat_id=str(row.chat_id),
        sandbox=bool(template and template.sandbox),
        network=template.network_policy if template else "open",
    )
    process_id = result.get("background_process_id") if isinstance(result, dict) else None
    if process_id:
        _record_process(workspace, row, str(process_id), str(args.get("command", "")))
    # PR insights: the host reports the chat's git branch and origin (never raises).
    git_report.after_tool(row.chat_id, row.tool_name, Path(workspace.directory), args)
    return result, is_error


def _run_workspace_mcp_tool(
    rt: WorkerRuntime, row: ChatToolCall, args: dict[str, Any]
) -> tuple[Any, bool]:
    """A workspace ``.mcp.json`` tool, when this worker serves the workspace's host."""

    with db.session_scope() as session:
        chat = session.get(Chat, row.chat_id)
        bound = chat.workspace_id if chat is not None else None
        workspace = session.get(Workspace, bound) if bound else None
        host = workspace.host if workspace is not None else None
    if host is None or host not in workspace_host_list(rt.settings):
        return {"error": f"tool {row.tool_name!r} is not available"}, True
    return workspace_mcp.run_call(row, args, spool_dir())


def _record_process(workspace: Workspace, row: ChatToolCall, process_id: str, command: str) -> None:
    with db.session_scope() as session:
        if session.get(WorkspaceProcess, process_id) is None:
            session.add(
                WorkspaceProcess(
                    id=process_id,
                    workspace_id=workspace.id,
                    chat_id=row.chat_id,
                    host=workspace.host,
                    command=command[:4000],
                )
            )
