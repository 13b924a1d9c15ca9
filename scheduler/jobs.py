"""The schedule: which actor is sent how often. The scheduler only sends; actors do the work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentfarm.settings import Settings


@dataclass(frozen=True)
class Job:
    id: str
    every_s: float
    send: Callable[[], object]


def jobs(settings: Settings) -> list[Job]:
    """Every periodic job, declared next to the actor it triggers (imported here)."""
    from workers.actors.chat import chat_recover_stale
    from workers.actors.workspaces import workspace_autostop

    return [
        Job("chat.recover_stale", settings.recover_stale_every_s, chat_recover_stale.send),
        Job("workspace.autostop", settings.workspace_autostop_every_s, workspace_autostop.send),
    ]
