"""The writer of chat streams: workers and the API append a chat's events with one round trip,
bounded in length and time, and never fail a committed change over a Redis outage."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from agentfarm import metrics
from agentfarm.chat_stream.events import (
    CONTROL_CHANNEL,
    decode,
    encode,
    owner_channel,
    part_event,
    step_from_key,
    stream_key,
    watch_chat,
)

log = logging.getLogger("agentfarm.events")

# XADD the first part of a step and point step_from at it (KEYS: stream, step_from).
_FIRST_PART = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])
redis.call('SET', KEYS[2], id, 'EX', ARGV[3])
return id
"""


# How many streams' expiry times a writer remembers (a few hundred KB at most).
_EXPIRY_MEMORY = 10_000


class ChatEventWriter:
    """Appends events to chat streams, bounded in length and time."""

    def __init__(self, redis: Redis, *, maxlen: int = 10_000, ttl_s: int = 86_400):
        self.redis = redis
        self.maxlen = maxlen
        self.ttl_s = ttl_s
        self._first_part_script: Any = None
        # stream key -> when this process last set its expiry (monotonic seconds).
        self._expiry_set: dict[str, float] = {}

    def _expiry_due(self, key: str) -> bool:
        """Whether this publish should (re)set the stream's expiry: once per half TTL per
        stream and process, not on every publish (an EXPIRE per publish was 3 of a turn's
        Redis commands). The expiry set is 1.5 TTL, so a stream still lives at least a TTL
        after its last event (at most 1.5). A stream recreated behind our back (a Redis
        restart) gets its TTL again within half a TTL; until then ``maxlen`` bounds it."""
        seen = self._expiry_set.get(key)
        return seen is None or time.monotonic() - seen > self.ttl_s / 2

    def _expiry_was_set(self, key: str) -> None:
        if len(self._expiry_set) >= _EXPIRY_MEMORY:
            self._expiry_set.clear()  # cheap and thread-safe: worst case, extra EXPIREs
        self._expiry_set[key] = time.monotonic()

    def publish(
        self, chat_id: uuid.UUID | str, *events: dict[str, Any], watch: Any = None
    ) -> list[str]:
        """Append events in order (one round trip); the stream's expiry is refreshed once
        per half TTL (:meth:`_expiry_due`).

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
        expire = self._expiry_due(key)
        if expire:
            pipe.expire(key, self.ttl_s + self.ttl_s // 2)
        if watch is not None:
            # The watchers' status_change rides the same round trip, after the stream entries.
            statuses = [e["status"]["status"] for e in events if e["type"] == "status"]
            if statuses and (note := self._watch_note("status_change", watch, statuses[-1])):
                pipe.publish(*note)
        try:
            results = pipe.execute()
        except RedisError as exc:
            metrics.EVENTS_UNPUBLISHED.inc(len(events))
            log.warning("chat events not published: Redis unavailable: %s", exc,
                        extra={"chat_id": str(chat_id), "events": len(events)})  # fmt: skip
            return []
        if expire:
            self._expiry_was_set(key)
        return [decode(r) for r in results[: len(events)]]

    def _watch_note(
        self,
        kind: str,
        chat: Any,
        status: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> tuple[str, str] | None:
        """The owner's channel and the ``{kind, chat, tool_calls?}`` payload; None (logged)
        if ``chat`` cannot be read as a watch partial."""
        try:
            partial = dict(chat) if isinstance(chat, dict) else watch_chat(chat)
            if status is not None:
                partial["status"] = status
            event: dict[str, Any] = {"kind": kind, "chat": partial}
            if tool_calls is not None:
                event["tool_calls"] = tool_calls
            return owner_channel(partial["owner_id"]), encode(event)
        except Exception:
            log.warning("watch event not built", exc_info=True, extra={"kind": kind})
            return None

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
        note = self._watch_note(kind, chat, status, tool_calls)
        if note is None:
            return False
        try:
            self.redis.publish(*note)
        except Exception:
            log.warning("watch publish failed", exc_info=True, extra={"kind": kind})
            return False
        return True

    def publish_part(
        self, chat_id: uuid.UUID | str, role: str, part: dict[str, Any], *, first: bool
    ) -> str:
        """Append one streaming part; the first part of a step marks where the step starts
        (the XADD and that mark are one round trip: a script)."""
        payload = encode(part_event(chat_id, role, part))
        if first:
            if self._first_part_script is None:
                self._first_part_script = self.redis.register_script(_FIRST_PART)
            return decode(
                self._first_part_script(
                    keys=[stream_key(chat_id), step_from_key(chat_id)],
                    args=[self.maxlen, payload, self.ttl_s],
                )
            )
        return decode(
            self.redis.xadd(
                stream_key(chat_id), {"e": payload}, maxlen=self.maxlen, approximate=True
            )
        )

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
