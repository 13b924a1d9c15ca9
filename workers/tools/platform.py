"""Platform tools (root chats only): list_templates, read_template, create_workspace,
start_workspace. They run on the default queue, as the chat's owner, and return JSON results;
a ``PlatformToolError`` becomes an ``is_error`` result the model can act on.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from agentfarm.tasks import catalog, hosts
from agentfarm.tasks.outbox import defer
from models import db
from models.base import utcnow
from models.chat.tables import Chat
from models.workspaces import rules as workspace_rules
from models.workspaces.tables import Template, Workspace, WorkspaceStatus
from workers.runtime import WorkerRuntime

README_CAP = 8000
PROVISION_WAIT_S = 60.0

PLATFORM_TOOL_SPECS: dict[str, dict[str, Any]] = {
    "list_templates": {
        "description": "List the workspace templates you can create a workspace from.",
        "parameters": {"type": "object", "properties": {}},
    },
    "read_template": {
        "description": "Show one template's details and README.",
        "parameters": {
            "type": "object",
            "properties": {"template_id": {"type": "string", "description": "Template id."}},
            "required": ["template_id"],
        },
    },
    "create_workspace": {
        "description": (
            "Create a workspace from a template and bind it to this chat. Reuses the chat's "
            "workspace when it is already running."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "template_id": {"type": "string"},
                "name": {"type": "string", "description": "Optional workspace name."},
            },
            "required": ["template_id"],
        },
    },
    "start_workspace": {
        "description": "Start this chat's workspace again after it was stopped.",
        "parameters": {"type": "object", "properties": {}},
    },
}


class PlatformToolError(Exception):
    """Returned to the model as an is_error tool result."""


def run_platform_tool(
    rt: WorkerRuntime, name: str, chat_id: uuid.UUID, args: dict[str, Any]
) -> dict[str, Any]:
    handler = {
        "list_templates": list_templates,
        "read_template": read_template,
        "create_workspace": create_workspace,
        "start_workspace": start_workspace,
    }[name]
    return handler(rt, chat_id, args if isinstance(args, dict) else {})


def _root_chat(session: Session, chat_id: uuid.UUID, *, lock: bool = False) -> Chat:
    stmt = select(Chat).where(Chat.id == chat_id)
    chat = session.exec(stmt.with_for_update() if lock else stmt).first()
    if chat is None:
        raise PlatformToolError("chat not found")
    if chat.parent_chat_id is not None:
        raise PlatformToolError("workspace tools are only available to root chats")
    return chat


def _template_json(template: Template) -> dict[str, Any]:
    return {
        "id": str(template.id),
        "name": template.name,
        "display_name": template.display_name or template.name,
        "description": template.description,
        "sandbox": template.sandbox,
        "network_policy": template.network_policy,
    }


def list_templates(rt: WorkerRuntime, chat_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    with db.session_scope() as session:
        chat = _root_chat(session, chat_id)
        templates = workspace_rules.usable_templates(session, chat.organization_id)
        return {"templates": [_template_json(t) for t in templates]}


def _usable_template(session: Session, chat: Chat, raw_id: Any) -> Template:
    try:
        template_id = uuid.UUID(str(raw_id))
    except ValueError:
        raise PlatformToolError("template_id must be a valid UUID") from None
    template = session.get(Template, template_id)
    if template is None or template.deprecated:
        raise PlatformToolError(f"template {raw_id} not found")
    if template.organization_id != chat.organization_id:
        raise PlatformToolError("template belongs to another organization than this chat")
    usable = workspace_rules.usable_templates(session, chat.organization_id)
    if template.id not in {t.id for t in usable}:
        raise PlatformToolError("template is not in the deployment's template allowlist")
    return template


def read_template(rt: WorkerRuntime, chat_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    with db.session_scope() as session:
        chat = _root_chat(session, chat_id)
        template = _usable_template(session, chat, args.get("template_id"))
        out = _template_json(template)
        out["readme"] = template.readme[:README_CAP]
        out["readme_truncated"] = len(template.readme) > README_CAP
        return out


def _workspace_json(workspace: Workspace, *, reused: bool = False) -> dict[str, Any]:
    return {
        "workspace_id": str(workspace.id),
        "name": workspace.name,
        "status": workspace.status,
        "directory": workspace.directory,
        "template_id": str(workspace.template_id),
        "reused": reused,
    }


def _pick_host(rt: WorkerRuntime, session: Session) -> str:
    live = hosts.live_hosts(rt.redis, rt.settings.host_ttl_s)
    if not live:
        raise PlatformToolError("no workspace host is available right now; try again later")
    counts = dict(  # type: ignore[var-annotated]
        session.execute(
            select(Workspace.host, sa.func.count())
            .where(Workspace.status.in_(["pending", "running"]))  # type: ignore[attr-defined]
            .group_by(Workspace.host)
        ).all()
    )
    return min(live, key=lambda h: (counts.get(h, 0), h))


def create_workspace(rt: WorkerRuntime, chat_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    """As the chat's owner; loosely idempotent (reuse, wait, or suggest start_workspace)."""
    with db.session_scope() as session:
        chat = _root_chat(session, chat_id, lock=True)
        bound = session.get(Workspace, chat.workspace_id) if chat.workspace_id else None
        if bound is not None and bound.status == WorkspaceStatus.RUNNING:
            return _workspace_json(bound, reused=True)
        if bound is not None and bound.status == WorkspaceStatus.STOPPED:
            raise PlatformToolError(
                f"this chat's workspace {bound.name} is stopped; call start_workspace instead"
            )
        if bound is not None and bound.status == WorkspaceStatus.PENDING:
            workspace_id = bound.id
        else:
            template = _usable_template(session, chat, args.get("template_id"))
            host = _pick_host(rt, session)
            name = str(args.get("name") or f"{template.name}-{uuid.uuid4().hex[:6]}")
            workspace = Workspace(
                owner_id=chat.owner_id,
                organization_id=chat.organization_id,
                template_id=template.id,
                name=name[:64],
                host=host,
                directory="",
                status=WorkspaceStatus.PENDING,
                last_activity_at=utcnow(),
            )
            session.add(workspace)
            session.flush()
            chat.workspace_id = workspace.id
            chat.last_injected_context = None
            workspace_id = workspace.id
            defer(session, provision_message(workspace.id, host))
    return _workspace_json(_wait_running(workspace_id))


