"""Prometheus metrics shared by every process (multiprocess mode when the launcher sets
``PROMETHEUS_MULTIPROC_DIR``). Labels: queue, actor, outcome, route, method, status, model,
kind, table, job only — never a chat or user id.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

ACTOR_ENQUEUED = Counter(
    "agentfarm_messages_enqueued_total", "Queue messages sent", ["queue", "actor"]
)
ACTOR_MESSAGES = Counter(
    "agentfarm_messages_processed_total",
    "Queue messages processed, by outcome (ok, failed, dead)",
    ["queue", "actor", "outcome"],
)
ACTOR_DURATION = Histogram(
    "agentfarm_message_duration_seconds",
    "Time spent processing one queue message",
    ["queue", "actor"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
STEP_OUTCOMES = Counter("agentfarm_chat_steps_total", "Chat steps by outcome", ["model", "outcome"])
LLM_RETRIES = Counter(
    "agentfarm_llm_retries_total", "Retried model calls by error kind", ["model", "kind"]
)
LLM_TOKENS = Counter(
    "agentfarm_llm_tokens_total", "Tokens used, by direction", ["model", "direction"]
)
LLM_COST = Counter("agentfarm_llm_cost_micros_total", "Model cost in micro-dollars", ["model"])
COMPACTIONS = Counter(
    "agentfarm_compactions_total",
    "Conversation compactions by status (compacted, failed, abandoned)",
    ["model", "status"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "agentfarm_llm_time_to_first_token_seconds",
    "Time from request to the first streamed chunk",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TOOL_CALLS = Counter("agentfarm_tool_calls_total", "Tool calls by outcome", ["tool", "outcome"])
TOOL_DURATION = Histogram(
    "agentfarm_tool_duration_seconds",
    "Time to run one tool call",
    ["tool"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
HTTP_REQUESTS = Counter(
    "agentfarm_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "agentfarm_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PURGED_ROWS = Counter(
    "agentfarm_purged_rows_total", "Rows deleted by the retention purge, by table", ["table"]
)
ROLLUP_ROWS = Counter(
    "agentfarm_rollup_rows_total", "Messages added to the cost rollups by usage.rollup"
)
PR_REFRESHES = Counter(
    "agentfarm_pr_refreshes_total",
    "PR insight refreshes by outcome (stored, no_pull, rate_limited, token, no_provider, error)",
    ["outcome"],
)
PUSH_NOTIFICATIONS = Counter(
    "agentfarm_push_notifications_total",
    "Web push deliveries by outcome (sent, gone, failed, disabled)",
    ["outcome"],
)
# The scheduler's own gauges. Across processes: the number of leaders (livesum) and the
# newest success of each job (max), wherever it ran.
SCHEDULER_LEADER = Gauge(
    "agentfarm_scheduler_leader",
    "1 while this scheduler holds the leader lock and fires the jobs, else 0",
    multiprocess_mode="livesum",
)
SCHEDULER_LAST_SUCCESS = Gauge(
    "agentfarm_scheduler_last_success_timestamp_seconds",
    "Unix time of the last successful send of each periodic job",
    ["job"],
    multiprocess_mode="max",
)
OPEN_STREAMS = Gauge(
    "agentfarm_open_streams", "Open chat streams", ["transport"], multiprocess_mode="livesum"
)


STEP_DURATION = Histogram(
    "agentfarm_chat_step_duration_seconds",
    "Wall time of one chat step (take, model stream, persist), by model",
    ["model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
EVENTS_UNPUBLISHED = Counter(
    "agentfarm_chat_events_unpublished_total",
    "Chat events of committed changes that could not be written to Redis (an outage)",
)
WAKEUPS_UNSENT = Counter(
    "agentfarm_messages_unsent_total",
    "Queue messages of committed transactions that could not be sent (an outage; "
    "chat.recover_stale re-sends chat wake-ups)",
    ["actor"],
)
CONFIG_CACHE = Counter(
    "agentfarm_config_cache_lookups_total",
    "Configuration a worker derived per step: answered from its cache (hit) or the database (miss)",
    ["outcome"],
)
WORKER_HEARTBEAT = Gauge(
    "agentfarm_worker_heartbeat_timestamp_seconds",
    "Unix time of the newest worker heartbeat on this host (a stale value: workers are stuck)",
    multiprocess_mode="max",
)


def registry(*collectors: Collector) -> CollectorRegistry:
    """Every process's metrics in multiprocess mode, else this one's, plus ``collectors``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        out = CollectorRegistry()
        multiprocess.MultiProcessCollector(out)
    elif collectors:
        from prometheus_client import REGISTRY

        out = CollectorRegistry()
        out.register(_Wrapped(REGISTRY))
    else:
        from prometheus_client import REGISTRY

        return REGISTRY
    for collector in collectors:
        out.register(collector)
    return out


class _Wrapped(Collector):
    """A registry seen as one collector (to add farm-wide gauges to a process's own)."""

    def __init__(self, inner: CollectorRegistry):
        self.inner = inner

    def collect(self):
        return self.inner.collect()


def render(*collectors: Collector) -> bytes:
    """The exposition text (see :func:`registry`)."""
    return generate_latest(registry(*collectors))


def serve_worker_metrics(host: str, port: int) -> bool:
    """Serve this host's worker metrics on ``host:port`` (one exposition port per worker host:
    every worker process tries, the first to bind serves all of them in multiprocess mode).
    Returns whether this process serves."""
    if port <= 0:
        return False
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host, registry=registry())
    except OSError:
        return False
    return True
