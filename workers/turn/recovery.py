"""Stale-chat recovery, sent every minute by the scheduler (``chat.recover_stale``)."""

from __future__ import annotations

import sqlalchemy as sa

from agentfarm.chat_stream import events as ev
from agentfarm.tasks import catalog
from agentfarm.tasks.hosts import host_queue
from agentfarm.tasks.outbox import defer
from agentfarm.tasks.queues import Queue
from models import db
from models.chat import rules as chat_rules
from models.chat import transitions
from models.chat.tables import Chat
from models.chat.wire import message_json, queued_json
from models.enums import ChatStatus
from workers.runtime import WorkerRuntime
from workers.subagents.specs import SPAWN_TOOLS
from workers.tools import calls as tool_calls
from workers.tools import toolset

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
    stale_s = rt.settings.stale_after_s
    with db.session_scope() as session:
        stale = transitions.restart_stale(session, stale_s)
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
            message = chat_rules.promote_queued(session, chat, promote_id)
            if message is not None:
                queue = [queued_json(q) for q in chat_rules.queued_messages(session, chat.id)]
                events = ev.new_run_events(chat.id, message_json(message), queue)
                promoted.append((chat.id, chat.generation, ev.watch_chat(chat), events))
        for chat_id, generation, *_ in [*stale, *lost, *promoted]:
            defer(session, catalog.CHAT_STEP.message(str(chat_id), generation, 1))
    repaired = [(row.id, row, [ev.status_event(row.id, ChatStatus.PENDING)]) for row in stale]
    repaired += [(chat_id, watch, events) for chat_id, _, watch, events in promoted]
    for chat_id, watch, events in repaired:
        rt.events.clear_step(chat_id)
        rt.events.publish(chat_id, *events, watch=watch)
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


# Steps whose calls are all done but whose results were never written back (the fan-in's
# message was lost): the chat is between steps and nothing else would move it on.
UNFINISHED_FAN_IN_SQL = sa.text(
    """
    SELECT DISTINCT tc.chat_id, tc.step_key FROM chats c
      JOIN chat_tool_calls tc ON tc.chat_id = c.id AND tc.generation = c.generation
     WHERE c.status = 'running' AND c.worker_id IS NULL
       AND coalesce(c.heartbeat_at, c.updated_at) < now() - make_interval(secs => :after)
       AND tc.status = 'done'
       AND NOT EXISTS (SELECT 1 FROM chat_messages m WHERE m.chat_id = tc.chat_id
                        AND m.step_key = tc.step_key || ':tool:' || tc.tool_call_id)
       AND NOT EXISTS (SELECT 1 FROM chat_tool_calls o WHERE o.chat_id = tc.chat_id
                        AND o.step_key = tc.step_key AND o.status <> 'done')
    """
)


def recover_tool_calls(rt: WorkerRuntime) -> int:
    """Finish calls whose worker died as interrupted; re-send calls whose message was lost."""
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
        unfinished = session.execute(UNFINISHED_FAN_IN_SQL, {"after": after}).all()
        for chat_id, step_key in unfinished:
            defer(session, catalog.FINISH_STEP.message(str(chat_id), step_key))
    return len(dead)
