"""Every background task by name: its queue, its schedule, and how to send it.

Senders (the API, the scheduler, other actors) build messages from this table and never
import an actor module, so imports point one way: ``api_shim``/``scheduler``/``workers`` ->
``agentfarm.tasks``. The worker side registers each actor under the same spec with
:func:`actor`; ``tests/unit/test_task_catalog.py`` checks both sides agree.

    defer(session, CHAT_STEP.message(str(chat.id), chat.generation, 1))   # after commit
    TITLE_JOB.send(str(chat_id), job_id, persist)                        # now

``every`` names the :class:`~agentfarm.settings.Settings` field holding a periodic task's
interval in seconds (``AGENTFARM_<FIELD>``); 0 or less turns it off. The scheduler only sends
the message (no arguments); the actor does the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq

from agentfarm.settings import Settings
from agentfarm.tasks.broker import current_broker
from agentfarm.tasks.queues import Queue


@dataclass(frozen=True)
class Task:
    name: str
    queue: str
    every: str | None = None

    def __post_init__(self) -> None:
        if self.every is not None and self.every not in Settings.model_fields:
            raise ValueError(f"unknown setting {self.every!r}")

    def message(self, *args: Any, queue: str | None = None) -> dramatiq.Message[Any]:
        """A message for this task (``queue`` overrides the default, e.g. a host queue)."""
        return dramatiq.Message(
            queue_name=queue or self.queue,
            actor_name=self.name,
            args=args,
            kwargs={},
            options={},
        )

    def send(
        self, *args: Any, queue: str | None = None, delay_ms: int | None = None
    ) -> dramatiq.Message[Any]:
        """Enqueue now (not tied to a transaction; see ``outbox.defer`` for that)."""
        return current_broker().enqueue(self.message(*args, queue=queue), delay=delay_ms)

    def every_s(self, settings: Settings) -> float:
        return float(getattr(settings, self.every)) if self.every else 0.0


# chat turns
CHAT_STEP = Task("chat.step", Queue.CHAT)
GENERATE_TITLE = Task("chat.generate_title", Queue.DEFAULT)
TITLE_JOB = Task("chat.title_job", Queue.DEFAULT)
RECOVER_STALE = Task("chat.recover_stale", Queue.SCHEDULED, every="recover_stale_every_s")
# tools and subagents
TOOL_RUN = Task("tool.run", Queue.DEFAULT)  # workspace tools go to workspace.<host>
FINISH_STEP = Task("tool.finish_step", Queue.CHAT)  # the fan-in, when run apart
SUBAGENT_SPAWN = Task("subagent.spawn", Queue.DEFAULT)
# workspaces (provision, stop and context run on workspace.<host>)
WORKSPACE_PROVISION = Task("workspace.provision", Queue.DEFAULT)
WORKSPACE_STOP = Task("workspace.stop", Queue.DEFAULT)
WORKSPACE_CONTEXT = Task("workspace.context", Queue.DEFAULT)
WORKSPACE_AUTOSTOP = Task("workspace.autostop", Queue.SCHEDULED, every="workspace_autostop_every_s")
# integrations and housekeeping
PUSH_SEND = Task("push.send", Queue.DEFAULT)
INSIGHTS_REFRESH = Task("insights.refresh", Queue.SCHEDULED, every="insights_refresh_every_s")
INSIGHTS_INGEST_PR = Task("insights.ingest_pr", Queue.DEFAULT)
RETENTION_PURGE = Task("retention.purge", Queue.SCHEDULED, every="retention_purge_every_s")
USAGE_ROLLUP = Task("usage.rollup", Queue.SCHEDULED, every="usage_rollup_every_s")

ALL_TASKS: tuple[Task, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Task))


def periodic_tasks() -> list[Task]:
    """The tasks the scheduler sends, by name."""
    return sorted((t for t in ALL_TASKS if t.every), key=lambda t: t.name)


def actor(task: Task, **options: Any) -> Callable[[Callable[..., Any]], dramatiq.Actor[Any, Any]]:
    """Register the decorated function as ``task``'s actor on the project's broker.

    ``options`` are Dramatiq's per-actor options (``max_retries``, ``time_limit`` ...): every
    actor states its own retry policy and time limit.
    """
    return dramatiq.actor(
        actor_name=task.name, queue_name=task.queue, broker=current_broker(), **options
    )
