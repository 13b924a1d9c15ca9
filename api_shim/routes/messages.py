"""``/api/experimental/chats/{chat}/messages``: page, send and edit messages."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from agentfarm.chat_stream import events as ev
from agentfarm.settings import get_settings
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer
from api_shim.deps import CurrentUser, DbSession, parse_uuid, require_agents_access
from api_shim.routes.chats import InputPart, dump_parts
from models.chat import edits as chat_edits
from models.chat import files as chat_files
from models.chat import queries as chat_queries
from models.chat import rules as chat_rules
from models.chat import sending, transitions
from models.chat.wire import message_json, queued_json
from models.enums import BusyBehavior, ChatStatus
from models.errors import BadRequest
from models.mcp import selection as mcp_selection
from models.usage import limits as usage_limits

router = APIRouter(prefix="/api/experimental/chats", tags=["messages"])


class SendMessageRequest(BaseModel):
    content: list[InputPart] | None = None
    model_config_id: uuid.UUID | None = None
    mcp_server_ids: list[uuid.UUID] | None = None
    plan_mode: str | None = None
    busy_behavior: str | None = None


class EditMessageRequest(BaseModel):
    content: list[InputPart] | None = None


def _positive_int(raw: str | None, message: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(message) from None
    if value <= 0:
        raise BadRequest(message)
    return value


def _with_warnings(body: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """CreateChatMessageResponse's ``warnings`` (omitted when empty)."""
    if warnings:
        body["warnings"] = warnings
    return body


@router.get("/{chat}/messages", summary="Page through a chat's messages")
def list_messages(
    chat: str,
    user: CurrentUser,
    session: DbSession,
    before_id: str | None = None,
    after_id: str | None = None,
    limit: str | None = None,
) -> dict[str, Any]:
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"))
    before = _positive_int(before_id, "Invalid before_id parameter.")
    after = _positive_int(after_id, "Invalid after_id parameter.")
    page_size = 50
    if limit not in (None, ""):
        try:
            page_size = int(limit)
        except ValueError:
            page_size = 0
        if not 1 <= page_size <= 200:
            raise BadRequest("Invalid limit parameter (1-200).")
    if before is not None and after is not None and after >= before:
        raise BadRequest("after_id must be less than before_id.")
    messages, has_more = chat_queries.page_messages(
        session, row.id, before_id=before, after_id=after, limit=page_size
    )
    queued = []
    if before is None and after is None:
        queued = [queued_json(q) for q in chat_rules.queued_messages(session, row.id)]
    return {
        "messages": [message_json(m) for m in messages],
        "queued_messages": queued,
        "has_more": has_more,
    }


@router.post("/{chat}/messages", summary="Send a message (queued while the chat is busy)")
def send_message(
    chat: str, body: SendMessageRequest, request: Request, user: CurrentUser, session: DbSession
) -> dict[str, Any]:
    require_agents_access(user)
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"), for_update=True)
    usage_limits.require_within_limit(session, row.owner_id)
    behavior = chat_rules.parse_busy_behavior(body.busy_behavior)
    parts = chat_rules.parse_input_parts(dump_parts(body.content), session=session, user=user)
    config_id = None
    if body.model_config_id is not None:
        config_id = chat_rules.resolve_model_config(session, body.model_config_id).id
    if body.mcp_server_ids is not None:
        row.mcp_server_ids = mcp_selection.replaced_selection(session, body.mcp_server_ids)
    if body.plan_mode is not None:
        row.plan_mode = chat_rules.parse_plan_mode(body.plan_mode)
    # Files are linked when the message is accepted, queued or not.
    warnings = chat_files.link_files(session, row.id, chat_files.file_ids_in(parts))
    writer = request.app.state.events
    # Late Coder behaviour for "interrupt" on a run a worker holds: queue it and stop the run;
    # the worker persists the partial step and then promotes exactly this message.
    interrupt = behavior == BusyBehavior.INTERRUPT
    delivery = sending.deliver(
        session,
        row,
        parts,
        created_by=user.id,
        model_config_id=config_id,
        queue=chat_rules.is_busy(row) and (not interrupt or transitions.held_by_worker(row)),
        interrupt=interrupt,
        max_queue=get_settings().max_queue_size,
    )
    if delivery.queued is not None:
        # Read before the commit: after it, nothing may turn the accepted message into an
        # error (a retrying client would send it twice).
        session.flush()
        snapshot = [queued_json(q) for q in chat_rules.queued_messages(session, row.id)]
        answer = {"queued": True, "queued_message": queued_json(delivery.queued)}
        session.commit()
        if interrupt:
            writer.request_interrupt(row.id)
        writer.publish(row.id, ev.queue_event(row.id, snapshot))
        return _with_warnings(answer, warnings)
    assert delivery.message is not None
    defer(session, catalog.CHAT_STEP.message(str(row.id), row.generation, 1))
    session.flush()
    sent = message_json(delivery.message)  # read before the commit (see above)
    session.commit()
    writer.publish(row.id, *ev.new_run_events(row.id, sent), watch=row)
    return _with_warnings({"queued": False, "message": sent}, warnings)


@router.patch(
    "/{chat}/messages/{message}",
    summary="Edit a user message: later history is dropped and the chat runs again",
)
def edit_message(
    chat: str,
    message: str,
    body: EditMessageRequest,
    request: Request,
    user: CurrentUser,
    session: DbSession,
) -> dict[str, Any]:
    # [inferred] editing starts a run like sending does, so it needs the same role.
    require_agents_access(user)
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"), for_update=True)
    usage_limits.require_within_limit(session, row.owner_id)
    message_id = chat_edits.parse_message_id(message)
    parts = chat_rules.parse_input_parts(dump_parts(body.content), session=session, user=user)
    was_held = row.status == ChatStatus.RUNNING and row.worker_id is not None
    edited = chat_edits.edit_user_message(session, row, message_id, parts)
    warnings = chat_files.link_files(session, row.id, chat_files.file_ids_in(parts))
    defer(session, catalog.CHAT_STEP.message(str(row.id), row.generation, 1))
    session.commit()
    writer = request.app.state.events
    if was_held:
        # The new generation already ends that step at its next heartbeat; this is sooner.
        writer.request_interrupt(row.id)
    # The full-refresh path: the edited message, the (now empty) queue, the new status.
    writer.publish(row.id, *ev.new_run_events(row.id, message_json(edited), []), watch=row)
    return _with_warnings({"message": message_json(edited)}, warnings)
