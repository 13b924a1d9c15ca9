"""What the farm is doing right now, read from Redis and Postgres: queue depth and the age of
the oldest waiting message per queue (the autoscaling signal), delayed and dead-lettered
messages, live workers and workspace hosts, chats by status and the runs in flight.

Served two ways by the API: as Prometheus gauges (``FarmCollector``, computed at scrape time
and cached briefly, so any number of scrapers cost one read every few seconds) and as the
admin's ``GET /api/experimental/farm/status``. Only the API exposes these, so farm-wide
figures are never counted once per worker.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis

from agentfarm.tasks import hosts
from agentfarm.tasks.queues import ALL_QUEUES
from models import db
from models.enums import ChatStatus


@dataclass
class QueueState:
    queue: str
    depth: int  # messages waiting to be picked up
    oldest_age_s: float  # age of the oldest waiting message (0 when empty)
    delayed: int  # messages held for a later ETA (retries, wait_agent re-checks)
    dead: int  # dead-lettered messages kept for inspection


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def queue_names(redis: Redis) -> list[str]:
    """The fixed queues and one ``workspace.<host>`` per host that ever registered."""
    registered = [_text(h) for h in redis.zrange(hosts.HOSTS_KEY, 0, -1)]
    return list(ALL_QUEUES) + sorted(hosts.host_queue(h) for h in registered)


def queue_states(redis: Redis, namespace: str, now: float | None = None) -> list[QueueState]:
    """Depth, oldest-message age, delayed and dead counts of every queue (two round trips)."""
    now = time.time() if now is None else now
    names = queue_names(redis)
    pipe = redis.pipeline(transaction=False)
    for name in names:
        key = f"{namespace}:{name}"
        pipe.llen(key)
        pipe.lindex(key, 0)  # Dramatiq RPUSHes and fetches from the head: the oldest
        pipe.llen(f"{key}.DQ")
        pipe.zcard(f"{key}.XQ")
    raw = pipe.execute()
    heads = [raw[i * 4 + 1] for i in range(len(names))]
    pipe = redis.pipeline(transaction=False)
    for name, head in zip(names, heads, strict=True):
        pipe.hget(f"{namespace}:{name}.msgs", head) if head else pipe.echo(b"")
    bodies = pipe.execute()
    out = []
    for i, name in enumerate(names):
        depth, _, delayed, dead = raw[i * 4 : i * 4 + 4]
        out.append(QueueState(name, int(depth), _age(bodies[i], now), int(delayed), int(dead)))
    return out


def _age(body: bytes | None, now: float) -> float:
    if not body:
        return 0.0
    try:
        sent_ms = json.loads(body)["message_timestamp"]
    except (ValueError, KeyError, TypeError):
        return 0.0
    return max(0.0, now - float(sent_ms) / 1000)


def chats_by_status() -> dict[str, int]:
    with db.get_engine().connect() as conn:
        rows = conn.execute(sa.text("SELECT status::text, count(*) FROM chats GROUP BY 1"))
        return {status: int(n) for status, n in rows}


def live_members(redis: Redis, key: str, ttl_s: float) -> list[tuple[str, float]]:
    """``(id, last heartbeat)`` of the workers or hosts seen within ``ttl_s``."""
    rows = redis.zrangebyscore(key, time.time() - ttl_s, "+inf", withscores=True)
    return [(_text(member), float(score)) for member, score in rows]  # type: ignore[str-unpack]


def in_flight(limit: int = 200) -> list[dict[str, Any]]:
    """Runs that are pending, running or waiting for a client, oldest first."""
    with db.get_engine().connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, status::text, worker_id, heartbeat_at, started_at, updated_at "
                "FROM chats WHERE status IN ('pending', 'running', 'requires_action') "
                "ORDER BY updated_at LIMIT :limit"
            ),
            {"limit": limit},
        )
        return [
            {
                "chat_id": str(r.id),
                "status": r.status,
                "worker_id": str(r.worker_id) if r.worker_id else None,
                "heartbeat_at": r.heartbeat_at.isoformat() if r.heartbeat_at else None,
                "started_at": r.started_at.isoformat() if r.started_at else None,
            }
            for r in rows
        ]


def status_report(redis: Redis, namespace: str, ttl_s: float) -> dict[str, Any]:
    """The admin summary: workers, hosts, queues, chats by status and the runs in flight."""
    return {
        "workers": [
            {"id": w, "last_heartbeat": s} for w, s in live_members(redis, hosts.WORKERS_KEY, ttl_s)
        ],
        "workspace_hosts": [
            {"name": h, "last_heartbeat": s} for h, s in live_members(redis, hosts.HOSTS_KEY, ttl_s)
        ],
        "queues": [asdict(q) for q in queue_states(redis, namespace)],
        "chats_by_status": chats_by_status(),
        "in_flight": in_flight(),
    }


class FarmCollector(Collector):
    """Farm-wide gauges for the API's ``/metrics``, cached for ``cache_s`` seconds."""

    def __init__(self, redis: Redis, namespace: str, ttl_s: float, cache_s: float = 5.0):
        self.redis, self.namespace, self.ttl_s, self.cache_s = redis, namespace, ttl_s, cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self.cache_s:
                self._cached = (time.monotonic(), self._families())
            yield from self._cached[1]

    def _families(self) -> list[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "agentfarm_queue_depth", "Messages waiting in each queue", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "agentfarm_queue_oldest_message_age_seconds",
            "Age of the oldest waiting message in each queue (0 when empty)",
            labels=["queue"],
        )
        delayed = GaugeMetricFamily(
            "agentfarm_queue_delayed", "Messages held for a later ETA", labels=["queue"]
        )
        dead = GaugeMetricFamily(
            "agentfarm_queue_dead_letters", "Dead-lettered messages", labels=["queue"]
        )
        for q in queue_states(self.redis, self.namespace):
            depth.add_metric([q.queue], q.depth)
            age.add_metric([q.queue], q.oldest_age_s)
            delayed.add_metric([q.queue], q.delayed)
            dead.add_metric([q.queue], q.dead)
        chats = GaugeMetricFamily("agentfarm_chats", "Chats by status", labels=["status"])
        counts = chats_by_status()
        for status in sorted(set(ChatStatus) | set(counts)):  # every status, 0 included
            chats.add_metric([str(status)], counts.get(str(status), 0))
        workers = GaugeMetricFamily(
            "agentfarm_workers_live", "Worker processes that sent a heartbeat recently"
        )
        workers.add_metric([], len(live_members(self.redis, hosts.WORKERS_KEY, self.ttl_s)))
        host_count = GaugeMetricFamily(
            "agentfarm_workspace_hosts_live", "Workspace hosts that sent a heartbeat recently"
        )
        host_count.add_metric([], len(live_members(self.redis, hosts.HOSTS_KEY, self.ttl_s)))
        return [depth, age, delayed, dead, chats, workers, host_count]
