"""wait_agent, message_agent and close_agent: a root chat acting on its subagents
(reference §4.2). Every target must be a descendant of the calling chat; wait_agent never
blocks (``NotReady`` re-checks it later with a delayed message)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from agentfarm.chat_stream import events as ev
from agentfarm.settings import get_settings
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer, defer_call
from models.base import utcnow
from models.chat import rules as chat_rules
from models.chat import sending, transitions
from models.chat.tables import Chat, ChatMessage
from models.chat.wire import message_json, queued_json
from models.enums import BUSY_STATUSES, ChatStatus, MessageRole, MessageVisibility
from models.workspaces.tables import ChatToolCall
from workers.runtime import WorkerRuntime
from workers.subagents.specs import DEFAULT_WAIT_S, MAX_WAIT_S, NotReady, SubagentError, child_json


def run_control_tool(
    rt: WorkerRuntime, session: Session, row: ChatToolCall, args: dict[str, Any]
) -> dict[str, Any]:
    """wait_agent, message_agent or close_agent for the call ``row`` (session is open)."""
    caller = session.get(Chat, row.chat_id)
    if caller is None:
        raise SubagentError("chat not found")
    target = _descendant(session, caller, args.get("chat_id"))
    if row.tool_name == "wait_agent":
        return _wait(session, caller, target, row, args)
    if row.tool_name == "message_agent":
        return _message(rt, session, target, args)
    return _close(rt, session, target)


def _descendant(session: Session, caller: Chat, raw: Any) -> Chat:
    try:
        target_id = uuid.UUID(str(raw))
    except ValueError:
        raise SubagentError("chat_id must be a valid UUID") from None
    target = session.exec(select(Chat).where(Chat.id == target_id).with_for_update()).first()
    # Walk up from the target: it is a descendant if the caller is one of its ancestors.
    seen: set[uuid.UUID] = set()
    node = target
    while node is not None and node.parent_chat_id is not None and node.id not in seen:
        seen.add(node.id)
        if node.parent_chat_id == caller.id:
            assert target is not None
            return target
        node = session.get(Chat, node.parent_chat_id)
    raise SubagentError("target chat is not a descendant of current chat")


def _wait(
    session: Session, caller: Chat, target: Chat, row: ChatToolCall, args: dict[str, Any]
) -> dict[str, Any]:
    if caller.generation != row.generation or caller.status != ChatStatus.RUNNING:
        raise SubagentError("the waiting chat's run was interrupted")
    if target.status not in BUSY_STATUSES:
        report = latest_report(session, target.id)
        if target.status == ChatStatus.ERROR:
            raise SubagentError(report or target.last_error or "agent reached error status")
        return {**child_json(target), "report": report}
    timeout = _timeout_s(args.get("timeout_seconds"))
    waited = utcnow() - row.created_at
    if waited >= timedelta(seconds=timeout):
        raise SubagentError("timed out waiting for delegated subagent completion")
    # Check often at first (short subagent tasks), then every second.
    raise NotReady(200 if waited < timedelta(seconds=2) else 1000)


def _timeout_s(value: Any) -> int:
    if value is None:
        return DEFAULT_WAIT_S
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise SubagentError("timeout_seconds must be an integer") from None
    if seconds <= 0:
        raise SubagentError("timeout_seconds must be positive")
    return min(seconds, MAX_WAIT_S)


def latest_report(session: Session, chat_id: uuid.UUID) -> str:
    """The newest non-empty assistant text the user can see (not a model-only message)."""
    rows = session.exec(
        select(ChatMessage.content)
        .where(
            ChatMessage.chat_id == chat_id,
            ChatMessage.role == MessageRole.ASSISTANT,
            ChatMessage.deleted.is_(False),  # type: ignore[attr-defined]
            ChatMessage.visibility != MessageVisibility.MODEL,
        )
        .order_by(ChatMessage.id.desc())  # type: ignore[union-attr]
        .limit(20)
    ).all()
    for content in rows:
        text = "\n".join(
            p.get("text", "")
            for p in content or []
            if isinstance(p, dict) and p.get("type") == "text" and p.get("text")
        ).strip()
        if text:
            return text
    return ""


def _message(
    rt: WorkerRuntime, session: Session, target: Chat, args: dict[str, Any]
) -> dict[str, Any]:
    text = args.get("message")
    if not isinstance(text, str) or not text.strip():
        raise SubagentError("message is required")
    interrupt = bool(args.get("interrupt"))
    parts = [{"type": "text", "text": text}]
    events: list[dict[str, Any]] = []
    delivery = sending.deliver(
        session,
        target,
        parts,
        created_by=target.owner_id,
        model_config_id=None,
        queue=chat_rules.is_busy(target) or target.status == ChatStatus.REQUIRES_ACTION,
        interrupt=interrupt,
        max_queue=get_settings().max_queue_size,
    )
    interrupted = delivery.interrupted
    if delivery.message is not None:
        defer(session, catalog.CHAT_STEP.message(str(target.id), target.generation, 1))
        events += ev.new_run_events(target.id, message_json(delivery.message))
    else:
        snapshot = [queued_json(q) for q in chat_rules.queued_messages(session, target.id)]
        events.append(ev.queue_event(target.id, snapshot))
        if interrupted:
            events.append(ev.status_event(target.id, target.status))
    watch = ev.watch_chat(target)
    stop = interrupted

    def announce() -> None:
        if stop:
            rt.events.request_interrupt(target.id)
        rt.events.publish(target.id, *events, watch=watch)

    defer_call(session, announce)
    return {**child_json(target), "interrupted": interrupted}


def _close(rt: WorkerRuntime, session: Session, target: Chat) -> dict[str, Any]:
    if transitions.interrupt(target, stop_pending=True):
        watch = ev.watch_chat(target)
        status = ev.status_event(target.id, target.status)

        def announce() -> None:
            rt.events.request_interrupt(target.id)
            rt.events.publish(target.id, status, watch=watch)

        defer_call(session, announce)
    return {**child_json(target), "terminated": True}
