"""Per-process worker resources, built at boot and closed at shutdown.

A worker process holds: its worker id (the lease owner written to ``chats.worker_id``), the
database engine, a Redis client, the chat event writer, the secret box, and the lease
registry. The registry keeps one heartbeat thread for every chat this process is running (one
UPDATE per interval for all of them, like Coder's chatd) and one Redis subscriber that turns
an interrupt published by any shim replica into a stop signal for the running step.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from redis import Redis

from agentfarm import metrics
from agentfarm.chat_stream.events import CONTROL_CHANNEL
from agentfarm.chat_stream.writer import ChatEventWriter
from agentfarm.settings import Settings, get_settings, workspace_host_list
from agentfarm.tasks import hosts as hosts_registry
from models import db
from models.crypto import SecretBox

log = logging.getLogger("agentfarm.worker")


@dataclass
class Lease:
    """A running step's hold on a chat: stop when interrupted or when the lease is lost."""

    chat_id: uuid.UUID
    stop: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    closer: Callable[[], None] | None = None

    def cancel(self, reason: str) -> None:
        if self.stop.is_set():
            return
        self.reason = reason
        self.stop.set()
        closer = self.closer
        if closer is not None:
            closer()


class LeaseRegistry:
    """Chats this process is running; heartbeats them and relays interrupts."""

    def __init__(self, worker_id: uuid.UUID, redis: Redis, interval_s: float, hosts: list[str]):
        self.worker_id = worker_id
        self.redis = redis
        self.interval_s = interval_s
        self.hosts = hosts
        self._leases: dict[uuid.UUID, Lease] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target, name in ((self._heartbeat_loop, "heartbeat"), (self._listen, "interrupts")):
            thread = threading.Thread(target=target, name=f"agentfarm-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._closed.set()
        try:
            hosts_registry.forget(self.redis, self.worker_id)
        except Exception:
            log.warning("could not deregister worker", exc_info=True)

    def acquire(self, chat_id: uuid.UUID) -> Lease:
        lease = Lease(chat_id)
        with self._lock:
            self._leases[chat_id] = lease
        return lease

    def release(self, lease: Lease) -> None:
        with self._lock:
            if self._leases.get(lease.chat_id) is lease:
                del self._leases[lease.chat_id]

    def _heartbeat_loop(self) -> None:
        while True:
            try:
                hosts_registry.beat(self.redis, self.worker_id, self.hosts)
                self.beat()
                metrics.WORKER_HEARTBEAT.set(time.time())
            except Exception:
                log.exception("heartbeat failed")
            if self._closed.wait(self.interval_s):
                return

    def beat(self) -> None:
        """Refresh heartbeat_at of every held chat; cancel the ones whose lease is gone."""
        with self._lock:
            held = list(self._leases.values())
        if not held:
            return
        ids = [lease.chat_id for lease in held]
        with db.get_engine().begin() as conn:
            alive = set(
                conn.execute(
                    sa.text(
                        "UPDATE chats SET heartbeat_at = now() WHERE id = ANY(:ids) "
                        "AND worker_id = :w AND status = 'running' RETURNING id"
                    ),
                    {"ids": ids, "w": self.worker_id},
                ).scalars()
            )
            lost = [i for i in ids if i not in alive]
            # An interrupt sets the chat to waiting; if the beat sees that before the control
            # message arrives, the step must still be stopped as interrupted (its partial
            # output is kept and a requested promotion happens), not abandoned.
            stopped = set(
                conn.execute(
                    sa.text("SELECT id FROM chats WHERE id = ANY(:ids) AND status = 'waiting'"),
                    {"ids": lost},
                ).scalars()
                if lost
                else []
            )
        for lease in held:
            if lease.chat_id in stopped:
                lease.cancel("interrupted")
            elif lease.chat_id not in alive:
                lease.cancel("lease lost")

    def _listen(self) -> None:
        while not self._closed.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CONTROL_CHANNEL)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_control(message["data"])
            except Exception:
                log.warning("interrupt listener reconnecting", exc_info=True)
                self._closed.wait(1.0)
            finally:
                pubsub.close()

    def _on_control(self, data: bytes | str) -> None:
        try:
            chat_id = uuid.UUID(json.loads(data)["chat_id"])
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            lease = self._leases.get(chat_id)
        if lease is not None:
            lease.cancel("interrupted")


@dataclass
class WorkerRuntime:
    worker_id: uuid.UUID
    settings: Settings
    redis: Redis
    events: ChatEventWriter
    secrets: SecretBox
    leases: LeaseRegistry


_runtime: WorkerRuntime | None = None
_boot_lock = threading.Lock()


def boot(settings: Settings | None = None) -> WorkerRuntime:
    """Build this process's resources once (idempotent)."""
    global _runtime
    with _boot_lock:
        if _runtime is not None:
            return _runtime
        settings = settings or get_settings()
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError("AGENTFARM_DATABASE_URL and AGENTFARM_REDIS_URL must be set")
        db.init_engine(settings.database_url)
        redis = Redis.from_url(settings.redis_url, health_check_interval=30)
        worker_id = uuid.uuid4()
        leases = LeaseRegistry(
            worker_id, redis, settings.heartbeat_interval_s, workspace_host_list(settings)
        )
        leases.start()
        _runtime = WorkerRuntime(
            worker_id=worker_id,
            settings=settings,
            redis=redis,
            events=ChatEventWriter(
                redis, maxlen=settings.stream_maxlen, ttl_s=settings.stream_ttl_s
            ),
            secrets=SecretBox(settings.encryption_key_list),
            leases=leases,
        )
        log.info("worker runtime ready", extra={"worker_id": str(worker_id)})
        return _runtime


def get_runtime() -> WorkerRuntime:
    """The booted runtime (boots on first use, e.g. when an actor runs in-process)."""
    return _runtime or boot()


def shutdown() -> None:
    """Stop background threads and close connections."""
    global _runtime
    with _boot_lock:
        if _runtime is None:
            return
        _runtime.leases.close()
        _runtime.redis.close()
        db.dispose_engine()
        _runtime = None
