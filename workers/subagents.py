"""Subagents (reference §4.2): a root chat delegates work to child chats that run on the farm
like any other chat, in parallel, and collects their reports.

- ``spawn_agent`` / ``spawn_explore_agent`` / ``spawn_computer_use_agent`` are run by their own
  actor, ``subagent.spawn``: the child chat, its first messages, the tool call's result and the
  child's first step are one transaction, so a redelivered spawn can never make two children.
- ``wait_agent`` never holds a worker thread while the child works: each check is one short
  ``tool.run``; while the child is busy the call goes back to ``queued`` and a delayed message
  checks again (``NotReady``), until the child is done or the timeout passes.
- ``message_agent`` and ``close_agent`` act on the child as its owner would.

Depth is one level: a child never gets orchestration tools, and spawning from a child is
refused. Every target of wait/message/close must be a descendant of the calling chat.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from agentfarm.settings import get_settings
from models import chat_rules
from models.base import utcnow
from models.chats import Chat, ChatMessage
from models.enums import (
    BUSY_STATUSES,
    ChatMode,
    ChatStatus,
    MessageRole,
    MessageVisibility,
)
from models.wire import message_json, queued_json
from models.workspaces import ChatToolCall
from workers import events as ev
from workers.enqueue import defer, defer_call
from workers.runtime import WorkerRuntime

SPAWN_TOOLS = frozenset({"spawn_agent", "spawn_explore_agent", "spawn_computer_use_agent"})
CONTROL_TOOLS = frozenset({"wait_agent", "message_agent", "close_agent"})
ORCHESTRATION_TOOLS = SPAWN_TOOLS | CONTROL_TOOLS
DEFAULT_WAIT_S = 300
MAX_WAIT_S = 3600
TITLE_WORDS = 6
TITLE_MAX_RUNES = 80

_PROMPT = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "description": "The task, with all context it needs."},
        "title": {"type": "string", "description": "A short title for the subagent's chat."},
    },
    "required": ["prompt"],
}
_TARGET = {"chat_id": {"type": "string", "description": "The subagent's chat_id."}}

SUBAGENT_TOOL_SPECS: dict[str, dict[str, Any]] = {
    "spawn_agent": {
        "description": (
            "Delegate a self-contained task to a subagent that works in parallel, in this "
            "chat's workspace, with the workspace tools. Returns its chat_id at once; call "
            "wait_agent to get its report. In plan mode, use it for exploration only."
        ),
        "parameters": _PROMPT,
    },
    "spawn_explore_agent": {
        "description": (
            "Delegate a read-only investigation (reading files, running read-only commands) "
            "to a subagent. Returns its chat_id; call wait_agent for its findings."
        ),
        "parameters": _PROMPT,
    },
    "spawn_computer_use_agent": {
        "description": (
            "Delegate a task that needs the workspace's virtual desktop to a computer-use "
            "subagent. Returns its chat_id; call wait_agent for its report."
        ),
        "parameters": _PROMPT,
    },
    "wait_agent": {
        "description": (
            "Wait until a subagent has finished and return its report. Does not block other "
            "work; several subagents can be waited for in parallel tool calls."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                **_TARGET,
                "timeout_seconds": {
                    "type": "integer",
                    "description": f"How long to wait (default {DEFAULT_WAIT_S}).",
                },
            },
            "required": ["chat_id"],
        },
    },
    "message_agent": {
        "description": (
            "Send a follow-up message to a subagent. It is queued while the subagent works, "
            "unless interrupt is true, which stops its current run first."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                **_TARGET,
                "message": {"type": "string"},
                "interrupt": {"type": "boolean"},
            },
            "required": ["chat_id", "message"],
        },
    },
    "close_agent": {
        "description": "Stop a subagent's current run (it keeps its history).",
        "parameters": {"type": "object", "properties": _TARGET, "required": ["chat_id"]},
    },
}

DELEGATED_INSTRUCTION = (
    "You are a delegated subagent. Another agent gave you the task in the next user message. "
    "Work on it on your own: nobody can answer questions while you work. When you are done, "
    "reply with a concise report of what you found or changed; that final reply is handed back "
    "to the agent that delegated the task."
)
EXPLORE_INSTRUCTION = (
    " You are in explore mode: investigate and report, and do not modify any file or state."
)
COMPUTER_USE_INSTRUCTION = (
    " You control the workspace's virtual desktop through the computer tool; take a screenshot "
    "before acting and after each significant step."
)


class SubagentError(Exception):
    """Returned to the model as an is_error tool result."""


@dataclass
class NotReady(Exception):
    """The call cannot finish yet: check again after ``delay_ms``."""

    delay_ms: int


# ---------------------------------------------------------------- spawning


def spawn_mode(tool_name: str) -> ChatMode | None:
    return {
        "spawn_explore_agent": ChatMode.EXPLORE,
        "spawn_computer_use_agent": ChatMode.COMPUTER_USE,
    }.get(tool_name)


def child_title(prompt: str, title: Any) -> str:
    """The given title, else the prompt's first six words and ``...`` (at most 80 runes)."""
    if isinstance(title, str) and title.strip():
        return title.strip()[:TITLE_MAX_RUNES]
    words = prompt.split()
    text = " ".join(words[:TITLE_WORDS])
    if len(words) > TITLE_WORDS:
        text += "..."
    if len(text) > TITLE_MAX_RUNES:
        text = text[: TITLE_MAX_RUNES - 3] + "..."
    return text or "Subagent"


