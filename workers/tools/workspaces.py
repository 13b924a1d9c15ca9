"""Workspace lifecycle on its host: provision, stop (ending tracked processes), autostop of
idle workspaces, and the workspace context (AGENTS.md, skills, ``.mcp.json`` tools) a chat's
first step on a workspace reads. Each function owns its transaction; the ``workspace.*``
actors call one each.
"""

from __future__ import annotations

import logging
import signal
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from agentfarm.chat_stream import events as ev
from agentfarm.settings import workspaces_root
from agentfarm.tasks import catalog, hosts
from agentfarm.tasks.outbox import defer
from models import db
from models.base import utcnow
from models.chat import rules as chat_rules
from models.chat.tables import Chat
from models.chat.wire import message_json
from models.enums import ChatStatus, MessageRole, MessageVisibility
from models.workspaces import rules as workspace_rules
from models.workspaces.tables import Workspace, WorkspaceProcess, WorkspaceStatus
from workers.integrations.mcp.workspace import refresh_discovery
from workers.runtime import WorkerRuntime, get_runtime
from workers.tools.context_files import discover_skills, read_instruction_files, skill_parts
from workers.tools.spool import load_process

log = logging.getLogger("agentfarm.workspaces")


def spool_dir() -> Path:
    """Where this host keeps tracked-process output (shared by its worker processes)."""
    path = workspaces_root(get_runtime().settings) / ".spool"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _locked(session: Session, workspace_id: uuid.UUID) -> Workspace | None:
    return session.exec(
        select(Workspace).where(Workspace.id == workspace_id).with_for_update()
    ).first()


def provision(rt: WorkerRuntime, workspace_id: uuid.UUID) -> bool:
    """Create (or re-create) the workspace's directory on this host and mark it running."""
    root = workspaces_root(rt.settings)
    with db.session_scope() as session:
        workspace = _locked(session, workspace_id)
        if workspace is None or workspace.status != WorkspaceStatus.PENDING:
            return False
        directory = Path(workspace.directory) if workspace.directory else root / str(workspace_id)
        directory.mkdir(parents=True, exist_ok=True)
        workspace.directory = str(directory)
        workspace.status = WorkspaceStatus.RUNNING
        workspace.last_activity_at = utcnow()
        workspace.updated_at = utcnow()
    return True


def stop(workspace_id: uuid.UUID) -> bool:
    """Stop a workspace: end its tracked processes and mark it stopped (files stay)."""
    with db.session_scope() as session:
        workspace = _locked(session, workspace_id)
        if workspace is None or workspace.status != WorkspaceStatus.RUNNING:
            return False
        ids = session.exec(
            select(WorkspaceProcess.id).where(WorkspaceProcess.workspace_id == workspace.id)
        ).all()
        for process_id in ids:
            _kill_spooled(process_id)
        workspace.status = WorkspaceStatus.STOPPED
        workspace.updated_at = utcnow()
    return True


def _kill_spooled(process_id: str) -> None:
    # The spool's own group signal: it refuses recycled pids and dead groups.
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


def autostop(rt: WorkerRuntime) -> int:
    """Send ``workspace.stop`` for idle workspaces past their TTL (a running turn keeps its
    workspace alive). Returns how many."""
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
            message = catalog.WORKSPACE_STOP.message(
                str(workspace_id), queue=hosts.host_queue(host)
            )
            defer(session, message)
    return len(idle)


def inject_context(rt: WorkerRuntime, chat_id: uuid.UUID, generation: int) -> None:
    """Read AGENTS.md and skills from the chat's workspace, discover its .mcp.json tools,
    persist them, continue the step."""
    # Before the chat lock: connecting to the servers may take a while.
    refresh_discovery(chat_id, spool_dir())
    published: list[dict[str, Any]] = []
    with db.session_scope() as session:
        chat = session.exec(select(Chat).where(Chat.id == chat_id).with_for_update()).first()
        if chat is None or chat.generation != generation or chat.status != ChatStatus.RUNNING:
            return
        workspace = session.get(Workspace, chat.workspace_id) if chat.workspace_id else None
        parts: list[dict[str, Any]] = []
        if workspace is not None and workspace.directory:
            root = Path(workspace.directory)
            skills, warnings = discover_skills(root)
            for warning in warnings:
                log.warning("skill skipped: %s", warning)
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
        defer(session, catalog.CHAT_STEP.message(str(chat_id), generation, 1))
    if published:
        rt.events.publish(chat_id, *published)
