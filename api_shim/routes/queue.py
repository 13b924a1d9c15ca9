"""``/api/experimental/chats/{chat}/queue/{queuedMessage}``: drop or promote a queued message."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlmodel import Session

from agentfarm.chat_stream import events as ev
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer
from api_shim.deps import CurrentUser, DbSession, parse_uuid, require_agents_access
from models.chat import edits as chat_edits
from models.chat import rules as chat_rules
from models.chat import transitions
from models.chat.tables import Chat, ChatMessage
from models.chat.wire import message_json, queued_json
from models.errors import Conflict
from models.usage import limits as usage_limits

router = APIRouter(prefix="/api/experimental/chats", tags=["queue"])

# Coder's route parameter name; validated by hand for Coder's 400 message.
QueuedMessageId = Annotated[str, Path(alias="queuedMessage")]

# How long a promote waits for the worker running the chat to save its partial step and
# promote the message, and how often it looks.
PROMOTE_WAIT_S = 10.0
PROMOTE_POLL_S = 0.05


def _queue_snapshot(session: Session, chat: Chat) -> list[dict[str, Any]]:
    return [queued_json(q) for q in chat_rules.queued_messages(session, chat.id)]


@router.delete(
    "/{chat}/queue/{queuedMessage}",
    status_code=204,
    response_class=Response,
    summary="Remove a queued message",
)
def delete_queued_message(
    chat: str,
    queued_message: QueuedMessageId,
    request: Request,
    user: CurrentUser,
    session: DbSession,
) -> Response:
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"), for_update=True)
    chat_edits.delete_queued(session, row, chat_edits.parse_queued_id(queued_message))
    session.commit()
    request.app.state.events.publish(row.id, ev.queue_event(row.id, _queue_snapshot(session, row)))
    return Response(status_code=204)


@router.post(
    "/{chat}/queue/{queuedMessage}/promote",
    summary="Send a queued message now (interrupting the current run)",
)
def promote_queued_message(
    chat: str,
    queued_message: QueuedMessageId,
    request: Request,
    user: CurrentUser,
    session: DbSession,
) -> dict[str, Any]:
    require_agents_access(user)
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"), for_update=True)
    usage_limits.require_within_limit(session, row.owner_id)
    queued_id = chat_edits.parse_queued_id(queued_message)
    queued = chat_edits.get_queued(session, row, queued_id)
    writer = request.app.state.events
    if not chat_edits.held_by_worker(row):
        # Nothing is streaming: promote here, exactly as the worker would after a run.
        message = chat_rules.promote_queued(session, row, queued_id)
        assert message is not None  # the row is locked and the queued message exists
        row.interrupt_promote_id = None
        defer(session, catalog.CHAT_STEP.message(str(row.id), row.generation, 1))
        session.commit()
        queue = _queue_snapshot(session, row)
        writer.publish(row.id, *ev.new_run_events(row.id, message_json(message), queue), watch=row)
        return message_json(message)
    # [inferred] A worker holds the chat: it must persist the partial step before the promoted
    # message is inserted (reference §1.5), so the worker promotes and this request waits for
    # it (bounded) in order to return the promoted ChatMessage as Coder does.
    content, created_by = list(queued.content), queued.created_by
    after_id = chat_edits.max_message_id(session, row.id)
    if not transitions.interrupt(row, promote_id=queued_id):
        # Already interrupted and the worker is saving its step: promote this one instead.
        row.interrupt_promote_id = queued_id
    session.commit()
    writer.request_interrupt(row.id)
    return message_json(
        _wait_for_promotion(session, row.id, queued_id, after_id, content, created_by)
    )


def _wait_for_promotion(
    session: Session,
    chat_id: uuid.UUID,
    queued_id: int,
    after_id: int,
    content: list[dict[str, Any]],
    created_by: uuid.UUID | None,
) -> ChatMessage:
    """Poll (this sync route runs in a worker thread) until the queued row is gone."""
    deadline = time.monotonic() + PROMOTE_WAIT_S
    while True:
        session.rollback()  # end the transaction: each look sees the latest commits
        if not chat_edits.queued_exists(session, queued_id):
            promoted = chat_edits.find_promoted(
                session, chat_id, after_id=after_id, content=content, created_by=created_by
            )
            if promoted is None:
                raise Conflict(
                    "Queued message was removed before it could be promoted.",
                    detail="It was deleted, or the chat's history was edited.",
                )
            return promoted
        if time.monotonic() >= deadline:
            # [inferred] The promotion stays requested: the worker (or stale-chat recovery)
            # still performs it once the interrupted step is saved.
            raise Conflict(
                "Timed out waiting for the running chat to promote the queued message.",
                detail="The message will be sent once the interrupted step has been saved.",
            )
        time.sleep(PROMOTE_POLL_S)