def spawn_child(
    session: Session,
    parent: Chat,
    tool_name: str,
    args: dict[str, Any],
    *,
    announce: Callable[[dict[str, Any]], Any] | None = None,
) -> Chat:
    """Create the child chat with its first messages and send its first step (on commit).

    Order of the child's messages follows §4.2: deployment prompt, delegated-agent
    instruction (with the mode's addition), copies of the parent's context-file and skill
    parts, then the task as the owner's user message.
    """
    from workers.actors.chat import chat_step

    if parent.parent_chat_id is not None:
        raise SubagentError("delegated chats cannot create child subagents")
    prompt = args.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SubagentError("prompt is required")
    # Usage limits (issue 5) will be checked here, before anything is written.
    mode = spawn_mode(tool_name)
    child = chat_rules.new_child_chat(
        parent,
        title=child_title(prompt, args.get("title")),
        model_config_id=parent.last_model_config_id,
    )
    child.mode = mode
    if mode == ChatMode.EXPLORE:
        child.plan_mode = None  # explore children clear plan mode (§4.2)
    child.last_injected_context = parent.last_injected_context
    chat_rules.mark_pending(child)
    session.add(child)
    session.flush()
    instruction = DELEGATED_INSTRUCTION + {
        ChatMode.EXPLORE: EXPLORE_INSTRUCTION,
        ChatMode.COMPUTER_USE: COMPUTER_USE_INSTRUCTION,
    }.get(mode, "")  # type: ignore[call-overload]
    for text in (get_settings().system_prompt, instruction):
        if text and text.strip():
            chat_rules.add_message(
                session,
                child,
                MessageRole.SYSTEM,
                [{"type": "text", "text": text}],
                visibility=MessageVisibility.MODEL,
            )
    context = _context_parts(session, parent.id)
    if context:
        chat_rules.add_message(
            session, child, MessageRole.SYSTEM, context, visibility=MessageVisibility.BOTH
        )
    chat_rules.add_message(
        session,
        child,
        MessageRole.USER,
        [{"type": "text", "text": prompt}],
        created_by=parent.owner_id,
        model_config_id=child.last_model_config_id,
    )
    if announce is not None:
        # Watchers hear `created` before the step that makes the child running can start.
        partial = ev.watch_chat(child)
        defer_call(session, lambda: announce(partial))
    defer(session, chat_step.message(str(child.id), child.generation, 1))
    return child


def _context_parts(session: Session, chat_id: uuid.UUID) -> list[dict[str, Any]]:
    """Copies of the chat's persisted context-file and skill parts."""
    rows = session.exec(
        select(ChatMessage.content).where(  # type: ignore[call-overload]
            ChatMessage.chat_id == chat_id,
            ChatMessage.role == MessageRole.SYSTEM,
            ChatMessage.deleted.is_(False),  # type: ignore[attr-defined]
        )
    ).all()
    return [
        dict(part)
        for content in rows
        for part in content or []
        if isinstance(part, dict) and part.get("type") in ("context-file", "skill")
    ]


def child_json(child: Chat) -> dict[str, Any]:
    return {"chat_id": str(child.id), "title": child.title, "status": str(child.status)}


# ---------------------------------------------------------------- wait / message / close


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
        select(ChatMessage.content)  # type: ignore[call-overload]
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
    from workers.actors.chat import chat_step

    text = args.get("message")
    if not isinstance(text, str) or not text.strip():
        raise SubagentError("message is required")
    interrupt = bool(args.get("interrupt"))
    parts = [{"type": "text", "text": text}]
    events: list[dict[str, Any]] = []
    interrupted = False
    if chat_rules.is_busy(target) or target.status == ChatStatus.REQUIRES_ACTION:
        queued = chat_rules.enqueue_follow_up(
            session,
            target,
            parts,
            created_by=target.owner_id,
            model_config_id=None,
            max_queue=get_settings().max_queue_size,
        )
        if interrupt:
            interrupted = chat_rules.interrupt(target, promote_id=queued.id)
        snapshot = [queued_json(q) for q in chat_rules.queued_messages(session, target.id)]
        events.append(ev.queue_event(target.id, snapshot))
        if interrupted:
            events.append(ev.status_event(target.id, target.status))
    else:
        message = chat_rules.add_message(
            session,
            target,
            MessageRole.USER,
            parts,
            created_by=target.owner_id,
            model_config_id=target.last_model_config_id,
        )
        chat_rules.mark_pending(target)
        defer(session, chat_step.message(str(target.id), target.generation, 1))
        events += [
            ev.message_event(target.id, message_json(message)),
            ev.status_event(target.id, ChatStatus.PENDING),
        ]
    watch = ev.watch_chat(target)
    stop = interrupted

    def announce() -> None:
        if stop:
            rt.events.request_interrupt(target.id)
        rt.events.publish(target.id, *events, watch=watch)

    defer_call(session, announce)
    return {**child_json(target), "interrupted": interrupted}


def _close(rt: WorkerRuntime, session: Session, target: Chat) -> dict[str, Any]:
    if chat_rules.interrupt(target, stop_pending=True):
        watch = ev.watch_chat(target)
        status = ev.status_event(target.id, target.status)

        def announce() -> None:
            rt.events.request_interrupt(target.id)
            rt.events.publish(target.id, status, watch=watch)

        defer_call(session, announce)
    return {**child_json(target), "terminated": True}
