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

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from agentfarm import metrics
from agentfarm.chat_stream import events as ev
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer, defer_call
from models import db
from models.chat import rules as chat_rules
from models.chat import transitions
from models.chat.tables import Chat, ChatMessage
from models.enums import (
    ChatMode,
    MessageRole,
    MessageVisibility,
)
from models.site import prompts
from models.usage import limits as usage_limits
from workers.runtime import WorkerRuntime
from workers.subagents.control import run_control_tool
from workers.subagents.specs import (
    COMPUTER_USE_INSTRUCTION,
    CONTROL_TOOLS,
    DELEGATED_INSTRUCTION,
    EXPLORE_INSTRUCTION,
    ORCHESTRATION_TOOLS,
    SPAWN_TOOLS,
    SUBAGENT_TOOL_SPECS,
    TITLE_MAX_RUNES,
    TITLE_WORDS,
    NotReady,
    SubagentError,
    child_json,
)
from workers.tools import calls as tool_calls
from workers.tools import plan_mode

__all__ = [
    "CONTROL_TOOLS",
    "ORCHESTRATION_TOOLS",
    "SPAWN_TOOLS",
    "SUBAGENT_TOOL_SPECS",
    "NotReady",
    "SubagentError",
    "child_json",
    "child_title",
    "run_control_tool",
    "spawn_child",
]

log = logging.getLogger("agentfarm.subagents")


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
    if parent.parent_chat_id is not None:
        raise SubagentError("delegated chats cannot create child subagents")
    prompt = args.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SubagentError("prompt is required")
    over_limit = usage_limits.exceeded(session, parent.owner_id)
    if over_limit is not None:  # checked before anything is written
        raise SubagentError(over_limit.describe())
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
    transitions.mark_pending(child)
    session.add(child)
    session.flush()
    instruction = DELEGATED_INSTRUCTION + {
        ChatMode.EXPLORE: EXPLORE_INSTRUCTION,
        ChatMode.COMPUTER_USE: COMPUTER_USE_INSTRUCTION,
    }.get(mode, "")  # type: ignore[arg-type]
    for text in (prompts.deployment_prompt(session), instruction):
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
    defer(session, catalog.CHAT_STEP.message(str(child.id), child.generation, 1))
    return child


def _context_parts(session: Session, chat_id: uuid.UUID) -> list[dict[str, Any]]:
    """Copies of the chat's persisted context-file and skill parts."""
    rows = session.exec(
        select(ChatMessage.content).where(
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


def run_spawn_call(rt: WorkerRuntime, call_id: uuid.UUID) -> None:
    """Run one spawn_agent / spawn_explore_agent / spawn_computer_use_agent call.

    The child, its first messages, the call's result and the child's first step commit
    together: a redelivered message finds the call done (or, if a worker died mid-spawn,
    reports the interruption like any tool call) and never creates a second child.
    """
    row = tool_calls.claim(rt, call_id)
    if row is None:
        return
    started = time.perf_counter()
    child_id = None
    error = None
    try:
        with db.session_scope() as session:
            parent = session.exec(
                select(Chat).where(Chat.id == row.chat_id).with_for_update()
            ).first()
            if parent is None:
                raise SubagentError("chat not found")
            refusal = plan_mode.tool_refusal(row.tool_name, parent)
            if refusal is not None:
                raise SubagentError(refusal)
            args = row.args if isinstance(row.args, dict) else {}
            child = spawn_child(
                session,
                parent,
                row.tool_name,
                args,
                announce=lambda partial: rt.events.watch("created", partial),
            )
            child_id = child.id
            if not tool_calls.complete_in(rt, session, row.id, child_json(child), False):
                session.rollback()  # the call finished elsewhere: no orphan child
                child_id = None
        is_error = False
    except SubagentError as exc:
        error = str(exc)
        tool_calls.complete(rt, row.id, {"error": error}, True)
        is_error = True
    metrics.TOOL_CALLS.labels(row.tool_name, "error" if is_error else "ok").inc()
    metrics.TOOL_DURATION.labels(row.tool_name).observe(time.perf_counter() - started)
    log.info(
        "subagent spawn %s",
        "failed" if is_error else "ok",
        extra={
            "chat_id": str(row.chat_id),
            "child_chat_id": str(child_id) if child_id else None,
            "error": error,
        },
    )
