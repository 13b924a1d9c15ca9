"""The chat stream writer against a real Redis: how often it refreshes a stream's expiry."""

from __future__ import annotations

import time

import redis as redis_lib

from agentfarm.chat_stream import events as ev
from agentfarm.chat_stream.writer import ChatEventWriter


def test_the_expiry_is_set_once_per_half_ttl_and_outlives_the_last_event_by_a_ttl(
    scratch_redis: redis_lib.Redis,
) -> None:
    writer = ChatEventWriter(scratch_redis, ttl_s=2)
    key = ev.stream_key("c1")
    assert len(writer.publish("c1", ev.status_event("c1", "pending"))) == 1
    assert 2_000 < scratch_redis.pttl(key) <= 3_000  # 1.5 TTL: a TTL after any later event
    scratch_redis.persist(key)  # so a second EXPIRE would show
    writer.publish("c1", ev.status_event("c1", "running"))
    assert scratch_redis.ttl(key) == -1  # within half a TTL: no EXPIRE sent
    assert scratch_redis.xlen(key) == 2
    time.sleep(1.1)  # past half the TTL (1 s)
    writer.publish("c1", ev.status_event("c1", "waiting"))
    assert 2_000 < scratch_redis.pttl(key) <= 3_000
    other = ev.stream_key("c2")  # each stream has its own clock
    writer.publish("c2", ev.status_event("c2", "pending"))
    assert scratch_redis.pttl(other) > 2_000
