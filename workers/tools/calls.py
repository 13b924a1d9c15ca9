"""Tool calls of a step: fan out as ``tool.run`` messages, fan in to the next ``chat.step``.

The step records one ``chat_tool_calls`` row per call (status ``queued``) in the same
transaction as its assistant message, and sends one ``tool.run`` per row after commit:
workspace tools to the queue of the host that owns the chat's workspace, everything else to
the default queue. Each run marks its row ``running`` under its worker id before doing
anything, so a redelivered message can tell a call that never started (run it) from one a
dead worker was running (do not run it again: report the interruption). The run that lands
the last result of the step inserts the tool messages in tool-call order and sends the next
step.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import dramatiq
from sqlmodel import Session, select

from agentfarm.chat_stream import events as ev
from agentfarm.integrations import webpush as push
from agentfarm.tasks import catalog, hosts
from agentfarm.tasks.outbox import defer, defer_call
from agentfarm.tasks.queues import Queue
from models import db
from models.base import utcnow
from models.chat import rules as chat_rules
from models.chat import transitions
from models.chat.tables import Chat, ChatMessage
from models.chat.wire import message_json, queued_json
from models.enums import ChatStatus, MessageRole
from models.workspaces.tables import ChatToolCall, ToolCallStatus, Workspace
from workers.integrations.mcp.results import has_media
from workers.runtime import WorkerRuntime
from workers.subagents.specs import SPAWN_TOOLS
from workers.tools.plan_mode import TURN_ENDING_TOOLS

log = logging.getLogger("agentfarm.tools")

INTERRUPTED = "tool call was interrupted by a worker failure; it may or may not have completed"


def record_calls(
    session: Session,
    chat: Chat,
    *,
    step_key: str,
    calls: list[Any],
    workspace_tools: frozenset[str] | set[str],
    client_tools: frozenset[str] | set[str] = frozenset(),
    mcp_servers: Mapping[str, uuid.UUID] | None = None,
) -> list[ChatToolCall]:
    """Insert the step's tool-call rows and defer one ``tool.run`` per call.

    Calls of client-declared dynamic tools are not run here: they wait (status ``client``)
    for ``POST /chats/{chat}/tool-results``. Returns those rows. ``mcp_servers`` maps the
    offered admin MCP tools to their servers (those calls run on the default queue).
    """
    host = _workspace_host(session, chat)
    waiting: list[ChatToolCall] = []
    for position, call in enumerate(calls):
        row = ChatToolCall(
            chat_id=chat.id,
            generation=chat.generation,
            step_key=step_key,
            position=position,
            tool_call_id=call.id,
            tool_name=call.name,
            args=call.parsed_args(),
            mcp_server_config_id=(mcp_servers or {}).get(call.name),
        )
        if call.name in client_tools:
            row.status = ToolCallStatus.CLIENT
            waiting.append(row)
        session.add(row)
        session.flush()
        if call.name in client_tools:
            continue
        if call.name in SPAWN_TOOLS:
            defer(session, spawn_message(row.id))
            continue
        queue = hosts.host_queue(host) if host and call.name in workspace_tools else Queue.DEFAULT
        defer(session, tool_run_message(row.id, queue))
    return waiting


def spawn_message(call_id: uuid.UUID) -> dramatiq.Message[Any]:
    """Spawning a subagent is its own actor (creates the child and finishes the call)."""
    return catalog.SUBAGENT_SPAWN.message(str(call_id))


def tool_run_message(call_id: uuid.UUID, queue: str) -> dramatiq.Message[Any]:
    return catalog.TOOL_RUN.message(str(call_id), queue=queue)


def _workspace_host(session: Session, chat: Chat) -> str | None:
    if chat.workspace_id is None:
        return None
    workspace = session.get(Workspace, chat.workspace_id)
    return workspace.host if workspace is not None else None


def claim(rt: WorkerRuntime, call_id: uuid.UUID) -> ChatToolCall | None:
    """Mark the call running under this worker; None if there is nothing to run.

    A call already running under a worker that is still alive is a duplicate delivery and is
    left alone; one whose worker is gone is finished as interrupted, never run again.
    """
    with db.session_scope() as session:
        row = session.exec(
            select(ChatToolCall).where(ChatToolCall.id == call_id).with_for_update()
        ).first()
        if row is None or row.status == ToolCallStatus.DONE:
            return None
        if row.status == ToolCallStatus.RUNNING:
            holder = row.worker_id
            if holder is not None and hosts.worker_alive(rt.redis, holder, rt.settings.host_ttl_s):
                return None
            _finish(row, {"error": INTERRUPTED}, True)
            session.flush()
            _complete_step_if_done(rt, session, row)
            return None
        row.status = ToolCallStatus.RUNNING
        row.worker_id = rt.worker_id
        row.started_at = utcnow()
        session.flush()
        session.expunge(row)
        return row


def _finish(row: ChatToolCall, result: Any, is_error: bool) -> None:
    row.status = ToolCallStatus.DONE
    row.result = result
    row.is_error = is_error
    row.finished_at = utcnow()


def complete(rt: WorkerRuntime, call_id: uuid.UUID, result: Any, is_error: bool) -> bool:
    """Store a call's result; the last call of the step continues the chat."""
    with db.session_scope() as session:
        return complete_in(rt, session, call_id, result, is_error)


