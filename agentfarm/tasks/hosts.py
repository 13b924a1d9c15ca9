"""Live worker processes and workspace hosts, registered in Redis with heartbeats.

``agentfarm:workers`` scores each worker id by its last heartbeat (a tool call held by a
worker that stopped beating was interrupted by a worker failure); ``agentfarm:workspace-hosts``
scores each workspace host, and the provisioner places new workspaces on live hosts only.
"""

from __future__ import annotations

import time
import uuid

from redis import Redis

WORKERS_KEY = "agentfarm:workers"
HOSTS_KEY = "agentfarm:workspace-hosts"


def host_queue(host: str) -> str:
    """The queue a workspace host consumes."""
    return f"workspace.{host}"


def beat(redis: Redis, worker_id: uuid.UUID, hosts: list[str]) -> None:
    """Record that this worker process (and the hosts it serves) is alive."""
    now = time.time()
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(WORKERS_KEY, {str(worker_id): now})
    if hosts:
        pipe.zadd(HOSTS_KEY, {h: now for h in hosts})
    pipe.execute()


def forget(redis: Redis, worker_id: uuid.UUID) -> None:
    """A clean shutdown: this worker holds nothing any more."""
    redis.zrem(WORKERS_KEY, str(worker_id))


def worker_alive(redis: Redis, worker_id: uuid.UUID | str, ttl_s: float) -> bool:
    score = redis.zscore(WORKERS_KEY, str(worker_id))
    return score is not None and score >= time.time() - ttl_s


def live_hosts(redis: Redis, ttl_s: float) -> list[str]:
    """Hosts that sent a heartbeat within ``ttl_s``, sorted by name."""
    names: list[bytes | str] = redis.zrangebyscore(HOSTS_KEY, time.time() - ttl_s, "+inf")  # type: ignore[assignment]
    return sorted(n.decode() if isinstance(n, bytes) else n for n in names)
