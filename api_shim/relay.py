"""Relay a chat's Redis event stream to one client, after Coder's snapshot.

The snapshot position is read from the stream *before* the database snapshot is taken, and
live events are read from that position on, so nothing that happens during the snapshot is
missed. A live ``message`` event the snapshot already contained is skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from agentfarm import metrics
from agentfarm.chat_stream import events as ev
from agentfarm.chat_stream.events import decode, parse_entries
from agentfarm.chat_stream.reader import hub_for
from models import db
from models.chat import queries as chat_queries
from models.chat import rules as chat_rules
from models.chat.tables import Chat
from models.chat.wire import message_json, queued_json

ZERO_ID = "0-0"


@dataclass
class Batch:
    """Events to send together, each with the stream id it brings the client up to.

    Snapshot events come from the database, not the stream: they all carry the snapshot
    position, so a client that resumes from any of them continues right after the snapshot.
    """

    position: str
    entries: list[tuple[str, dict[str, Any]]]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for _, event in self.entries]


async def stream_tail(redis: Redis, chat_id: uuid.UUID) -> str:
    """The id of the newest entry (or 0-0): live reading starts after it."""
    last = await redis.xrevrange(ev.stream_key(chat_id), count=1)
    return decode(last[0][0]) if last else ZERO_ID


async def resumable_from(
    redis: Redis, chat_id: uuid.UUID, last_event_id: str, *, maxlen: int
) -> bool:
    """Whether every entry after ``last_event_id`` is still in the stream (none trimmed).

    Writers trim with ``MAXLEN ~ maxlen``, which never leaves fewer than ``maxlen`` entries,
    so a shorter stream was never trimmed. (Redis 7's ``entries-added`` would say the same,
    but the embedded Redis is 6.2.)
    """
    if not _valid_id(last_event_id):
        return False
    key = ev.stream_key(chat_id)
    pipe = redis.pipeline(transaction=False)
    pipe.xlen(key)
    pipe.xrange(key, count=1)
    length, first = await pipe.execute()
    if length == 0:
        # Nothing published yet (a client asking from 0-0 just waits for the first entry),
        # or the stream expired (anything else gets a fresh snapshot).
        return last_event_id == ZERO_ID
    if length < maxlen:
        return True
    # The client's last entry is still retained, so everything after it is too.
    return _id_tuple(decode(first[0][0])) <= _id_tuple(last_event_id)


def _valid_id(value: str) -> bool:
    ms, sep, seq = value.partition("-")
    return bool(sep) and ms.isdigit() and seq.isdigit()


def _id_tuple(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq)


def _db_snapshot(chat_id: uuid.UUID, after_id: int) -> tuple[str, list, list]:
    with db.session_scope() as session:
        chat = session.get(Chat, chat_id)
        status = str(chat.status) if chat else "waiting"
        messages = [
            message_json(m) for m in chat_queries.messages_after(session, chat_id, after_id)
        ]
        queue = [queued_json(q) for q in chat_rules.queued_messages(session, chat_id)]
        return status, messages, queue


async def snapshot(redis: Redis, chat_id: uuid.UUID, after_id: int) -> Batch:
    """Coder's connect snapshot: status, parts in flight, messages after ``after_id``, queue."""
    tail = await stream_tail(redis, chat_id)
    status, messages, queue = await run_in_threadpool(_db_snapshot, chat_id, after_id)
    events: list[dict[str, Any]] = [ev.status_event(chat_id, status)]
    step_from = await redis.get(ev.step_from_key(chat_id))
    if step_from and tail != ZERO_ID:
        entries = await redis.xrange(ev.stream_key(chat_id), min=decode(step_from), max=tail)
        events.extend(e for _, e in parse_entries(entries) if e["type"] == "message_part")
    events.extend(ev.message_event(chat_id, m) for m in messages)
    if queue:
        events.append(ev.queue_event(chat_id, queue))
    return Batch(position=tail, entries=[(tail, e) for e in events])


