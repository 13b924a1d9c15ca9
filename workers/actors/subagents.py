"""``subagent.spawn``: create a subagent (child chat) for a spawn_* tool call of its parent
(``workers.subagents.spawn.run_spawn_call``)."""

from __future__ import annotations

import uuid

from agentfarm.tasks import catalog
from workers.runtime import get_runtime
from workers.subagents.spawn import run_spawn_call


@catalog.actor(
    catalog.SUBAGENT_SPAWN, max_retries=3, min_backoff=500, max_backoff=5000, time_limit=60_000
)
def subagent_spawn(call_id: str) -> None:
    """Run one spawn_agent / spawn_explore_agent / spawn_computer_use_agent call."""
    run_spawn_call(get_runtime(), uuid.UUID(call_id))
