"""The chat state machine: the only code that changes a chat's ``status``.

    pending --take--> running (held by a worker) --tool calls--> running (between steps)
       ^                 |            |                               |    |
       |                 |            +--client tools--> requires_action   |
       |                 v                                  | results      |
       +--mark_pending-- waiting <--end_turn / interrupt----+--------------+
                         error   <--fail_run (model or step failure)

A run is pinned by ``generation``: :func:`mark_pending` starts a new one, and every wake-up
message carries the generation it is for, so a stale message finds nothing to do. ``running``
with no ``worker_id`` means "between steps": tool calls are in flight and the last one to
finish continues the chat. Functions here change rows only; the caller owns the transaction
and its side effects (wake-up messages, events, push notifications), which it sends after the
commit. ``tests/unit/test_layering.py`` checks no other module assigns a chat status.

May import: ``models`` and ``agentfarm.settings`` only.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from models.base import utcnow
from models.chat.tables import Chat
from models.enums import ChatStatus

# The columns a watcher needs (``chat_stream.events.watch_chat`` of a returned row).
WATCH_COLUMNS: tuple[Any, ...] = (
    Chat.id,
    Chat.owner_id,
    Chat.title,
    Chat.status,
    Chat.created_at,
    Chat.updated_at,
    Chat.parent_chat_id,
    Chat.root_chat_id,
    Chat.workspace_id,
)


def _idle(chat: Chat, status: ChatStatus) -> None:
    chat.status = status
    chat.worker_id = None
    chat.started_at = None
    chat.heartbeat_at = None
    chat.updated_at = utcnow()


def mark_pending(chat: Chat) -> None:
    """Request a new run: the next ``chat.step`` message must carry the new generation."""
    _idle(chat, ChatStatus.PENDING)
    chat.generation += 1
    chat.last_error = None


def between_steps(chat: Chat) -> bool:
    """Running with no worker holding it: the step's tool calls carry the chat on."""
    return chat.status == ChatStatus.RUNNING and chat.worker_id is None


def held_by_worker(chat: Chat) -> bool:
    """A worker is streaming a step of this chat right now."""
    return chat.status == ChatStatus.RUNNING and chat.worker_id is not None


def can_take(chat: Chat) -> bool:
    return chat.status == ChatStatus.PENDING or between_steps(chat)


# The take as one compare-and-set, carrying what the step needs to know with it: whether the
# run starts now, how many steps this generation already has, and the configuration version
# (one round trip instead of a locking SELECT, an UPDATE and two reads).
_TAKE_SQL = sa.text(
    """
    WITH old AS (
        SELECT id, status AS old_status FROM chats
         WHERE id = :id AND generation = :generation
           AND (status = 'pending' OR (status = 'running' AND worker_id IS NULL))
         FOR UPDATE
    )
    UPDATE chats SET status = 'running', worker_id = :worker, heartbeat_at = now(),
           updated_at = now(),
           started_at = CASE WHEN old.old_status = 'pending' THEN now() ELSE chats.started_at END
      FROM old
     WHERE chats.id = old.id
    RETURNING chats.*, old.old_status = 'pending' AS fresh,
        (SELECT count(*) FROM chat_messages m
          WHERE m.chat_id = chats.id AND m.role = 'assistant'
            AND m.step_key LIKE CAST(chats.generation AS text) || ':%') AS steps_before,
        (SELECT version FROM config_version LIMIT 1) AS config_version,
        EXISTS (SELECT 1 FROM webpush_subscriptions w WHERE w.user_id = chats.owner_id)
            AS owner_has_push,
        (SELECT ARRAY[m.id, coalesce(m.input_tokens, 0) + coalesce(m.output_tokens, 0)]
           FROM chat_messages m
          WHERE m.chat_id = chats.id AND m.role = 'assistant' AND NOT m.deleted
            AND NOT m.compressed AND m.input_tokens IS NOT NULL
          ORDER BY m.id DESC LIMIT 1) AS last_usage
    """
)


def take_row(
    session: Session, chat_id: uuid.UUID, generation: int, worker_id: uuid.UUID
) -> tuple[Chat, Any] | None:
    """:func:`take` in one statement: the chat as taken (detached: read it, do not change it)
    and the row's extras (``fresh``, ``steps_before``, ``config_version``,
    ``owner_has_push``, ``last_usage``: [id, tokens] of the newest step that reported usage,
    for the compaction check); None when the chat
    does not want this step (another generation, or not pending / between steps)."""
    row = (
        session.execute(_TAKE_SQL, {"id": chat_id, "generation": generation, "worker": worker_id})
        .mappings()
        .first()
    )
    if row is None:
        return None
    return Chat(**{k: row[k] for k in Chat.model_fields if k in row}), row


