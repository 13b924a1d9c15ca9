"""``tool.run``: execute one tool call of a step, on the host that owns the chat's workspace
(workspace tools) or anywhere (platform tools), then hand the result to the fan-in.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from agentfarm.tasks.broker import get_broker
from agentfarm.tasks.queues import Queue
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
from workers.runtime import WorkerRuntime, get_runtime
from workers.subagents.spawn import NotReady
from workers.tools import git_report

log = logging.getLogger("agentfarm.actors.tools")
get_broker()

NO_WORKSPACE = (
    "this chat has no workspace yet; create one with create_workspace (see list_templates) "
    "before using {tool}"
)


@dramatiq.actor(
    actor_name="tool.run",
    queue_name=Queue.DEFAULT,  # workspace tools are routed to workspace.<host> per message
    max_retries=3,
    min_backoff=500,
    max_backoff=5000,
    # Tools carry their own timeouts (execute: up to 4 h in the background); this only bounds
    # a stuck thread.
    time_limit=30 * 60 * 1000,
)
def tool_run(call_id: str) -> None:
    """Run one tool call unless it already ran (or a dead worker was running it)."""
    from agentfarm import metrics
    from workers.tools import calls as tool_calls

    rt = get_runtime()
    row = tool_calls.claim(rt, uuid.UUID(call_id))
    if row is None:
        return
    started = time.perf_counter()
    try:
        result, is_error = execute_call(rt, row)
    except NotReady as later:
        # wait_agent: the subagent is still working; check again later, holding no thread.
        tool_calls.requeue(rt, row.id, later.delay_ms)
        return
    took = time.perf_counter() - started
    stored = tool_calls.complete(rt, row.id, result, is_error)
    metrics.TOOL_CALLS.labels(row.tool_name, "error" if is_error else "ok").inc()
    metrics.TOOL_DURATION.labels(row.tool_name).observe(took)
    message = CurrentMessage.get_current_message()
    log.info(
        "tool %s %s",
        row.tool_name,
        "failed" if is_error else "ok",
        extra={
            "chat_id": str(row.chat_id),
            "tool_call_id": row.tool_call_id,
            "message_id": message.message_id if message else None,
            "stored": stored,
            "ms": int(took * 1000),
        },
    )


def execute_call(rt: WorkerRuntime, row: ChatToolCall) -> tuple[Any, bool]:
    """Dispatch to the tool's implementation; never raises (except ``NotReady``).

    The chat's mode is checked again here: the model may call a tool it was not offered,
    and plan mode may have been switched since the step.
    """
    from workers.subagents import spawn as subagents
    from workers.tools import plan_mode, toolset
    from workers.tools.platform import PlatformToolError, run_platform_tool

    args = row.args if isinstance(row.args, dict) else {}
    try:
        if row.mcp_server_config_id is not None:  # admin MCP: its own plan-mode rule
            from workers.integrations.mcp import admin

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
    except Exception as exc:  # noqa: BLE001 - a tool failure must not fail the turn
        log.exception("tool crashed", extra={"tool": row.tool_name})
        return {"error": f"internal error running {row.tool_name}: {type(exc).__name__}"}, True


def _run_workspace_tool(
    rt: WorkerRuntime, row: ChatToolCall, args: dict[str, Any]
) -> tuple[Any, bool]:
    from workers.actors.workspaces import spool_dir
    from workers.tools import plan_mode, toolset

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
    from agentfarm.settings import workspace_host_list
    from workers.actors.workspaces import spool_dir
    from workers.integrations.mcp import workspace as workspace_mcp

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