async def follow(
    redis: Redis,
    chat_id: uuid.UUID,
    position: str,
    *,
    block_ms: int,
    max_batch: int = 256,
    seen_message_id: int = 0,
    on_idle: Callable[[], None] | None = None,
) -> AsyncIterator[Batch]:
    """Live events after ``position``; an empty batch every ``block_ms`` of silence.

    Read through the process's :class:`agentfarm.chat_stream.reader.StreamHub`: one Redis reader per
    chat, whatever the number of clients here."""
    hub = hub_for(redis)
    sub = await hub.subscribe(ev.stream_key(chat_id), position)
    delivered = position
    try:
        while True:
            if sub.error is not None and sub.queue.empty():
                raise sub.error
            try:
                entries = await asyncio.wait_for(sub.queue.get(), block_ms / 1000)
            except TimeoutError:
                if on_idle is not None:
                    on_idle()
                yield Batch(position=delivered, entries=[])
                continue
            if not entries:  # the wake-up of a failed reader (StreamHub)
                if sub.error is not None:
                    raise sub.error
                continue
            for start in range(0, len(entries), max_batch):
                chunk = entries[start : start + max_batch]
                delivered = chunk[-1][0]
                # Only the snapshot's messages are skipped: publishes of different writers
                # can arrive out of id order, so a running maximum would drop real messages.
                fresh = [
                    (entry_id, event)
                    for entry_id, event in chunk
                    if not (
                        event["type"] == "message"
                        and (event["message"].get("id") or 0) <= seen_message_id
                    )
                ]
                yield Batch(position=delivered, entries=fresh)
    finally:
        hub.unsubscribe(sub)


async def replay_after(
    redis: Redis, chat_id: uuid.UUID, last_event_id: str
) -> list[tuple[str, dict[str, Any]]]:
    """Entries strictly after ``last_event_id`` that are already in the stream."""
    entries = await redis.xrange(ev.stream_key(chat_id), min=f"({last_event_id}", max="+")
    return parse_entries(entries)


UNSTREAMED_SCAN = 500  # stream entries looked at, before the client's last one


def _messages_after(chat_id: uuid.UUID, after_id: int) -> list[dict[str, Any]]:
    with db.session_scope() as session:
        return [message_json(m) for m in chat_queries.messages_after(session, chat_id, after_id)]


async def unstreamed_messages(
    redis: Redis,
    chat_id: uuid.UUID,
    last_event_id: str,
    replayed: list[tuple[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """``message`` events a resuming client would otherwise never get: messages committed
    while Redis was unreachable, whose events were never written
    (``agentfarm.chat_stream.writer.ChatEventWriter.publish``).

    The floor is the newest message the stream carried up to the client's last entry (else
    just below the first one it carries after it: the create answer, not the stream, carries
    a chat's first message); every visible message above it that the replayed entries do
    not carry is read from the database, oldest first.
    """
    before = parse_entries(
        await redis.xrevrange(
            ev.stream_key(chat_id), max=last_event_id, min="-", count=UNSTREAMED_SCAN
        )
    )
    earlier = max_message_id([e for _, e in before])
    replayed_ids = {e["message"].get("id") for _, e in replayed if e["type"] == "message"} - {None}
    if earlier:
        floor = earlier
    elif replayed_ids:
        floor = min(replayed_ids) - 1
    else:
        return []  # no message in sight to place the client by
    rows = await run_in_threadpool(_messages_after, chat_id, floor)
    return [ev.message_event(chat_id, m) for m in rows if m["id"] not in replayed_ids]


def max_message_id(events: list[dict[str, Any]]) -> int:
    ids = [e["message"].get("id") or 0 for e in events if e["type"] == "message"]
    return max(ids, default=0)


async def serve_read_only(websocket: Any, pump: Any, transport: str) -> None:
    """Run ``pump`` (a coroutine sending frames) until it ends or the client goes away.

    The socket is one-way: any frame from the client closes it with 1003. Counts the stream in
    ``agentfarm_open_streams`` while it is open. An unexpected relay failure is logged and the
    socket closed with 1011.
    """
    import asyncio
    import logging

    from starlette.websockets import WebSocketDisconnect

    metrics.OPEN_STREAMS.labels(transport).inc()
    pump_task = asyncio.create_task(pump)
    reader = asyncio.create_task(websocket.receive())
    try:
        done, _ = await asyncio.wait({pump_task, reader}, return_when=asyncio.FIRST_COMPLETED)
        if reader in done and reader.result().get("type") == "websocket.receive":
            await websocket.close(code=1003, reason="this stream is read-only")
        if pump_task in done and pump_task.exception() is not None:
            raise pump_task.exception()  # type: ignore[misc]
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass
    except Exception:
        logging.getLogger("agentfarm.stream").exception("%s relay failed", transport)
        try:
            await websocket.close(code=1011)
        except Exception:  # noqa: BLE001 - the socket may already be gone
            pass
    finally:
        for task in (pump_task, reader):
            task.cancel()
        await asyncio.gather(pump_task, reader, return_exceptions=True)
        metrics.OPEN_STREAMS.labels(transport).dec()
