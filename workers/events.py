"""The chat event stream: every event of a chat is XADDed to ``chat:{id}:events``.

Any shim replica relays the stream to WebSocket/SSE clients; the entry id is the SSE event
id, so a client resumes after the last entry it saw. ``chat:{id}:step_from`` holds the id of
the first ``message_part`` of the step in flight, so a new subscriber can be sent the parts of
the step that is still streaming (Coder's snapshot order: status, buffered parts, messages,
queue).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from redis import Redis

CONTROL_CHANNEL = "agentfarm:chat-control"


def stream_key(chat_id: uuid.UUID | str) -> str:
    return f"chat:{chat_id}:events"


def step_from_key(chat_id: uuid.UUID | str) -> str:
    return f"chat:{chat_id}:step_from"


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


def retry_event(chat_id: uuid.UUID | str, retry: dict[str, Any]) -> dict[str, Any]:
    return {"type": "retry", "chat_id": str(chat_id), "retry": retry}


class ChatEventWriter:
    """Appends events to chat streams, bounded in length and time."""

    def __init__(self, redis: Redis, *, maxlen: int = 10_000, ttl_s: int = 86_400):
        self.redis = redis
        self.maxlen = maxlen
        self.ttl_s = ttl_s

    def publish(self, chat_id: uuid.UUID | str, *events: dict[str, Any]) -> list[str]:
        """Append events in order (one round trip) and refresh the stream's expiry."""
        key = stream_key(chat_id)
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(key, {"e": encode(event)}, maxlen=self.maxlen, approximate=True)
        if any(e["type"] == "message" for e in events):
            # A persisted message ends the step in flight: no parts left to replay.
            pipe.delete(step_from_key(chat_id))
        pipe.expire(key, self.ttl_s)
        results = pipe.execute()
        return [_decode_id(r) for r in results[: len(events)]]

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
        """Forget the parts of an abandoned step (nothing was persisted for it)."""
        self.redis.delete(step_from_key(chat_id))

    def request_interrupt(self, chat_id: uuid.UUID | str) -> None:
        """Tell whichever worker runs this chat to stop (the database already says so)."""
        self.redis.publish(CONTROL_CHANNEL, json.dumps({"chat_id": str(chat_id)}))


def _decode_id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
