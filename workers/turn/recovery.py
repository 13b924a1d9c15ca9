"""Stale-chat recovery, sent every minute by the scheduler (``chat.recover_stale``)."""

from __future__ import annotations

import sqlalchemy as sa

from agentfarm.chat_stream import events as ev
from agentfarm.tasks.outbox import defer
from models import db
from models.chat import rules as chat_rules
from models.chat.tables import Chat
from models.enums import ChatStatus
from workers.runtime import WorkerRuntime

STALE_SQL = sa.text(
    """
    UPDATE chats SET status = 'pending', generation = generation + 1, worker_id = NULL,
           started_at = NULL, heartbeat_at = NULL, last_error = NULL, updated_at = now()
     WHERE status = 'running'
       AND coalesce(heartbeat_at, updated_at) < now() - make_interval(secs => :stale)
       -- Between steps, unfinished tool calls carry the chat on (recover_tool_calls repairs
       -- them): a new step now would prompt the model with calls that have no results.
       AND NOT (worker_id IS NULL AND EXISTS (
             SELECT 1 FROM chat_tool_calls tc
              WHERE tc.chat_id = chats.id AND tc.generation = chats.generation
                AND tc.status IN ('queued', 'running')))
    RETURNING id, generation, owner_id, title, status, created_at, updated_at,
              parent_chat_id, root_chat_id, workspace_id
    """
)
LOST_WAKEUP_SQL = sa.text(
    """
    SELECT id, generation FROM chats
     WHERE status = 'pending' AND updated_at < now() - make_interval(secs => :stale)
     FOR UPDATE SKIP LOCKED
    """
)
TOUCH_SQL = sa.text("UPDATE chats SET updated_at = now() WHERE id = ANY(:ids)")
ORPHAN_PROMOTION_SQL = sa.text(
    """
    SELECT id FROM chats
     WHERE status = 'waiting' AND interrupt_promote_id IS NOT NULL
       AND updated_at < now() - make_interval(secs => :grace)
     FOR UPDATE SKIP LOCKED
    """
)


def recover_stale(rt: WorkerRuntime) -> dict[str, int]:
    """Repair chats left behind by dead workers or lost queue messages."""
    from workers.actors.chat import chat_step

    stale_s = rt.settings.stale_after_s
    with db.session_scope() as session:
        stale = session.execute(STALE_SQL, {"stale": stale_s}).all()
        lost = session.execute(LOST_WAKEUP_SQL, {"stale": min(stale_s, 120.0)}).all()
        if lost:
            session.execute(TOUCH_SQL, {"ids": [row.id for row in lost]})
        orphans = session.execute(ORPHAN_PROMOTION_SQL, {"grace": 30.0}).scalars().all()
        promoted = []
        for chat_id in orphans:
            chat = session.get(Chat, chat_id)
            if chat is None:
                continue
            promote_id, chat.interrupt_promote_id = chat.interrupt_promote_id, None
            if chat_rules.promote_queued(session, chat, promote_id) is not None:
                promoted.append((chat.id, chat.generation, ev.watch_chat(chat)))
        for chat_id, generation, *_ in [*stale, *lost, *promoted]:
            defer(session, chat_step.message(str(chat_id), generation, 1))
    repaired = [(row.id, row) for row in stale]
    for chat_id, _, watch in promoted:
        repaired.append((chat_id, watch))
    for chat_id, watch in repaired:
        rt.events.clear_step(chat_id)
        rt.events.publish(chat_id, ev.status_event(chat_id, ChatStatus.PENDING), watch=watch)
    interrupted = recover_tool_calls(rt)
    return {
        "stale": len(stale),
        "lost_wakeups": len(lost),
        "orphan_promotions": len(promoted),
        "interrupted_tool_calls": interrupted,
    }


LOST_TOOL_CALLS_SQL = sa.text(
    """
    SELECT tc.id, w.host, tc.tool_name FROM chat_tool_calls tc
      JOIN chats c ON c.id = tc.chat_id
      LEFT JOIN workspaces w ON w.id = c.workspace_id
     WHERE tc.status = 'queued'
       -- started_at: the last check of a call that waits (wait_agent) between checks
       AND coalesce(tc.started_at, tc.created_at) < now() - make_interval(secs => :after)
    """
)


def recover_tool_calls(rt: WorkerRuntime) -> int:
    """Finish calls whose worker died as interrupted; re-send calls whose message was lost."""
    from agentfarm.tasks.hosts import host_queue
    from agentfarm.tasks.queues import Queue
    from workers.subagents.spawn import SPAWN_TOOLS
    from workers.tools import calls as tool_calls
    from workers.tools import toolset

    dead = tool_calls.interrupted_calls(rt)
    for call_id in dead:
        tool_calls.claim(rt, call_id)
    with db.session_scope() as session:
        # As for lost wake-ups: a queued call older than this lost its message (or a dead
        # worker had prefetched it); a second delivery of a call is harmless.
        after = min(rt.settings.stale_after_s, 120.0)
        lost = session.execute(LOST_TOOL_CALLS_SQL, {"after": after}).all()
        workspace_tools = toolset.workspace_tool_names()
        for call_id, host, tool in lost:
            if tool in SPAWN_TOOLS:
                defer(session, tool_calls.spawn_message(call_id))
                continue
            queue = host_queue(host) if host and tool in workspace_tools else Queue.DEFAULT
            defer(session, tool_calls.tool_run_message(call_id, queue))
    return len(dead)
