"""A stock Dramatiq worker module with one no-op actor, for bench/turns.py's baseline:

    BENCH_REDIS_URL=redis://… python -m dramatiq bench.noop_actors -p 1 -t 8

The actor only counts itself (one INCR), so the figure is Dramatiq's own per-message cost on
this Redis: fetch, dispatch to a thread, middleware, ack.
"""

from __future__ import annotations

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ["BENCH_REDIS_URL"]
NAMESPACE = "bench-noop"
COUNTER = "bench-noop:done"

broker = RedisBroker(url=URL, namespace=NAMESPACE)
dramatiq.set_broker(broker)
_counter = redis.Redis.from_url(URL)


@dramatiq.actor(queue_name="noop", max_retries=0)
def noop() -> None:
    _counter.incr(COUNTER)
