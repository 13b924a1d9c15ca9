"""Chat actors: ``chat.step``, ``chat.generate_title``, ``chat.title_job`` and
``chat.recover_stale``.

Each actor is a thin shell around a plain function; the functions re-read the database and
return early when the message no longer matches the state (a message is only a wake-up).
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from agentfarm import logs, metrics
from agentfarm.tasks import catalog
from agentfarm.tasks.title_jobs import TITLE_JOB_TTL_S, title_job_key, title_lock_key
from workers.runtime import get_runtime
from workers.turn.llm import LLMError
from workers.turn.recovery import recover_stale
from workers.turn.run import run_step
from workers.turn.titles import generate_title, save_title, title_from_transcript

log = logging.getLogger("agentfarm.actors.chat")


@catalog.actor(
    catalog.CHAT_STEP,
    # A crash inside the step (database or Redis outage) is retried a few times; the chat is
    # protected by its generation and lease, and the stale sweeper repairs whatever is left.
    max_retries=5,
    min_backoff=500,
    max_backoff=30_000,
    # One model call; the stream has its own idle timeout, this only bounds a stuck thread.
    time_limit=30 * 60 * 1000,
)
def chat_step(chat_id: str, generation: int, attempt: int = 1) -> None:
    """Run one LLM step of a chat; a retryable model error re-sends itself with a delay."""
    logs.bind(chat_id=chat_id, generation=generation, attempt=attempt)
    started = time.perf_counter()
    result = run_step(
        get_runtime(), chat_id=uuid.UUID(chat_id), generation=generation, attempt=attempt
    )
    metrics.STEP_OUTCOMES.labels(result.model or "unknown", result.outcome).inc()
    metrics.STEP_DURATION.labels(result.model or "unknown").observe(time.perf_counter() - started)
    log.info("chat step %s", result.outcome, extra={"detail": result.detail})
    if result.outcome == "retry":
        catalog.CHAT_STEP.send(chat_id, generation, attempt + 1, delay_ms=result.retry_delay_ms)


@catalog.actor(
    catalog.GENERATE_TITLE,
    max_retries=2,
    min_backoff=1000,
    max_backoff=5000,
    time_limit=2 * 60 * 1000,
)
def chat_generate_title(chat_id: str) -> None:
    """Replace the fallback title of a new chat with a model-written one."""
    logs.bind(chat_id=chat_id)
    outcome = generate_title(get_runtime(), uuid.UUID(chat_id))
    log.info("title %s", outcome)


@catalog.actor(
    catalog.RECOVER_STALE,
    max_retries=0,  # the scheduler sends it again next interval
    time_limit=60 * 1000,
)
def chat_recover_stale() -> None:
    """Return chats whose worker vanished to pending and re-send lost wake-ups."""
    counts = recover_stale(get_runtime())
    if any(counts.values()):
        log.warning("stale chats recovered", extra=counts)


@catalog.actor(
    catalog.TITLE_JOB,
    max_retries=0,  # the API request waiting for it gives up after its own timeout
    time_limit=2 * 60 * 1000,
)
def chat_title_job(chat_id: str, job_id: str, persist: bool) -> None:
    """Regenerate (persist) or propose a title; the result is handed back through Redis."""
    logs.bind(chat_id=chat_id)
    rt = get_runtime()
    try:
        title = title_from_transcript(rt, uuid.UUID(chat_id))
        if persist:
            save_title(rt, uuid.UUID(chat_id), title)
        outcome: dict[str, str] = {"title": title}
    except LLMError as exc:
        outcome = {"error": exc.message}
    finally:
        if persist:
            rt.redis.delete(title_lock_key(chat_id))
    rt.redis.set(title_job_key(job_id), json.dumps(outcome), ex=TITLE_JOB_TTL_S)
    log.info("title job %s", "ok" if "title" in outcome else "failed")
