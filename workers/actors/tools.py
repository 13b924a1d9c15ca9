"""``tool.run``: execute one tool call of a step, on the host that owns the chat's workspace
(workspace tools) or anywhere (platform tools), then hand the result to the fan-in.
``tool.finish_step``: the fan-in for a step whose last results came from elsewhere (a client
posting dynamic-tool results, or recovery of a lost fan-in).
"""

from __future__ import annotations

import logging
import time
import uuid

from agentfarm import logs, metrics
from agentfarm.tasks import catalog
from workers.runtime import get_runtime
from workers.subagents.specs import NotReady
from workers.tools import calls as tool_calls
from workers.tools.dispatch import execute_call

log = logging.getLogger("agentfarm.actors.tools")


@catalog.actor(
    catalog.TOOL_RUN,  # workspace tools are routed to workspace.<host> per message
    max_retries=3,
    min_backoff=500,
    max_backoff=5000,
    # Tools carry their own timeouts (execute: up to 4 h in the background); this only bounds
    # a stuck thread.
    time_limit=30 * 60 * 1000,
)
def tool_run(call_id: str) -> None:
    """Run one tool call unless it already ran (or a dead worker was running it)."""
    rt = get_runtime()
    row = tool_calls.claim(rt, uuid.UUID(call_id))
    if row is None:
        return
    logs.bind(chat_id=row.chat_id, tool_call_id=row.tool_call_id)
    started = time.perf_counter()
    try:
        result, is_error = execute_call(rt, row)
    except NotReady as later:
        # wait_agent: the subagent is still working; check again later, holding no thread.
        tool_calls.requeue(rt, row.id, later.delay_ms)
        return
    took = time.perf_counter() - started
    stored = tool_calls.complete(rt, row.id, result, is_error)
    metrics.TOOL_CALLS.labels(row.tool_name, "error" if is_error else "ok").inc()
    metrics.TOOL_DURATION.labels(row.tool_name).observe(took)
    log.info(
        "tool %s %s",
        row.tool_name,
        "failed" if is_error else "ok",
        extra={"stored": stored, "ms": int(took * 1000)},
    )


@catalog.actor(catalog.FINISH_STEP, max_retries=5, min_backoff=200, time_limit=60_000)
def tool_finish_step(chat_id: str, step_key: str) -> None:
    """Write a finished step's tool results as messages and continue (or end) the turn."""
    logs.bind(chat_id=chat_id)
    outcome = tool_calls.finish_step(get_runtime(), uuid.UUID(chat_id), step_key)
    log.info("step fan-in %s", outcome)
