"""``POST /api/v2/authcheck``: what the caller may do, answered by ``models.identity.rbac``.

Coder's request: ``{checks: {name: {object: {resource_type, owner_id?, organization_id?,
resource_id?, any_org?}, action}}}``; the answer is ``{name: bool}``. ``owner_id: "me"`` is
the caller. An unknown resource type or action is simply not allowed. ``resource_id`` looks up
the owner and organization of a chat, workspace, template or group (at most 10 per request).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlmodel import Session

from api_shim.deps import CurrentUser, DbSession
from models.chat.tables import Chat
from models.errors import BadRequest
from models.identity import rbac, users
from models.identity.tables import Group
from models.workspaces.tables import Template, Workspace

router = APIRouter(prefix="/api/v2", tags=["authorization"])
MAX_ID_LOOKUPS = 10
# Resource types whose rows resource_id may name: the model, its owner and org columns.
BY_ID: dict[str, tuple[type[Any], str | None, str]] = {
    "chat": (Chat, "owner_id", "organization_id"),
    "workspace": (Workspace, "owner_id", "organization_id"),
    "template": (Template, None, "organization_id"),
    "group": (Group, None, "organization_id"),
}


class AuthObject(BaseModel):
    resource_type: str = ""
    owner_id: str = ""
    organization_id: str = ""
    resource_id: str = ""
    any_org: bool = False


class AuthCheck(BaseModel):
    object: AuthObject = Field(default_factory=AuthObject)
    action: str = ""


class AuthorizationRequest(BaseModel):
    checks: dict[str, AuthCheck] = Field(default_factory=dict)


def _uuid_or_nobody(value: str) -> uuid.UUID | None:
    """An id from the request; a malformed one names nobody (the nil UUID)."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return uuid.UUID(int=0)


def _object(session: Session, subject: rbac.Subject, spec: AuthObject) -> rbac.Object | None:
    owner = subject.user_id if spec.owner_id == "me" else _uuid_or_nobody(spec.owner_id)
    obj = rbac.Object(spec.resource_type, owner, _uuid_or_nobody(spec.organization_id))
    if spec.resource_id and spec.resource_type in BY_ID:
        try:
            row_id = uuid.UUID(spec.resource_id)
        except ValueError:
            raise BadRequest(
                f'Object "{spec.resource_id}" id is not a valid uuid.',
                validations=[{"field": "resource_id", "detail": "Must be a UUID."}],
            ) from None
        model, owner_col, org_col = BY_ID[spec.resource_type]
        row = session.get(model, row_id)
        if row is None:
            return None
        owner = getattr(row, owner_col) if owner_col else None
        obj = rbac.Object(spec.resource_type, owner, getattr(row, org_col))
    return obj


def _allowed(subject: rbac.Subject, action: str, obj: rbac.Object, any_org: bool) -> bool:
    if any_org and obj.organization_id is None:
        return any(
            rbac.can(subject, action, rbac.Object(obj.resource_type, obj.owner_id, org_id))
            for org_id in subject.organization_ids
        )
    return rbac.can(subject, action, obj)


@router.post("/authcheck", summary="Check what you may do (Coder's authorization request)")
def authcheck(body: AuthorizationRequest, user: CurrentUser, session: DbSession) -> dict[str, bool]:
    lookups = sum(1 for c in body.checks.values() if c.object.resource_id)
    if lookups > MAX_ID_LOOKUPS:
        raise BadRequest(
            f'Endpoint only supports using "resource_id" field {MAX_ID_LOOKUPS} times, found '
            f"{lookups} usages. Remove {lookups - MAX_ID_LOOKUPS} objects with this field set."
        )
    subject = users.subject_for(session, user)
    answers: dict[str, bool] = {}
    for name, check in body.checks.items():
        if not check.object.resource_type:
            raise BadRequest(f'Object\'s "resource_type" field must be defined for key "{name}".')
        obj = _object(session, subject, check.object)
        answers[name] = obj is not None and _allowed(
            subject, check.action, obj, check.object.any_org
        )
    return answers
