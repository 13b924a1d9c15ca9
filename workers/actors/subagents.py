"""``subagent.spawn``: create a subagent (child chat) for a spawn_* tool call of its parent.

The child, its first messages, the call's result and the child's first step commit together:
a redelivered message finds the call done (or, if a worker died mid-spawn, reports the
interruption like any tool call) and never creates a second child.
"""

from __future__ import annotations

import logging
import time
import uuid

import dramatiq
from sqlmodel import select

from agentfarm.tasks.broker import get_broker
from agentfarm.tasks.queues import Queue
from models import db
from models.chat.tables import Chat
from workers.runtime import get_runtime

log = logging.getLogger("agentfarm.actors.subagents")
get_broker()


@dramatiq.actor(
    actor_name="subagent.spawn",
    queue_name=Queue.DEFAULT,
    max_retries=3,
    min_backoff=500,
    max_backoff=5000,
    time_limit=60_000,
)
def subagent_spawn(call_id: str) -> None:
    """Run one spawn_agent / spawn_explore_agent / spawn_computer_use_agent call."""
    from agentfarm import metrics
    from workers.subagents import spawn as subagents
    from workers.tools import calls as tool_calls
    from workers.tools import plan_mode

    rt = get_runtime()
    row = tool_calls.claim(rt, uuid.UUID(call_id))
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
                raise subagents.SubagentError("chat not found")
            refusal = plan_mode.tool_refusal(row.tool_name, parent)
            if refusal is not None:
                raise subagents.SubagentError(refusal)
            args = row.args if isinstance(row.args, dict) else {}
            child = subagents.spawn_child(
                session,
                parent,
                row.tool_name,
                args,
                announce=lambda partial: rt.events.watch("created", partial),
            )
            child_id = child.id
            if not tool_calls.complete_in(rt, session, row.id, subagents.child_json(child), False):
                session.rollback()  # the call finished elsewhere: no orphan child
                child_id = None
        is_error = False
    except subagents.SubagentError as exc:
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
