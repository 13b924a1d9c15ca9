"""The chat event stream's protocol: keys, entry ids, encoding and the events themselves.

Every event of a chat is XADDed to ``chat:{id}:events`` (``writer.ChatEventWriter``).

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
import uuid
from typing import Any

from models.chat.wire import ts

CONTROL_CHANNEL = "agentfarm:chat-control"


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


# ---------------------------------------------------------------- ids and encoding


def encode(event: dict[str, Any]) -> str:
    """An event as the compact JSON stored in the stream (and sent to clients)."""
    return json.dumps(event, separators=(",", ":"), default=str)


Entry = tuple[str, dict[str, Any]]


def decode(value: Any) -> str:
    """A Redis reply (bytes or str) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class StreamEvent(dict[str, Any]):
    """An event read from a chat stream that keeps the JSON text it was decoded from: relayed
    to many clients, it is encoded by none of them (see :func:`event_json`)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        super().__init__(json.loads(text))
        self.text = text


def event_json(event: dict[str, Any]) -> str:
    """An event as compact JSON: the stream's own text when it came from the stream (the
    worker wrote it compactly, ``agentfarm.chat_stream.events.encode``), else encoded here."""
    if isinstance(event, StreamEvent):
        return event.text
    return encode(event)


def parse_entries(entries: Any) -> list[Entry]:
    """``XRANGE``/``XREAD`` entries → (entry id, event); entries without an event are skipped."""
    out: list[Entry] = []
    for entry_id, fields in entries:
        raw = fields.get(b"e") or fields.get("e")
        if raw is not None:
            out.append((decode(entry_id), StreamEvent(decode(raw))))
    return out


def id_tuple(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms or 0), int(seq or 0)


# ---------------------------------------------------------------- events


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


def new_run_events(
    chat_id: uuid.UUID | str, message: dict[str, Any], queue: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """A user message that starts a run (sent, edited or promoted from the queue): the
    message, the queue when it changed, then ``pending``: the order clients render."""
    events = [message_event(chat_id, message)]
    if queue is not None:
        events.append(queue_event(chat_id, queue))
    events.append(status_event(chat_id, "pending"))
    return events


def retry_event(chat_id: uuid.UUID | str, retry: dict[str, Any]) -> dict[str, Any]:
    return {"type": "retry", "chat_id": str(chat_id), "retry": retry}
