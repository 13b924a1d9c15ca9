"""The schedule: which actor is sent how often. The scheduler only sends; actors do the work.

Each job is declared next to its actor with :func:`agentfarm.tasks.periodic.periodic`; this module
imports the actor modules that declare jobs and turns the declarations into intervals.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from agentfarm.settings import Settings

# Every actor module that declares a periodic job (a module missing here is not scheduled).
JOB_MODULES = (
    "workers.actors.chat",
    "workers.actors.insights",
    "workers.actors.retention",
    "workers.actors.usage",
    "workers.actors.workspaces",
)


@dataclass(frozen=True)
class Job:
    id: str
    every_s: float
    send: Callable[[], object]


def jobs(settings: Settings) -> list[Job]:
    """Every periodic job with its interval; jobs set to 0 seconds (off) are left out."""
    from agentfarm.tasks.periodic import periodic_jobs

    for module in JOB_MODULES:
        importlib.import_module(module)
    declared = [Job(j.id, j.every_s(settings), j.send) for j in periodic_jobs()]
    return [job for job in declared if job.every_s > 0]