def held_call(rt: WorkerRuntime, session: Session, call_id: uuid.UUID) -> ChatToolCall | None:
    """The call, locked, if it is still running under this worker."""
    row = session.exec(
        select(ChatToolCall).where(ChatToolCall.id == call_id).with_for_update()
    ).first()
    if row is None or row.status != ToolCallStatus.RUNNING or row.worker_id != rt.worker_id:
        return None  # finished elsewhere (e.g. declared interrupted meanwhile)
    return row


def complete_in(
    rt: WorkerRuntime, session: Session, call_id: uuid.UUID, result: Any, is_error: bool
) -> bool:
    """``complete`` inside the caller's transaction (the spawn writes its child in it too)."""
    row = held_call(rt, session, call_id)
    if row is None:
        return False
    _finish(row, result, is_error)
    session.flush()
    _complete_step_if_done(rt, session, row)
    return True


def requeue(rt: WorkerRuntime, call_id: uuid.UUID, delay_ms: int) -> bool:
    """Put a call that cannot finish yet (wait_agent) back to ``queued`` and check it again
    after ``delay_ms`` with a delayed message: no worker thread waits meanwhile.

    ``started_at`` keeps the time of this check, so the stale sweeper only re-sends a
    waiting call whose chain of checks really stopped.
    """
    with db.session_scope() as session:
        row = held_call(rt, session, call_id)
        if row is None:
            return False
        row.status = ToolCallStatus.QUEUED
        row.worker_id = None
        defer(session, tool_run_message(row.id, Queue.DEFAULT), delay_ms=delay_ms)
        return True


def _complete_step_if_done(rt: WorkerRuntime, session: Session, row: ChatToolCall) -> None:
    complete_step_if_done(rt, session, row.chat_id, row.step_key, row.generation)


def finish_step(rt: WorkerRuntime, chat_id: uuid.UUID, step_key: str) -> str:
    """The fan-in run on its own (``tool.finish_step``): after a client posted the step's
    last results, or when recovery finds a step whose results were never written back."""
    with db.session_scope() as session:
        generation = session.exec(
            select(ChatToolCall.generation).where(
                ChatToolCall.chat_id == chat_id, ChatToolCall.step_key == step_key
            )
        ).first()
        if generation is None:
            return "no calls"
        return complete_step_if_done(rt, session, chat_id, step_key, generation)