def release_between_steps(chat: Chat) -> None:
    """The step ended with tool calls: stay running, held by no worker, until they finish."""
    chat.status = ChatStatus.RUNNING
    chat.worker_id = None
    chat.heartbeat_at = utcnow()


def release_lease(
    session: Session, chat_id: uuid.UUID, generation: int, worker_id: uuid.UUID
) -> bool:
    """The holding worker lets go (still running, no worker) so a delayed retry of the step
    can take it. False if the run is no longer ``worker_id``'s."""
    result = session.execute(
        sa.update(Chat)
        .where(
            Chat.id == chat_id,  # type: ignore[arg-type]
            Chat.generation == generation,  # type: ignore[arg-type]
            Chat.status == ChatStatus.RUNNING,  # type: ignore[arg-type]
            Chat.worker_id == worker_id,  # type: ignore[arg-type]
        )
        .values(worker_id=None, heartbeat_at=sa.func.now())
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def require_action(chat: Chat) -> None:
    """The step called client-run (dynamic) tools: wait for ``POST .../tool-results``."""
    release_between_steps(chat)
    chat.status = ChatStatus.REQUIRES_ACTION
    chat.updated_at = utcnow()


def resume_with_client_results(chat: Chat) -> None:
    """The client posted every result: between steps again, until the fan-in continues."""
    release_between_steps(chat)
    chat.updated_at = utcnow()


def end_turn(chat: Chat) -> None:
    """The run is over: the chat waits for the user."""
    _idle(chat, ChatStatus.WAITING)


def interrupt(chat: Chat, *, promote_id: int | None = None, stop_pending: bool = False) -> bool:
    """Stop the current run (Coder: a pending chat stays pending, unless ``stop_pending``, as
    close_agent wants). Returns True if it changed."""
    if chat.status == ChatStatus.PENDING and promote_id is None and not stop_pending:
        return False
    if chat.status not in (ChatStatus.RUNNING, ChatStatus.PENDING, ChatStatus.REQUIRES_ACTION):
        return False
    _idle(chat, ChatStatus.WAITING)
    chat.last_error = None
    chat.interrupt_promote_id = promote_id
    return True


def fail_run(
    session: Session, chat_id: uuid.UUID, generation: int, worker_id: uuid.UUID, message: str
) -> Any | None:
    """End the run in ``error`` with ``message``, if the run is still ``worker_id``'s (or no
    worker's). Returns the chat's watch columns, or None if the run had moved on."""
    result = session.execute(
        sa.update(Chat)
        .where(
            Chat.id == chat_id,  # type: ignore[arg-type]
            Chat.generation == generation,  # type: ignore[arg-type]
            # pending: a failure while taking the chat (e.g. its provider is unavailable to
            # the owner) rolled the take back; generation still pins it to this run.
            Chat.status.in_((ChatStatus.RUNNING, ChatStatus.PENDING)),  # type: ignore[attr-defined]
            sa.or_(Chat.worker_id == worker_id, Chat.worker_id.is_(None)),  # type: ignore[arg-type, union-attr]
        )
        .values(
            status=ChatStatus.ERROR,
            last_error=message,
            worker_id=None,
            started_at=None,
            heartbeat_at=None,
            updated_at=sa.func.now(),
        )
        .returning(*WATCH_COLUMNS)
    )
    return result.first()


# A running chat whose worker stopped heartbeating goes back to pending (a new generation).
_STALE_SQL = sa.text(
    """
    UPDATE chats SET status = 'pending', generation = generation + 1, worker_id = NULL,
           started_at = NULL, heartbeat_at = NULL, last_error = NULL, updated_at = now()
     WHERE status = 'running'
       AND coalesce(heartbeat_at, updated_at) < now() - make_interval(secs => :stale)
       -- Between steps, unfinished tool calls carry the chat on (recovery repairs them), and
       -- so do finished calls whose results were never written back as tool messages: a new
       -- step now would prompt the model with calls that have no results.
       AND NOT (worker_id IS NULL AND EXISTS (
             SELECT 1 FROM chat_tool_calls tc
              WHERE tc.chat_id = chats.id AND tc.generation = chats.generation
                AND (tc.status IN ('queued', 'running')
                     OR (tc.status = 'done' AND NOT EXISTS (
                           SELECT 1 FROM chat_messages m
                            WHERE m.chat_id = tc.chat_id
                              AND m.step_key = tc.step_key || ':tool:' || tc.tool_call_id)))))
    RETURNING id, generation, owner_id, title, status, created_at, updated_at,
              parent_chat_id, root_chat_id, workspace_id
    """
)


def restart_stale(session: Session, stale_after_s: float) -> list[Any]:
    """Return chats whose worker vanished to pending; their rows (id, generation, watch)."""
    return list(session.execute(_STALE_SQL, {"stale": stale_after_s}).all())
