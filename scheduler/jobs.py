"""The schedule: which task is sent how often. The scheduler only sends; actors do the work.

Periodic tasks are declared in :mod:`agentfarm.tasks.catalog` (``every=`` names the setting
holding the interval); the scheduler never imports an actor module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentfarm.settings import Settings
from agentfarm.tasks.catalog import periodic_tasks


@dataclass(frozen=True)
class Job:
    id: str
    every_s: float
    send: Callable[[], object]


def jobs(settings: Settings) -> list[Job]:
    """Every periodic job with its interval; jobs set to 0 seconds (off) are left out."""
    declared = [Job(t.name, t.every_s(settings), t.send) for t in periodic_tasks()]
    return [job for job in declared if job.every_s > 0]
