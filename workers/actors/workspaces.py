"""Workspace actors. ``workspace.provision``, ``workspace.stop`` and ``workspace.context`` run
on the queue of the host that owns the workspace (``workspace.<host>``); ``workspace.autostop``
is sent by the scheduler and only decides which workspaces to stop.
"""

from __future__ import annotations

import logging
import signal
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import sqlalchemy as sa
from sqlmodel import Session, select

from agentfarm.chat_stream import events as ev
from agentfarm.settings import workspaces_root
from agentfarm.tasks import hosts
from agentfarm.tasks.broker import get_broker
from agentfarm.tasks.outbox import defer
from agentfarm.tasks.periodic import periodic
from agentfarm.tasks.queues import Queue
from models import db
from models.base import utcnow
from models.chat import rules as chat_rules
from models.chat.tables import Chat
from models.chat.wire import message_json
from models.enums import ChatStatus, MessageRole, MessageVisibility
from models.workspaces import rules as workspace_rules
from models.workspaces.tables import Template, Workspace, WorkspaceStatus
from workers.runtime import get_runtime

log = logging.getLogger("agentfarm.workspaces")
get_broker()


def spool_dir() -> Path:
    """Where this host keeps tracked-process output (shared by its worker processes)."""
    path = workspaces_root(get_runtime().settings) / ".spool"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _locked(session: Session, workspace_id: str) -> Workspace | None:
    return session.exec(
        select(Workspace).where(Workspace.id == uuid.UUID(workspace_id)).with_for_update()
    ).first()


@dramatiq.actor(
    actor_name="workspace.provision", queue_name=Queue.DEFAULT, max_retries=3, time_limit=60_000
)
def workspace_provision(workspace_id: str) -> None:
    """Create (or re-create) the workspace's directory on this host and mark it running."""
    root = workspaces_root(get_runtime().settings)
    with db.session_scope() as session:
        workspace = _locked(session, workspace_id)
        if workspace is None or workspace.status != WorkspaceStatus.PENDING:
            return
        directory = Path(workspace.directory) if workspace.directory else root / workspace_id
        directory.mkdir(parents=True, exist_ok=True)
        workspace.directory = str(directory)
        workspace.status = WorkspaceStatus.RUNNING
        workspace.last_activity_at = utcnow()
        workspace.updated_at = utcnow()
    log.info("workspace provisioned", extra={"workspace_id": workspace_id})


@dramatiq.actor(
    actor_name="workspace.stop", queue_name=Queue.DEFAULT, max_retries=3, time_limit=60_000
)
def workspace_stop(workspace_id: str) -> None:
    """Stop a workspace: end its tracked processes and mark it stopped (files stay)."""
    from models.workspaces.tables import WorkspaceProcess

    with db.session_scope() as session:
        workspace = _locked(session, workspace_id)
        if workspace is None or workspace.status != WorkspaceStatus.RUNNING:
            return
        ids = session.exec(
            select(WorkspaceProcess.id).where(WorkspaceProcess.workspace_id == workspace.id)
        ).all()
        for process_id in ids:
            _kill_spooled(process_id)
        workspace.status = WorkspaceStatus.STOPPED
        workspace.updated_at = utcnow()
    log.info("workspace stopped", extra={"workspace_id": workspace_id})


def _kill_spooled(process_id: str) -> None:
    # The spool's own group signal: it refuses recycled pids and dead groups.
    from workers.tools.spool import load_process

    proc = load_process(spool_dir(), process_id)
    if proc is not None:
        try:
            proc.signal_group(signal.SIGKILL)
        except PermissionError:
            log.warning("cannot signal process", extra={"process_id": process_id})


AUTOSTOP_SQL = sa.text(
    """
    SELECT w.id, w.host FROM workspaces w JOIN templates t ON t.id = w.template_id
     WHERE w.status = 'running'
       AND coalesce(t.autostop_ttl_ms, :fallback) > 0
       AND w.last_activity_at < now() - make_interval(
             secs => coalesce(t.autostop_ttl_ms, :fallback) / 1000.0)
       AND NOT EXISTS (SELECT 1 FROM chats c WHERE c.workspace_id = w.id
                        AND c.status IN ('pending', 'running'))
    """
)


@periodic(every="workspace_autostop_every_s")
@dramatiq.actor(actor_name="workspace.autostop", queue_name=Queue.SCHEDULED, max_retries=0)
def workspace_autostop() -> None:
    """Stop idle workspaces past their TTL; a running turn keeps its workspace alive."""
    rt = get_runtime()
    with db.session_scope() as session:
        fallback = workspace_rules.workspace_ttl_ms(session, rt.settings.workspace_ttl_fallback_ms)
        # A running turn counts as activity: touch those workspaces first.
        session.execute(
            sa.text(
                "UPDATE workspaces SET last_activity_at = now() WHERE id IN (SELECT workspace_id"
                " FROM chats WHERE status IN ('pending','running') AND workspace_id IS NOT NULL)"
            )
        )
        idle = session.execute(AUTOSTOP_SQL, {"fallback": fallback}).all()
        for workspace_id, host in idle:
            defer(
                session,
                workspace_stop.message(str(workspace_id)).copy(queue_name=hosts.host_queue(host)),
            )
    if idle:
        log.info("autostopping idle workspaces", extra={"count": len(idle)})


@dramatiq.actor(
    actor_name="workspace.context",
    queue_name=Queue.DEFAULT,
    max_retries=3,
    # .mcp.json servers connect in parallel, each within 30 s.
    time_limit=120_000,
)
def workspace_context(chat_id: str, generation: int) -> None:
    """Read AGENTS.md and skills from the chat's workspace, discover its .mcp.json tools,
    persist them, continue the step."""
    from workers.actors.chat import chat_step
    from workers.integrations.mcp.workspace import refresh_discovery
    from workers.tools.context_files import discover_skills, read_instruction_files, skill_parts

    rt = get_runtime()
    # Before the chat lock: connecting to the servers may take a while.
    refresh_discovery(uuid.UUID(chat_id), spool_dir())
    published: list[dict[str, Any]] = []
    with db.session_scope() as session:
        chat = session.exec(
            select(Chat).where(Chat.id == uuid.UUID(chat_id)).with_for_update()
        ).first()
        if chat is None or chat.generation != generation or chat.status != ChatStatus.RUNNING:
            return
        workspace = session.get(Workspace, chat.workspace_id) if chat.workspace_id else None
        parts: list[dict[str, Any]] = []
        if workspace is not None and workspace.directory:
            root = Path(workspace.directory)
            skills, warnings = discover_skills(root)
            for warning in warnings:
                log.warning("skill skipped: %s", warning, extra={"chat_id": chat_id})
            parts = read_instruction_files(root) + skill_parts(skills)
        chat.last_injected_context = {"workspace_id": str(chat.workspace_id), "parts": len(parts)}
        if parts:
            # [inferred] A system message the UI also sees (visibility both): the model reads
            # the instructions as system context, and the user's turn stays the latest user
            # message.
            msg = chat_rules.add_message(
                session, chat, MessageRole.SYSTEM, parts, visibility=MessageVisibility.BOTH
            )
            published.append(ev.message_event(chat.id, message_json(msg)))
        defer(session, chat_step.message(chat_id, generation, 1))
    if published:
        rt.events.publish(uuid.UUID(chat_id), *published)


def template_of(workspace: Workspace) -> Template | None:
    with db.session_scope() as session:
        template = session.get(Template, workspace.template_id)
        if template is not None:
            session.expunge(template)
        return template
