"""The chat event stream: every event of a chat is XADDed to ``chat:{id}:events``.

Any shim replica relays the stream to WebSocket/SSE clients; the entry id is the SSE event
id, so a client resumes after the last entry it saw. ``chat:{id}:step_from`` holds the id of
the first ``message_part`` of the step in flight, so a new subscriber can be sent the parts of
the step that is still streaming (Coder's snapshot order: status, buffered parts, messages,
queue).

Watch events (``GET /chats/watch``) go to the owner's pub/sub channel ``chat:owner:{owner}``:
fire and forget, nothing is replayed (clients refetch the list when they reconnect), and a
failed watch publish is logged, never raised.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from agentfarm import metrics
from models.chat.wire import ts

CONTROL_CHANNEL = "agentfarm:chat-control"
log = logging.getLogger("agentfarm.events")


def stream_key(chat_id: uuid.UUID | str) -> str:
    return f"chat:{chat_id}:events"


def step_from_key(chat_id: uuid.UUID | str) -> str:
    return f"chat:{chat_id}:step_from"


def owner_channel(owner_id: uuid.UUID | str) -> str:
    """The pub/sub channel of every watch event of one owner's chats."""
    return f"chat:owner:{owner_id}"


def watch_chat(chat: Any) -> dict[str, Any]:
    """The partial Chat of a watch event, from a Chat (or a row with the same columns).

    ``root_chat_id`` is the chat's own id for root chats; ``parent_chat_id`` and
    ``workspace_id`` are left out when unset.
    """
    out: dict[str, Any] = {
        "id": str(chat.id),
        "owner_id": str(chat.owner_id),
        "title": chat.title,
        "status": str(chat.status),
        "created_at": ts(chat.created_at),
        "updated_at": ts(chat.updated_at),
        "root_chat_id": str(chat.root_chat_id or chat.id),
    }
    if chat.parent_chat_id is not None:
        out["parent_chat_id"] = str(chat.parent_chat_id)
    if chat.workspace_id is not None:
        out["workspace_id"] = str(chat.workspace_id)
    return out


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), default=str)


def status_event(chat_id: uuid.UUID | str, status: str) -> dict[str, Any]:
    return {"type": "status", "chat_id": str(chat_id), "status": {"status": status}}


def part_event(chat_id: uuid.UUID | str, role: str, part: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message_part",
        "chat_id": str(chat_id),
        "message_part": {"role": role, "part": part},
    }


def message_event(chat_id: uuid.UUID | str, message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "chat_id": str(chat_id), "message": message}


def queue_event(chat_id: uuid.UUID | str, queued: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "queue_update", "chat_id": str(chat_id), "queued_messages": queued}


def error_event(chat_id: uuid.UUID | str, error: dict[str, Any]) -> dict[str, Any]:
    return {"type": "error", "chat_id": str(chat_id), "error": error}


def action_required_event(chat_id: uuid.UUID | str, calls: list[Any]) -> dict[str, Any]:
    """The client must run these dynamic-tool calls (``args`` is a JSON string)."""
    return {
        "type": "action_required",
        "chat_id": str(chat_id),
        "action_required": {
            "tool_calls": [
                {"tool_call_id": c.id, "tool_name": c.name, "args": c.arguments or "{}"}
                for c in calls
            ]
        },
    }


def retry_event(chat_id: uuid.UUID | str, retry: dict[str, Any]) -> dict[str, Any]:
    return {"type": "retry", "chat_id": str(chat_id), "retry": retry}


class ChatEventWriter:
    """Appends events to chat streams, bounded in length and time."""

    def __init__(self, redis: Redis, *, maxlen: int = 10_000, ttl_s: int = 86_400):
        self.redis = redis
        self.maxlen = maxlen
        self.ttl_s = ttl_s

    def publish(
        self, chat_id: uuid.UUID | str, *events: dict[str, Any], watch: Any = None
    ) -> list[str]:
        """Append events in order (one round trip) and refresh the stream's expiry.

        With ``watch`` (the chat: a :func:`watch_chat` partial, or a Chat or row to build it
        from) and a ``status`` event among ``events``, the owner's watchers also get one
        ``status_change`` carrying the last such status.

        Callers publish what they already committed, so a Redis outage does not raise here
        (that would turn an accepted change into an error, and a client's retry into a
        duplicate): the events are counted as unpublished and logged, and clients that
        reconnect get the database's snapshot. Returns the new entry ids ([] if none).
        """
        key = stream_key(chat_id)
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(key, {"e": encode(event)}, maxlen=self.maxlen, approximate=True)
        if any(e["type"] == "message" for e in events):
            # A persisted message ends the step in flight: no parts left to replay.
            pipe.delete(step_from_key(chat_id))
        pipe.expire(key, self.ttl_s)
        try:
            results = pipe.execute()
        except RedisError as exc:
            metrics.EVENTS_UNPUBLISHED.inc(len(events))
            log.warning("chat events not published: Redis unavailable: %s", exc,
                        extra={"chat_id": str(chat_id), "events": len(events)})  # fmt: skip
            return []
        if watch is not None:
            statuses = [e["status"]["status"] for e in events if e["type"] == "status"]
            if statuses:
                self.watch("status_change", watch, status=statuses[-1])
        return [_decode_id(r) for r in results[: len(events)]]

    def watch(
        self,
        kind: str,
        chat: Any,
        *,
        status: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Tell the owner's watchers ``{kind, chat, tool_calls?}``; never raises.

        ``chat`` is a :func:`watch_chat` partial, or a Chat (or row) to build it from;
        ``status`` overrides its status.
        """
        try:
            partial = dict(chat) if isinstance(chat, dict) else watch_chat(chat)
            if status is not None:
                partial["status"] = status
            event: dict[str, Any] = {"kind": kind, "chat": partial}
            if tool_calls is not None:
                event["tool_calls"] = tool_calls
            self.redis.publish(owner_channel(partial["owner_id"]), encode(event))
        except Exception:
            log.warning("watch publish failed", exc_info=True, extra={"kind": kind})
            return False
        return True

    def publish_part(
        self, chat_id: uuid.UUID | str, role: str, part: dict[str, Any], *, first: bool
    ) -> str:
        """Append one streaming part; the first part of a step marks where the step starts."""
        entry_id = _decode_id(
            self.redis.xadd(
                stream_key(chat_id),
                {"e": encode(part_event(chat_id, role, part))},
                maxlen=self.maxlen,
                approximate=True,
            )
        )
        if first:
            self.redis.set(step_from_key(chat_id), entry_id, ex=self.ttl_s)
        return entry_id

    def clear_step(self, chat_id: uuid.UUID | str) -> None:
        """Forget the parts of an abandoned step (nothing was persisted for it). Best effort,
        like :meth:`publish`: the key expires with the stream anyway."""
        try:
            self.redis.delete(step_from_key(chat_id))
        except RedisError as exc:
            log.warning("step parts not cleared: Redis unavailable: %s", exc,
                        extra={"chat_id": str(chat_id)})  # fmt: skip

    def request_interrupt(self, chat_id: uuid.UUID | str) -> None:
        """Tell whichever worker runs this chat to stop (the database already says so: with
        Redis down the worker's next heartbeat finds out instead, so this never raises)."""
        try:
            self.redis.publish(CONTROL_CHANNEL, json.dumps({"chat_id": str(chat_id)}))
        except RedisError as exc:
            log.warning("interrupt not signalled: Redis unavailable: %s", exc,
                        extra={"chat_id": str(chat_id)})  # fmt: skip


def _decode_id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