def start_workspace(rt: WorkerRuntime, chat_id: uuid.UUID, args: dict[str, Any]) -> dict[str, Any]:
    """Start the chat's bound workspace again (ignores the allowlist, like Coder)."""
    with db.session_scope() as session:
        chat = _root_chat(session, chat_id, lock=True)
        if chat.workspace_id is None:
            raise PlatformToolError("this chat has no workspace; call create_workspace first")
        workspace = session.exec(
            select(Workspace).where(Workspace.id == chat.workspace_id).with_for_update()
        ).one()
        if workspace.status == WorkspaceStatus.RUNNING:
            return _workspace_json(workspace, reused=True)
        if workspace.status in (WorkspaceStatus.FAILED, WorkspaceStatus.DELETED):
            raise PlatformToolError("this workspace cannot be started; create a new one")
        if workspace.host not in hosts.live_hosts(rt.redis, rt.settings.host_ttl_s):
            raise PlatformToolError(f"workspace host {workspace.host} is not available")
        workspace.status = WorkspaceStatus.PENDING
        workspace.updated_at = utcnow()
        defer(session, provision_message(workspace.id, workspace.host))
        workspace_id = workspace.id
    return _workspace_json(_wait_running(workspace_id))


def provision_message(workspace_id: uuid.UUID, host: str) -> Any:
    return catalog.WORKSPACE_PROVISION.message(str(workspace_id), queue=hosts.host_queue(host))


def _wait_running(workspace_id: uuid.UUID) -> Workspace:
    deadline = time.monotonic() + PROVISION_WAIT_S
    while True:
        with db.session_scope() as session:
            workspace = session.get(Workspace, workspace_id)
            assert workspace is not None
            session.expunge(workspace)
        if workspace.status == WorkspaceStatus.RUNNING:
            return workspace
        if workspace.status == WorkspaceStatus.FAILED:
            raise PlatformToolError(f"workspace {workspace.name} failed to start")
        if time.monotonic() > deadline:
            raise PlatformToolError(
                f"workspace {workspace.name} is still starting; call create_workspace again "
                "to wait for it"
            )
        time.sleep(0.05)
