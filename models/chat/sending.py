"""Sending a user message to a chat, whoever sends it (the owner through the API, or a parent
chat's ``message_agent``): queue it behind a busy run, optionally interrupting that run so
this message goes next, or start a new run with it. The caller decides when to queue (its
busy behaviour), defers the wake-up and publishes the events after its commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from models.chat import rules as chat_rules
from models.chat import transitions
from models.chat.tables import Chat, ChatMessage, ChatQueuedMessage
from models.enums import MessageRole


@dataclass(frozen=True)
class Delivery:
    """What became of the message: a new run (``message``) or a queued follow-up."""

    message: ChatMessage | None = None
    queued: ChatQueuedMessage | None = None
    interrupted: bool = False


def deliver(
    session: Session,
    chat: Chat,
    parts: list[dict[str, Any]],
    *,
    created_by: uuid.UUID,
    model_config_id: uuid.UUID | None,
    queue: bool,
    interrupt: bool,
    max_queue: int,
) -> Delivery:
    """Queue the message (``queue``; with ``interrupt`` the run stops and this message is
    promoted next) or add it as the user turn of a new run (the chat goes pending)."""
    if queue:
        queued = chat_rules.enqueue_follow_up(
            session,
            chat,
            parts,
            created_by=created_by,
            model_config_id=model_config_id,
            max_queue=max_queue,
        )
        interrupted = interrupt and transitions.interrupt(chat, promote_id=queued.id)
        return Delivery(queued=queued, interrupted=interrupted)
    message = chat_rules.add_message(
        session,
        chat,
        MessageRole.USER,
        parts,
        created_by=created_by,
        model_config_id=model_config_id or chat.last_model_config_id,
    )
    transitions.mark_pending(chat)
    return Delivery(message=message)
