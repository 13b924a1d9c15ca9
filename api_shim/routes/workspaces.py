"""Templates (admin), the caller's workspaces, and the workspace autostop fallback setting.

Shapes follow Coder's ``/api/v2`` template and workspace resources where they overlap.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlmodel import Session, select

from api_shim.deps import CurrentUser, DbSession, parse_uuid, require_owner
from models.chat.wire import ts
from models.enums import SiteRole
from models.errors import NotFound
from models.identity.tables import Organization, OrganizationMember, User
from models.workspaces import rules as workspace_rules
from models.workspaces.tables import Template, Workspace

router = APIRouter(tags=["workspaces"])


class CreateTemplateRequest(BaseModel):
    name: str
    display_name: str = ""
    description: str = ""
    readme: str = ""
    sandbox: bool = False
    network_policy: str = "open"
    autostop_ttl_ms: int | None = None


class WorkspaceTTL(BaseModel):
    workspace_ttl_ms: int


def _organization(session: Session, user: User, ref: str) -> Organization:
    """An organization by id, name or ``default``, that the caller belongs to (else 404)."""
    if ref == "default":
        org = session.exec(select(Organization).where(Organization.is_default)).first()
    else:
        try:
            org = session.get(Organization, uuid.UUID(ref))
        except ValueError:
            org = session.exec(select(Organization).where(Organization.name == ref)).first()
    member = org and session.get(OrganizationMember, (org.id, user.id))
    if org is None or (member is None and SiteRole.OWNER not in (user.rbac_roles or [])):
        raise NotFound("Organization not found.")
    return org


def template_json(template: Template) -> dict[str, Any]:
    return {
        "id": str(template.id),
        "organization_id": str(template.organization_id),
        "name": template.name,
        "display_name": template.display_name,
        "description": template.description,
        "readme": template.readme,
        "provisioner": template.provisioner,
        "sandbox": template.sandbox,
        "network_policy": template.network_policy,
        "autostop_ttl_ms": template.autostop_ttl_ms,
        "deprecated": template.deprecated,
        "created_at": ts(template.created_at),
        "updated_at": ts(template.updated_at),
    }


def workspace_json(workspace: Workspace) -> dict[str, Any]:
    return {
        "id": str(workspace.id),
        "owner_id": str(workspace.owner_id),
        "organization_id": str(workspace.organization_id),
        "template_id": str(workspace.template_id),
        "name": workspace.name,
        "host": workspace.host,
        "directory": workspace.directory,
        "status": workspace.status,
        "last_activity_at": ts(workspace.last_activity_at),
        "deadline": ts(workspace.deadline),
        "created_at": ts(workspace.created_at),
        "updated_at": ts(workspace.updated_at),
    }


@router.post(
    "/api/v2/organizations/{organization}/templates",
    status_code=201,
    summary="Create a workspace template (owner role)",
)
def create_template(
    organization: str, body: CreateTemplateRequest, user: CurrentUser, session: DbSession
) -> dict[str, Any]:
    require_owner(user)
    org = _organization(session, user, organization)
    template = workspace_rules.create_template(
        session,
        organization_id=org.id,
        name=body.name,
        display_name=body.display_name,
        description=body.description,
        readme=body.readme,
        sandbox=body.sandbox,
        network_policy=body.network_policy,
        autostop_ttl_ms=body.autostop_ttl_ms,
        created_by=user.id,
    )
    session.commit()
    return template_json(template)


@router.get("/api/v2/organizations/{organization}/templates", summary="List templates")
def list_templates(
    organization: str, user: CurrentUser, session: DbSession
) -> list[dict[str, Any]]:
    org = _organization(session, user, organization)
    rows = session.exec(
        select(Template).where(Template.organization_id == org.id).order_by(Template.name)
    ).all()
    return [template_json(t) for t in rows]


@router.get("/api/v2/templates/{template}", summary="Get a template")
def get_template(template: str, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    row = session.get(Template, parse_uuid(template, "template ID"))
    if row is None:
        raise NotFound("Template not found.")
    _organization(session, user, str(row.organization_id))
    return template_json(row)


@router.get("/api/v2/workspaces", summary="Your workspaces")
def list_workspaces(user: CurrentUser, session: DbSession) -> dict[str, Any]:
    rows = session.exec(
        select(Workspace)
        .where(Workspace.owner_id == user.id, Workspace.status != "deleted")
        .order_by(Workspace.created_at.desc())  # type: ignore[attr-defined]
    ).all()
    return {"workspaces": [workspace_json(w) for w in rows], "count": len(rows)}


@router.get("/api/v2/workspaces/{workspace}", summary="Get one of your workspaces")
def get_workspace(workspace: str, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    row = session.get(Workspace, parse_uuid(workspace, "workspace ID"))
    if row is None or row.owner_id != user.id:
        raise NotFound("Workspace not found or you do not have access to this resource")
    return workspace_json(row)


@router.get(
    "/api/experimental/chats/config/workspace-ttl", summary="Autostop fallback for workspaces"
)
def get_workspace_ttl(user: CurrentUser, session: DbSession) -> dict[str, int]:
    return {"workspace_ttl_ms": workspace_rules.workspace_ttl_ms(session)}


@router.put(
    "/api/experimental/chats/config/workspace-ttl",
    status_code=204,
    summary="Set the autostop fallback (owner role; 0 disables)",
)
def put_workspace_ttl(body: WorkspaceTTL, user: CurrentUser, session: DbSession) -> Response:
    require_owner(user)
    workspace_rules.validate_ttl_ms(body.workspace_ttl_ms)
    workspace_rules.put_setting(
        session, workspace_rules.WORKSPACE_TTL_KEY, {"workspace_ttl_ms": body.workspace_ttl_ms}
    )
    session.commit()
    return Response(status_code=204)
