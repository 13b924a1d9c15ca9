"""Workspace actors. ``workspace.provision``, ``workspace.stop`` and ``workspace.context`` run
on the queue of the host that owns the workspace (``workspace.<host>``); ``workspace.autostop``
is sent by the scheduler and only decides which workspaces to stop (``workers.tools.workspaces``).
"""

from __future__ import annotations

import logging
import uuid

from agentfarm import logs
from agentfarm.tasks import catalog
from workers.runtime import get_runtime
from workers.tools import workspaces

log = logging.getLogger("agentfarm.workspaces")


@catalog.actor(catalog.WORKSPACE_PROVISION, max_retries=3, time_limit=60_000)
def workspace_provision(workspace_id: str) -> None:
    """Create (or re-create) the workspace's directory on this host and mark it running."""
    logs.bind(workspace_id=workspace_id)
    if workspaces.provision(get_runtime(), uuid.UUID(workspace_id)):
        log.info("workspace provisioned")


@catalog.actor(catalog.WORKSPACE_STOP, max_retries=3, time_limit=60_000)
def workspace_stop(workspace_id: str) -> None:
    """Stop a workspace: end its tracked processes and mark it stopped (files stay)."""
    logs.bind(workspace_id=workspace_id)
    if workspaces.stop(uuid.UUID(workspace_id)):
        log.info("workspace stopped")


@catalog.actor(catalog.WORKSPACE_AUTOSTOP, max_retries=0)
def workspace_autostop() -> None:
    """Stop idle workspaces past their TTL; a running turn keeps its workspace alive."""
    count = workspaces.autostop(get_runtime())
    if count:
        log.info("autostopping idle workspaces", extra={"count": count})


@catalog.actor(
    catalog.WORKSPACE_CONTEXT,
    max_retries=3,
    # .mcp.json servers connect in parallel, each within 30 s.
    time_limit=120_000,
)
def workspace_context(chat_id: str, generation: int) -> None:
    """Read the workspace's AGENTS.md, skills and .mcp.json tools, then continue the step."""
    logs.bind(chat_id=chat_id, generation=generation)
    workspaces.inject_context(get_runtime(), uuid.UUID(chat_id), generation)
