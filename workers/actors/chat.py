"""Chat actors: ``chat.step``, ``chat.generate_title`` and ``chat.recover_stale``.

Each actor is a thin shell around a plain function; the functions re-read the database and
return early when the message no longer matches the state (a message is only a wake-up).
"""

from __future__ import annotations

import logging
import time
import uuid

import dramatiq
from dramatiq.middleware import CurrentMessage

from agentfarm.tasks.broker import get_broker
from agentfarm.tasks.periodic import periodic
from agentfarm.tasks.queues import Queue
from workers.runtime import get_runtime

log = logging.getLogger("agentfarm.actors.chat")
get_broker()  # the actors below register on the project's broker


@dramatiq.actor(
    actor_name="chat.step",
    queue_name=Queue.CHAT,
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
    from agentfarm import metrics
    from workers.turn.run import run_step

    started = time.perf_counter()
    result = run_step(
        get_runtime(), chat_id=uuid.UUID(chat_id), generation=generation, attempt=attempt
    )
    metrics.STEP_OUTCOMES.labels(result.model or "unknown", result.outcome).inc()
    metrics.STEP_DURATION.labels(result.model or "unknown").observe(time.perf_counter() - started)
    log.info(
        "chat step %s",
        result.outcome,
        extra={
            "chat_id": chat_id,
            "generation": generation,
            "attempt": attempt,
            "message_id": _message_id(),
            "detail": result.detail,
        },
    )
    if result.outcome == "retry":
        chat_step.send_with_options(
            args=(chat_id, generation, attempt + 1), delay=result.retry_delay_ms
        )


@dramatiq.actor(
    actor_name="chat.generate_title",
    queue_name=Queue.DEFAULT,
    max_retries=2,
    min_backoff=1000,
    max_backoff=5000,
    time_limit=2 * 60 * 1000,
)
def chat_generate_title(chat_id: str) -> None:
    """Replace the fallback title of a new chat with a model-written one."""
    from workers.turn.titles import generate_title

    outcome = generate_title(get_runtime(), uuid.UUID(chat_id))
    log.info("title %s", outcome, extra={"chat_id": chat_id, "message_id": _message_id()})


@periodic(every="recover_stale_every_s")
@dramatiq.actor(
    actor_name="chat.recover_stale",
    queue_name=Queue.SCHEDULED,
    max_retries=0,  # the scheduler sends it again next interval
    time_limit=60 * 1000,
)
def chat_recover_stale() -> None:
    """Return chats whose worker vanished to pending and re-send lost wake-ups."""
    from workers.turn.recovery import recover_stale

    counts = recover_stale(get_runtime())
    if any(counts.values()):
        log.warning("stale chats recovered", extra=counts)


def _message_id() -> str | None:
    message = CurrentMessage.get_current_message()
    return message.message_id if message is not None else None


TITLE_JOB_TTL_S = 120


def title_job_key(job_id: str) -> str:
    return f"agentfarm:title-job:{job_id}"


def title_lock_key(chat_id: str) -> str:
    return f"chat:{chat_id}:title-regen"


@dramatiq.actor(
    actor_name="chat.title_job",
    queue_name=Queue.DEFAULT,
    max_retries=0,  # the API request waiting for it gives up after its own timeout
    time_limit=2 * 60 * 1000,
)
def chat_title_job(chat_id: str, job_id: str, persist: bool) -> None:
    """Regenerate (persist) or propose a title; the result is handed back through Redis."""
    import json

    from workers.turn.llm import LLMError
    from workers.turn.titles import save_title, title_from_transcript

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
    log.info("title job %s", "ok" if "title" in outcome else "failed", extra={"chat_id": chat_id})
