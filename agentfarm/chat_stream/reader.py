"""One Redis reader per chat per API process, fanned out to every local client of that chat.

Before this, every connected client ran its own blocking ``XREAD`` on its chat's stream: N
clients cost N Redis connections and N reads (and N JSON decodes) of every event. The hub
keeps one reader task per chat that has at least one client here; each client has its own
queue and position, so a client that joins behind the reader first catches up with
``XRANGE`` and then joins without a gap or a duplicate, and a reader that fails (Redis gone)
ends its clients' streams with that error, as a per-client ``XREAD`` did — clients resume
with ``Last-Event-ID``. A client too slow to keep up (its queue full) is dropped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from agentfarm.chat_stream.events import Entry, decode, id_tuple, parse_entries

log = logging.getLogger("agentfarm.stream")
READ_BLOCK_MS = 5_000
READ_COUNT = 256
QUEUE_BATCHES = 1_000


@dataclass(eq=False)
class Subscription:
    key: str
    position: str  # the newest entry queued for this client
    queue: asyncio.Queue[list[Entry]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_BATCHES)
    )
    error: BaseException | None = None

    def offer(self, entries: list[Entry]) -> None:
        fresh = [e for e in entries if id_tuple(e[0]) > id_tuple(self.position)]
        if not fresh or self.error is not None:
            return
        try:
            self.queue.put_nowait(fresh)
        except asyncio.QueueFull:
            self.error = RuntimeError("client too slow for its chat stream; reconnect")
            return
        self.position = fresh[-1][0]

    def fail(self, error: BaseException) -> None:
        """End this client's stream with ``error``, waking it if it waits for entries."""
        self.error = error
        with contextlib.suppress(asyncio.QueueFull):  # a full queue is read at once anyway
            self.queue.put_nowait([])


@dataclass(eq=False)
class _Feed:
    key: str
    position: str
    subscribers: set[Subscription] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class StreamHub:
    """The per-process fan-out of chat event streams (see the module docstring)."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self.feeds: dict[str, _Feed] = {}

    async def subscribe(self, key: str, position: str) -> Subscription:
        sub = Subscription(key=key, position=position)
        while True:
            feed = self.feeds.get(key)
            if feed is None:
                feed = _Feed(key=key, position=sub.position, subscribers={sub})
                self.feeds[key] = feed
                feed.task = asyncio.create_task(self._read(feed))
                return sub
            if id_tuple(sub.position) >= id_tuple(feed.position):
                feed.subscribers.add(sub)  # no await since the check: no entry slips by
                return sub
            # Behind the reader: catch up from the stream itself, then look again.
            behind = feed.position
            entries = parse_entries(
                await self.redis.xrange(key, min=f"({sub.position}", max=behind)
            )
            sub.offer(entries)
            if id_tuple(sub.position) < id_tuple(behind):
                sub.position = behind  # entries without an event field, or trimmed

    def unsubscribe(self, sub: Subscription) -> None:
        feed = self.feeds.get(sub.key)
        if feed is None:
            return
        feed.subscribers.discard(sub)
        if not feed.subscribers:
            del self.feeds[sub.key]
            if feed.task is not None:
                feed.task.cancel()

    async def _read(self, feed: _Feed) -> None:
        try:
            while feed.subscribers:
                reply: Any = await self.redis.xread(
                    {feed.key: feed.position}, count=READ_COUNT, block=READ_BLOCK_MS
                )
                if not reply:
                    continue
                raw = reply[0][1]
                feed.position = decode(raw[-1][0])
                entries = parse_entries(raw)
                for sub in list(feed.subscribers):
                    sub.offer(entries)
                    if sub.error is not None:
                        feed.subscribers.discard(sub)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every client of this chat
            log.warning("chat stream reader failed: %s", exc, extra={"key": feed.key})
            if self.feeds.get(feed.key) is feed:
                del self.feeds[feed.key]
            for sub in feed.subscribers:
                sub.fail(exc)


_hubs: weakref.WeakKeyDictionary[Redis, StreamHub] = weakref.WeakKeyDictionary()


def hub_for(redis: Redis) -> StreamHub:
    """The hub of this Redis client (one per API process)."""
    hub = _hubs.get(redis)
    if hub is None:
        hub = _hubs[redis] = StreamHub(redis)
    return hub
