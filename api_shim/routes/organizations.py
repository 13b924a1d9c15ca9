"""``/api/v2/organizations``: organizations and their members (Coder's shapes).

``{organization}`` is a UUID, a name or ``default``. Organizations the caller may not read
answer 404 (members read their own; owners and user admins read all); changing an
organization needs the owner role, and adding or removing members the owner or user-admin role.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api_shim.deps import CurrentUser, DbSession
from models.errors import Forbidden
from models.identity import organizations, rbac, users
from models.identity.tables import Organization

router = APIRouter(prefix="/api/v2/organizations", tags=["organizations"])


class CreateOrganizationRequest(BaseModel):
    name: str = ""
    display_name: str = ""
    description: str = ""
    icon: str = ""


class UpdateOrganizationRequest(BaseModel):
    name: str | None = None
    display_name: str | None = None
    description: str | None = None
    icon: str | None = None


def _require(subject: rbac.Subject, action: str, obj: rbac.Object, detail: str) -> None:
    if not rbac.can(subject, action, obj):
        raise Forbidden("Forbidden.", detail=detail)


def _member_object(org: Organization) -> rbac.Object:
    return rbac.Object("organization_member", None, org.id)


@router.get("", summary="Organizations you can see")
def list_organizations(user: CurrentUser, session: DbSession) -> list[dict[str, Any]]:
    subject = users.subject_for(session, user)
    rows = organizations.list_organizations(session, subject)
    return [organizations.organization_json(o) for o in rows]


@router.post("", status_code=201, summary="Create an organization (owner role)")
def create_organization(
    body: CreateOrganizationRequest, user: CurrentUser, session: DbSession
) -> dict[str, Any]:
    subject = users.subject_for(session, user)
    _require(subject, "create", rbac.Object("organization"), "This needs the owner role.")
    org = organizations.create_organization(
        session,
        user,
        name=body.name,
        display_name=body.display_name,
        description=body.description,
        icon=body.icon,
    )
    session.commit()
    return organizations.organization_json(org)


@router.get("/{organization}", summary="Get an organization (UUID, name or default)")
def get_organization(organization: str, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    subject = users.subject_for(session, user)
    org = organizations.readable_organization(session, subject, organization)
    return organizations.organization_json(org)


@router.patch("/{organization}", summary="Update an organization (owner role)")
def update_organization(
    organization: str, body: UpdateOrganizationRequest, user: CurrentUser, session: DbSession
) -> dict[str, Any]:
    subject = users.subject_for(session, user)
    org = organizations.readable_organization(session, subject, organization)
    _require(subject, "update", rbac.Object("organization", None, org.id), "Needs the owner role.")
    organizations.update_organization(session, org, body.model_dump(exclude_unset=True))
    session.commit()
    return organizations.organization_json(org)


@router.get("/{organization}/members", summary="An organization's members")
def list_members(organization: str, user: CurrentUser, session: DbSession) -> list[dict[str, Any]]:
    subject = users.subject_for(session, user)
    org = organizations.readable_organization(session, subject, organization)
    if not rbac.can(subject, "read", _member_object(org)):
        raise organizations.org_not_found()
    return [organizations.member_json(m, u) for m, u in organizations.members(session, org)]


@router.post(
    "/{organization}/members/{user}",
    summary="Add a user to an organization (owner or user-admin)",
)
def add_member(
    organization: str, user: str, caller: CurrentUser, session: DbSession
) -> dict[str, Any]:
    subject = users.subject_for(session, caller)
    org = organizations.readable_organization(session, subject, organization)
    _require(subject, "create", _member_object(org), "Needs the owner or user-admin role.")
    target = users.find_user(session, user, caller)
    if target is None or not rbac.can(subject, "read", rbac.Object("user", target.id)):
        raise users.user_not_found()
    member = organizations.add_member(session, org, target)
    session.commit()
    return organizations.member_json(member, target)


@router.delete(
    "/{organization}/members/{user}",
    status_code=204,
    summary="Remove a user from an organization and its groups (owner or user-admin)",
)
def remove_member(
    organization: str, user: str, caller: CurrentUser, session: DbSession
) -> Response:
    subject = users.subject_for(session, caller)
    org = organizations.readable_organization(session, subject, organization)
    _require(subject, "delete", _member_object(org), "Needs the owner or user-admin role.")
    target = users.find_user(session, user, caller)
    if target is None:
        raise users.user_not_found()
    organizations.remove_member(session, caller, org, target)
    session.commit()
    return Response(status_code=204)
