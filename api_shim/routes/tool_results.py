"""``POST /api/experimental/chats/{chat}/tool-results``: results of client-run dynamic tools.

When the model calls a tool the client declared in ``unsafe_dynamic_tools``, the chat goes to
``requires_action`` with an ``action_required`` event; the client runs the calls and posts
their results here, and the loop resumes: this request stores the results and sets the
chat running again; a ``tool.finish_step`` worker task writes them as tool messages and
continues the turn (the same fan-in ``tool.run`` does for server-run tools).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlmodel import select

from agentfarm.chat_stream import events as ev
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer, defer_call
from api_shim.deps import CurrentUser, DbSession, parse_uuid, require_agents_access
from models.base import utcnow
from models.chat import rules as chat_rules
from models.chat import transitions
from models.enums import ChatStatus
from models.errors import BadRequest, Conflict, PayloadTooLarge
from models.workspaces.tables import ChatToolCall, ToolCallStatus

router = APIRouter(prefix="/api/experimental/chats", tags=["messages"])
MAX_BODY_BYTES = 256 * 1024


class ToolResult(BaseModel):
    tool_call_id: str
    output: Any = None
    is_error: bool = False


class ToolResultsRequest(BaseModel):
    results: list[ToolResult] = []


@router.post(
    "/{chat}/tool-results",
    status_code=204,
    response_class=Response,
    summary="Submit the results of dynamic (client-run) tool calls",
)
def post_tool_results(
    chat: str, body: ToolResultsRequest, request: Request, user: CurrentUser, session: DbSession
) -> Response:
    # The 256 KiB cap is checked on the declared length (FastAPI has read the body already;
    # uvicorn/proxies bound chunked bodies).
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            "Request body too large.", detail=f"Maximum size is {MAX_BODY_BYTES} bytes."
        )
    require_agents_access(user)
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"), for_update=True)
    if row.status != ChatStatus.REQUIRES_ACTION:
        raise Conflict(
            "Chat is not waiting for tool results.",
            detail=f'Chat status is "{row.status}", expected "requires_action".',
        )
    if not body.results:
        raise BadRequest("At least one tool result is required.")
    waiting = {
        c.tool_call_id: c
        for c in session.exec(
            select(ChatToolCall).where(
                ChatToolCall.chat_id == row.id,
                ChatToolCall.generation == row.generation,
                ChatToolCall.status == ToolCallStatus.CLIENT,
            )
        )
    }
    given = [r.tool_call_id for r in body.results]
    if len(set(given)) != len(given):
        raise BadRequest("Duplicate tool_call_id in results.")
    unknown = [i for i in given if i not in waiting]
    if unknown:
        raise BadRequest(f'Unknown tool call ID "{unknown[0]}".')
    missing = sorted(set(waiting) - set(given))
    if missing:
        raise BadRequest("Missing tool results.", detail="Missing: " + ", ".join(missing))
    for result in body.results:
        call = waiting[result.tool_call_id]
        call.status = ToolCallStatus.DONE
        call.result = result.output
        call.is_error = result.is_error
        call.finished_at = utcnow()
    transitions.resume_with_client_results(row)
    session.flush()
    step_key = next(iter(waiting.values())).step_key
    chat_id, writer = row.id, request.app.state.events
    status, watch = ev.status_event(chat_id, row.status), ev.watch_chat(row)
    # On commit, in this order: the client hears "running" before the fan-in can move on.
    defer_call(session, lambda: writer.publish(chat_id, status, watch=watch))
    defer(session, catalog.FINISH_STEP.message(str(chat_id), step_key))
    session.commit()
    return Response(status_code=204)
