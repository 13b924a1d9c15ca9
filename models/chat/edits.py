"""Queue management and message edits (reference §1.5, §3.5).

Like ``chat_rules``, every function takes the session explicitly and only flushes; the caller
holds the chat row locked (``get_owned_chat(..., for_update=True)``) and commits.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.chat import transitions
from models.chat.tables import Chat, ChatMessage, ChatQueuedMessage
from models.enums import ChatStatus, MessageRole
from models.errors import BadRequest, NotFound


def parse_queued_id(raw: str) -> int:
    """A queued message id from the path: any integer, else Coder's 400."""
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("Invalid queued message ID.") from None


def parse_message_id(raw: str) -> int:
    """A chat message id from the path: a positive integer, else Coder's 400."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise BadRequest("Invalid chat message ID.")
    return value


def queued_not_found() -> NotFound:
    # [inferred] Coder's message for a missing queued message is not in the reference.
    return NotFound("Queued message not found.")


def get_queued(session: Session, chat: Chat, queued_id: int) -> ChatQueuedMessage:
    """One of the chat's queued messages, or 404 (also for another chat's queued message)."""
    queued = session.exec(
        select(ChatQueuedMessage).where(
            ChatQueuedMessage.id == queued_id, ChatQueuedMessage.chat_id == chat.id
        )
    ).first()
    if queued is None:
        raise queued_not_found()
    return queued


def delete_queued(session: Session, chat: Chat, queued_id: int) -> None:
    """Remove one queued message of the chat (404 if it is not there)."""
    session.delete(get_queued(session, chat, queued_id))
    session.flush()


def held_by_worker(chat: Chat) -> bool:
    """A worker is streaming a step of this chat right now (or is persisting an interrupted
    one that will then promote ``interrupt_promote_id``)."""
    if chat.status == ChatStatus.RUNNING and chat.worker_id is not None:
        return True
    return chat.status == ChatStatus.WAITING and chat.interrupt_promote_id is not None


def max_message_id(session: Session, chat_id: uuid.UUID) -> int:
    value = session.exec(
        select(sa.func.max(ChatMessage.id)).where(ChatMessage.chat_id == chat_id)
    ).one()
    return int(value or 0)


def queued_exists(session: Session, queued_id: int) -> bool:
    return (
        session.exec(select(ChatQueuedMessage.id).where(ChatQueuedMessage.id == queued_id)).first()
        is not None
    )


def find_promoted(
    session: Session,
    chat_id: uuid.UUID,
    *,
    after_id: int,
    content: list[dict[str, Any]],
    created_by: uuid.UUID | None,
) -> ChatMessage | None:
    """The user message a worker made of a queued message (same content and author), inserted
    after ``after_id``. A promotion deletes the queued row and inserts the message in one
    transaction, so once the row is gone the message is there unless an edit removed it."""
    rows = session.exec(
        select(ChatMessage)
        .where(
            ChatMessage.chat_id == chat_id,
            ChatMessage.id > after_id,  # type: ignore[operator]
            ChatMessage.role == MessageRole.USER,
            ChatMessage.deleted.is_(False),  # type: ignore[attr-defined]
        )
        .order_by(ChatMessage.id)  # type: ignore[arg-type]
    )
    for row in rows:
        if row.content == content and row.created_by == created_by:
            return row
    return None


def edit_user_message(
    session: Session, chat: Chat, message_id: int, parts: list[dict[str, Any]]
) -> ChatMessage:
    """Coder's edit, in order: new content in place, later messages soft-deleted, the queue
    cleared, the chat pending on a new generation (so any in-flight step is dropped)."""
    msg = session.get(ChatMessage, message_id)
    # [inferred] an already soft-deleted message counts as missing: it is not in the history.
    if msg is None or msg.chat_id != chat.id or msg.deleted:
        raise NotFound("Chat message not found.", detail="Message does not belong to this chat.")
    if msg.role != MessageRole.USER:
        raise BadRequest("Only user messages can be edited.")
    msg.content = parts
    session.add(msg)
    session.execute(
        sa.update(ChatMessage)
        .where(
            ChatMessage.chat_id == chat.id,  # type: ignore[arg-type]
            ChatMessage.id > message_id,  # type: ignore[arg-type,operator]
            ChatMessage.deleted.is_(False),  # type: ignore[attr-defined]
        )
        .values(deleted=True)
        .execution_options(synchronize_session=False)
    )
    session.execute(sa.delete(ChatQueuedMessage).where(ChatQueuedMessage.chat_id == chat.id))  # type: ignore[arg-type]
    transitions.mark_pending(chat)
    chat.interrupt_promote_id = None
    session.flush()
    return msg
