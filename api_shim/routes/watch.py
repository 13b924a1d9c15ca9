"""``GET /api/experimental/chats/watch``: a one-way WebSocket of all the caller's chats.

Each text frame is one bare JSON object ``{"kind", "chat", "tool_calls"?}`` (kinds
``created``, ``status_change``, ``title_change``, ``deleted``; ``chat`` is a partial Chat),
relayed from the owner's pub/sub channel ``chat:owner:{owner_id}``. Nothing is replayed: a
client refetches the chat list whenever it (re)connects.

The channel is subscribed (and the subscription confirmed by Redis) before the socket is
accepted, so nothing published after the handshake is missed. Any frame from the client
closes the socket (1003). No keepalive frames are sent: Coder's watch frames are only the
bare event objects, so an application-level ping would be an unknown object to clients;
WebSocket protocol pings are the server's job (uvicorn's ``ws_ping_interval``).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agentfarm.chat_stream import events as ev
from api_shim import relay
from api_shim.deps import SESSION_COOKIE, SESSION_HEADER, authenticate
from models import db
from models.errors import ApiError, BadRequest

router = APIRouter(prefix="/api/experimental/chats", tags=["stream"])
log = logging.getLogger("agentfarm.watch")
SUBSCRIBE_TIMEOUT_S = 5.0


def _token(websocket: WebSocket) -> str | None:
    token = websocket.headers.get(SESSION_HEADER)
    if not token:
        scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value:
            token = value.strip()
    if not token:
        token = websocket.cookies.get(SESSION_COOKIE) or websocket.query_params.get(SESSION_COOKIE)
    return token or None


def _owner(token: str | None) -> uuid.UUID:
    with db.session_scope() as session:
        return authenticate(session, token).id


@router.get("/watch", summary="Watch all your chats (WebSocket only)")
def watch_http() -> None:
    # Registered before the chats router, so a plain GET is not read as GET /{chat}.
    raise BadRequest("This endpoint is a WebSocket: connect with a WebSocket upgrade request.")


@router.websocket("/watch")
async def watch_ws(websocket: WebSocket) -> None:
    try:
        owner_id = await run_in_threadpool(_owner, _token(websocket))
    except ApiError as exc:
        await websocket.send_denial_response(JSONResponse(exc.body(), status_code=exc.status_code))
        return
    pubsub = websocket.app.state.redis.pubsub()
    try:
        await pubsub.subscribe(ev.owner_channel(owner_id))
        # The confirmation: from here on every publish on the channel reaches this socket.
        await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
        await websocket.accept()
    except BaseException:
        await pubsub.aclose()
        raise
    try:
        await relay.serve_read_only(websocket, _pump(websocket, pubsub), "watch")
    finally:
        await pubsub.aclose()


async def _pump(websocket: WebSocket, pubsub: Any) -> None:
    """Forward each published watch event as one text frame, unchanged."""
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
        if message is None or message.get("type") != "message":
            continue
        data = message["data"]
        await websocket.send_text(data.decode() if isinstance(data, bytes) else str(data))
