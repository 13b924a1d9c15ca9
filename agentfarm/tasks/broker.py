"""The one place the Dramatiq broker and its middleware are built.

The broker object is created on first use (its Redis connections are lazy), so importing an
actor module connects to nothing. Middleware, in order:

1. AgeLimit, TimeLimit, ShutdownNotifications, Callbacks, Pipelines, Retries — Dramatiq's
   defaults; every actor states its own retry policy and time limit.
2. ``CurrentMessage`` and ``LogContext`` — every log line of a message's work carries its
   message id and actor (``agentfarm.logs``).
3. ``ActorMetrics`` — Prometheus counters and durations by queue, actor and outcome, and one
   structured log line per failed message with its id and actor.

Crash recovery is tuned for seconds, not Dramatiq's minutes: a dead worker's unacked
messages are requeued by maintenance once its heartbeat is ``heartbeat_timeout`` old, and
maintenance runs on 1 % of commands instead of 0.1 %.

Worker processes add ``workers.boot.WorkerBoot`` (their runtime) in ``workers/main.py``: this
module sits below every process and imports none of them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from agentfarm import logs, metrics
from agentfarm.settings import get_settings
from agentfarm.tasks.wakeable import WakeableRedisBroker

log = logging.getLogger("agentfarm.broker")
_broker: WakeableRedisBroker | None = None
_lock = threading.Lock()


class LogContext(Middleware):
    """Every log line of a message's work carries its ``message_id`` and ``actor``."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        logs.clear()
        logs.bind(message_id=message.message_id, actor=message.actor_name)

    def after_process_message(self, broker: dramatiq.Broker, message: Any, **_: Any) -> None:
        logs.clear()

    after_skip_message = after_process_message


class ActorMetrics(Middleware):
    """Messages processed, failed and retried, and their duration, per queue and actor."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = self._started.pop(message.message_id, None)
        outcome = "failed" if exception is not None else "ok"
        labels = (message.queue_name, message.actor_name)
        metrics.ACTOR_MESSAGES.labels(*labels, outcome).inc()
        if started is not None:
            metrics.ACTOR_DURATION.labels(*labels).observe(time.perf_counter() - started)
        if exception is not None:
            log.warning(
                "message failed: %s",
                exception,
                extra={
                    "message_id": message.message_id,
                    "actor": message.actor_name,
                    "retries": message.options.get("retries", 0),
                },
            )

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._started.pop(message.message_id, None)

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        metrics.ACTOR_MESSAGES.labels(message.queue_name, message.actor_name, "dead").inc()

    def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        metrics.ACTOR_ENQUEUED.labels(message.queue_name, message.actor_name).inc()


def build_broker(redis_url: str, *, idle_wait_ms: int = 1000) -> WakeableRedisBroker:
    """A broker with the project's middleware, talking to ``redis_url``."""
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(),
        CurrentMessage(),
        LogContext(),
        ActorMetrics(),
    ]
    return WakeableRedisBroker(
        url=redis_url,
        middleware=middleware,
        namespace=get_settings().broker_namespace,
        maintenance_chance=10_000,
        heartbeat_timeout=20_000,
        idle_wait_ms=idle_wait_ms,
    )


def current_broker() -> dramatiq.Broker:
    """The broker messages go to: the one this process set (a test's in-process broker, or
    the project's once built), else the project's."""
    if dramatiq.broker.global_broker is not None:
        return dramatiq.get_broker()
    return get_broker()


def get_broker() -> WakeableRedisBroker:
    """The process's broker, built from settings on first use and made Dramatiq's global."""
    global _broker
    with _lock:
        if _broker is None:
            settings = get_settings()
            if not settings.redis_url:
                raise RuntimeError("AGENTFARM_REDIS_URL is not set")
            _broker = build_broker(settings.redis_url, idle_wait_ms=settings.broker_idle_wait_ms)
            dramatiq.set_broker(_broker)
        return _broker