def complete_step_if_done(
    rt: WorkerRuntime, session: Session, chat_id: uuid.UUID, step_key: str, generation: int
) -> str:
    """If every call of the step is done, write the tool messages and send the next step."""
    chat = session.exec(select(Chat).where(Chat.id == chat_id).with_for_update()).first()
    if chat is None:
        return "no chat"
    calls = list(
        session.exec(
            select(ChatToolCall)
            .where(ChatToolCall.chat_id == chat_id, ChatToolCall.step_key == step_key)
            .order_by(ChatToolCall.position)  # type: ignore[arg-type]
        )
    )
    if any(c.status != ToolCallStatus.DONE for c in calls):
        return "calls pending"
    first_key = f"{step_key}:tool:{calls[0].tool_call_id}" if calls else None
    if (
        first_key is None
        or session.exec(
            select(ChatMessage.id).where(
                ChatMessage.chat_id == chat_id, ChatMessage.step_key == first_key
            )
        ).first()
    ):
        return "already written"  # another fan-in of this step got here first
    # An edit may have soft-deleted the step's assistant message meanwhile: its results are
    # then part of the dropped history too (never shown, never in a prompt).
    dropped = bool(
        session.exec(
            select(ChatMessage.deleted).where(
                ChatMessage.chat_id == chat_id, ChatMessage.step_key == step_key
            )
        ).first()
    )
    messages = [
        chat_rules.add_message(
            session,
            chat,
            MessageRole.TOOL,
            [_result_part(call)],
            step_key=f"{call.step_key}:tool:{call.tool_call_id}",
            deleted=dropped,
        )
        for call in calls
    ]
    events = [] if dropped else [ev.message_event(chat.id, message_json(m)) for m in messages]
    watch = None

    def announce() -> None:  # before the next step is sent: its events come after these
        if events or watch is not None:
            rt.events.publish(chat_id, *events, watch=watch)

    defer_call(session, announce)
    still_ours = chat.generation == generation and transitions.between_steps(chat)
    outcome = "written"
    if still_ours and any(c.tool_name in TURN_ENDING_TOOLS and not c.is_error for c in calls):
        # Plan mode: a proposed plan (or a question to the user) ends the turn (§4.3).
        events += _end_turn(session, chat)
        watch = ev.watch_chat(chat)
        outcome = "turn ended"
    elif still_ours:
        chat.heartbeat_at = utcnow()
        defer(session, catalog.CHAT_STEP.message(str(chat.id), chat.generation, 1))
        outcome = "continued"
    return outcome


def _result_part(call: ChatToolCall) -> dict[str, Any]:
    part = {
        "type": "tool-result",
        "tool_call_id": call.tool_call_id,
        "tool_name": call.tool_name,
        "result": call.result,
    }
    if call.is_error:
        part["is_error"] = True
    if call.mcp_server_config_id is not None:
        part["mcp_server_config_id"] = str(call.mcp_server_config_id)
    if has_media(call.result):
        part["is_media"] = True
    return part


def _end_turn(session: Session, chat: Chat) -> list[dict[str, Any]]:
    """End the run as a step without tool calls would: promote a queued message, else wait."""
    promoted = chat_rules.promote_queued(session, chat)
    if promoted is not None:
        defer(session, catalog.CHAT_STEP.message(str(chat.id), chat.generation, 1))
        queue = [queued_json(q) for q in chat_rules.queued_messages(session, chat.id)]
        return ev.new_run_events(chat.id, message_json(promoted), queue)
    transitions.end_turn(chat)
    push.defer_notification(session, chat, ChatStatus.WAITING)  # web push, after commit
    return [ev.status_event(chat.id, ChatStatus.WAITING)]


def interrupted_calls(rt: WorkerRuntime) -> list[uuid.UUID]:
    """Running calls whose worker stopped heartbeating (for the stale sweeper)."""
    with db.session_scope() as session:
        rows = session.exec(
            select(ChatToolCall.id, ChatToolCall.worker_id).where(
                ChatToolCall.status == ToolCallStatus.RUNNING
            )
        ).all()
    return [
        call_id
        for call_id, worker in rows
        if worker is None or not hosts.worker_alive(rt.redis, worker, rt.settings.host_ttl_s)
    ]
