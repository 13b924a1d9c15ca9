"""``WorkerBoot``: per-process worker resources live exactly as long as the worker process."""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.middleware import Middleware

from agentfarm import metrics
from agentfarm.settings import get_settings
from workers import runtime
from workers.turn import llm

log = logging.getLogger("agentfarm.broker")


class WorkerBoot(Middleware):
    """Builds the runtime (engine, Redis, leases) after the process boots; closes it on stop."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        runtime.boot()
        settings = get_settings()
        host, port = settings.worker_metrics_host, settings.worker_metrics_port
        if metrics.serve_worker_metrics(host, port):
            log.info("worker metrics on %s:%s", host, port)
        # Pay litellm's import and first-call lazy imports (~5 s) before taking messages,
        # not inside the first chat step.
        llm.warm_up()

    def before_process_stop(self, broker: dramatiq.Broker) -> None:
        runtime.shutdown()
