"""Groups (Coder's shapes): ``/api/v2/organizations/{organization}/groups`` and
``/api/v2/groups/{group}``.

Members of an organization read its groups; creating, changing and deleting groups, and
adding or removing their members, needs the owner or user-admin role. Every organization has
the Everyone group (its id is the organization's id), whose members are implicit.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api_shim.deps import CurrentUser, DbSession
from models.errors import Forbidden
from models.identity import groups, organizations, rbac, users

router = APIRouter(prefix="/api/v2", tags=["groups"])


class CreateGroupRequest(BaseModel):
    name: str = ""
    display_name: str = ""
    avatar_url: str = ""
    quota_allowance: int = Field(default=0, description="Accepted for Coder clients; unused.")


class PatchGroupRequest(BaseModel):
    name: str | None = None
    display_name: str | None = None
    avatar_url: str | None = None
    quota_allowance: int | None = Field(default=None, description="Accepted; unused.")
    add_users: list[str] = Field(default_factory=list, description="User ids to add.")
    remove_users: list[str] = Field(default_factory=list, description="User ids to remove.")


def _require(subject: rbac.Subject, action: str, obj: rbac.Object) -> None:
    if not rbac.can(subject, action, obj):
        raise Forbidden("Forbidden.", detail="Managing groups needs the owner or user-admin role.")


@router.get("/organizations/{organization}/groups", summary="An organization's groups")
def list_groups(organization: str, user: CurrentUser, session: DbSession) -> list[dict[str, Any]]:
    subject = users.subject_for(session, user)
    org = organizations.readable_organization(session, subject, organization)
    if not rbac.can(subject, "read", rbac.Object("group", None, org.id)):
        raise organizations.org_not_found()
    return [groups.group_json(session, g) for g in groups.list_groups(session, org)]


@router.post(
    "/organizations/{organization}/groups",
    status_code=201,
    summary="Create a group (owner or user-admin)",
)
def create_group(
    organization: str, body: CreateGroupRequest, user: CurrentUser, session: DbSession
) -> dict[str, Any]:
    subject = users.subject_for(session, user)
    org = organizations.readable_organization(session, subject, organization)
    _require(subject, "create", rbac.Object("group", None, org.id))
    group = groups.create_group(
        session, org, name=body.name, display_name=body.display_name, avatar_url=body.avatar_url
    )
    session.commit()
    return groups.group_json(session, group)


@router.get("/groups/{group}", summary="Get a group")
def get_group(group: str, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    subject = users.subject_for(session, user)
    return groups.group_json(session, groups.readable_group(session, subject, group))


@router.patch(
    "/groups/{group}",
    summary="Update a group; add_users/remove_users change its members (owner or user-admin)",
)
def patch_group(
    group: str, body: PatchGroupRequest, user: CurrentUser, session: DbSession
) -> dict[str, Any]:
    subject = users.subject_for(session, user)
    row = groups.readable_group(session, subject, group)
    _require(subject, "update", groups.group_object(row))
    groups.update_group(session, row, body.model_dump(exclude_unset=True))
    session.commit()
    return groups.group_json(session, row)


@router.delete("/groups/{group}", summary="Delete a group (owner or user-admin)")
def delete_group(group: str, user: CurrentUser, session: DbSession) -> dict[str, str]:
    subject = users.subject_for(session, user)
    row = groups.readable_group(session, subject, group)
    _require(subject, "delete", groups.group_object(row))
    groups.delete_group(session, row)
    session.commit()
    return {"message": "Successfully deleted group!"}
