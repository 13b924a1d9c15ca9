"""``GET /api/experimental/chats/{chat}/stream``: WebSocket (Coder's envelope) or SSE.

WebSocket frames: ``{"type":"data","data":[events…]}`` (at most 256 events a frame),
``{"type":"ping"}`` after 15 s of silence, ``{"type":"error","data":{message…}}``. The socket
is one-way: any frame from the client closes it.

SSE (``Accept: text/event-stream``): one event per ChatStreamEvent, ``event:`` its type,
``id:`` its Redis stream entry id; reconnecting with ``Last-Event-ID`` resumes right after it
(falling back to a fresh snapshot if those entries were already trimmed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from agentfarm import metrics
from agentfarm.chat_stream.events import event_json
from agentfarm.settings import get_settings
from api_shim import relay
from api_shim.deps import authenticate, parse_uuid, request_token
from models import db
from models.chat import rules as chat_rules
from models.chat.tables import Chat
from models.errors import ApiError, BadRequest

router = APIRouter(prefix="/api/experimental/chats", tags=["stream"])
log = logging.getLogger("agentfarm.stream")
MAX_FRAME_EVENTS = 256


def _parse_after_id(raw: str | None) -> int:
    if raw in (None, ""):
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("Invalid after_id parameter.") from None
    if value < 0:
        raise BadRequest("Invalid after_id parameter.")
    return value


def _authorize(token: str | None, chat: str) -> uuid.UUID:
    """Authenticate, check ownership and move the read cursor; returns the chat id."""
    with db.session_scope() as session:
        user = authenticate(session, token)
        row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"))
        chat_rules.mark_read(session, row)
        return row.id


def _mark_read(chat_id: uuid.UUID) -> None:
    with db.session_scope() as session:
        row = session.get(Chat, chat_id)
        if row is not None:
            chat_rules.mark_read(session, row)


@router.get(
    "/{chat}/stream",
    summary="Stream a chat's events (WebSocket, or SSE with Accept: text/event-stream)",
    response_class=StreamingResponse,
)
async def stream_sse(chat: str, request: Request, after_id: str | None = None) -> Any:
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise BadRequest(
            "This endpoint streams over a WebSocket, or over SSE with 'Accept: text/event-stream'."
        )
    after = _parse_after_id(after_id)
    chat_id = await run_in_threadpool(_authorize, request_token(request), chat)
    last_event_id = request.headers.get("last-event-id")
    redis = request.app.state.redis
    return StreamingResponse(
        _sse_events(redis, chat_id, after, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse_frame(entry_id: str, event: dict[str, Any]) -> str:
    return f"id: {entry_id}\nevent: {event['type']}\ndata: {event_json(event)}\n\n"


async def _sse_events(
    redis: Any, chat_id: uuid.UUID, after: int, last_event_id: str | None
) -> AsyncIterator[str]:
    settings = get_settings()
    metrics.OPEN_STREAMS.labels("sse").inc()
    try:
        seen = 0
        if last_event_id and await relay.resumable_from(
            redis, chat_id, last_event_id, maxlen=settings.stream_maxlen
        ):
            entries = await relay.replay_after(redis, chat_id, last_event_id)
            position = entries[-1][0] if entries else last_event_id
            missing = await relay.unstreamed_messages(redis, chat_id, last_event_id, entries)
            # After the replay, under its position (like snapshot events); live copies of
            # them, should their events still arrive, are skipped.
            entries = [*entries, *((position, e) for e in missing)]
            seen = relay.max_message_id(missing)
        else:
            batch = await relay.snapshot(redis, chat_id, after)
            entries, position = batch.entries, batch.position
            seen = relay.max_message_id(batch.events)
        for entry_id, event in entries:
            yield _sse_frame(entry_id, event)
        async for live in relay.follow(
            redis,
            chat_id,
            position,
            block_ms=int(settings.stream_ping_interval_s * 1000),
            seen_message_id=seen,
        ):
            if not live.entries:
                yield ": ping\n\n"
            for entry_id, event in live.entries:
                yield _sse_frame(entry_id, event)
    except RedisError as exc:
        # The response has started: all that is left is to end it. The client reconnects
        # with Last-Event-ID and resumes where it was (an outage, not a server bug).
        log.warning(
            "chat stream ended: Redis unavailable: %s", exc, extra={"chat_id": str(chat_id)}
        )
    finally:
        metrics.OPEN_STREAMS.labels("sse").dec()
        await run_in_threadpool(_mark_read, chat_id)


@router.websocket("/{chat}/stream")
async def stream_ws(websocket: WebSocket, chat: str) -> None:
    try:
        after = _parse_after_id(websocket.query_params.get("after_id"))
        token = websocket.headers.get("coder-session-token") or _bearer(websocket)
        token = token or websocket.query_params.get("coder_session_token")
        chat_id = await run_in_threadpool(_authorize, token, chat)
    except ApiError as exc:
        await websocket.send_denial_response(JSONResponse(exc.body(), status_code=exc.status_code))
        return
    await websocket.accept()
    try:
        await relay.serve_read_only(websocket, _pump_ws(websocket, chat_id, after), "websocket")
    finally:
        await run_in_threadpool(_mark_read, chat_id)


def _bearer(websocket: WebSocket) -> str | None:
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value else None


async def _send_events(websocket: WebSocket, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), MAX_FRAME_EVENTS):
        # The envelope {"type":"data","data":[...]} around events that are JSON already.
        data = ",".join(event_json(e) for e in events[i : i + MAX_FRAME_EVENTS])
        await websocket.send_text(f'{{"type":"data","data":[{data}]}}')


async def _pump_ws(websocket: WebSocket, chat_id: uuid.UUID, after: int) -> None:
    settings = get_settings()
    redis = websocket.app.state.redis
    try:
        batch = await relay.snapshot(redis, chat_id, after)
        await _send_events(websocket, batch.events)
        async for live in relay.follow(
            redis,
            chat_id,
            batch.position,
            block_ms=int(settings.stream_ping_interval_s * 1000),
            seen_message_id=relay.max_message_id(batch.events),
        ):
            if live.entries:
                await _send_events(websocket, live.events)
            else:
                await websocket.send_text('{"type":"ping"}')
    except (WebSocketDisconnect, asyncio.CancelledError):
        raise
    except Exception as exc:
        if isinstance(exc, RedisError):  # an outage: the client reconnects with after_id
            log.warning("chat stream ended: Redis unavailable: %s", exc,
                        extra={"chat_id": str(chat_id)})  # fmt: skip
        else:
            log.exception("stream relay failed", extra={"chat_id": str(chat_id)})
        payload = {"type": "error", "data": {"message": "Stream failed.", "detail": str(exc)}}
        await websocket.send_text(json.dumps(payload))
        await websocket.close(code=1011)
