"""Periodic jobs, declared next to the actor they trigger; the scheduler reads this table.

    @periodic(every="recover_stale_every_s")
    @dramatiq.actor(actor_name="chat.recover_stale", queue_name=Queue.SCHEDULED, max_retries=0)
    def chat_recover_stale() -> None: ...

``every`` names the :class:`~agentfarm.settings.Settings` field holding the interval in
seconds (``AGENTFARM_<FIELD>``); 0 or less turns the job off. The scheduler only sends the
actor's message (no arguments); the actor does the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dramatiq

from agentfarm.settings import Settings

A = TypeVar("A", bound=dramatiq.Actor[Any, Any])


@dataclass(frozen=True)
class PeriodicJob:
    actor: dramatiq.Actor[Any, Any]
    every: str

    @property
    def id(self) -> str:
        return str(self.actor.actor_name)

    def every_s(self, settings: Settings) -> float:
        return float(getattr(settings, self.every))

    def send(self) -> dramatiq.Message[Any]:
        return self.actor.send()


_JOBS: dict[str, PeriodicJob] = {}


def periodic(*, every: str) -> Callable[[A], A]:
    """Register the decorated actor as a periodic job sent every ``settings.<every>`` seconds."""
    if every not in Settings.model_fields:
        raise ValueError(f"unknown setting {every!r}")

    def register(actor: A) -> A:
        job = PeriodicJob(actor, every)
        _JOBS[job.id] = job
        return actor

    return register


def periodic_jobs() -> list[PeriodicJob]:
    """Every registered job, by id (only those of the actor modules imported so far)."""
    return [_JOBS[key] for key in sorted(_JOBS)]
