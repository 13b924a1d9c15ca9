"""``/api/v2/users``: users, their site roles and their session tokens (Coder's shapes).

A route's ``{user}`` is ``me``, a username or a UUID. Users the caller may not read answer 404;
an action on a readable user that the caller's roles do not allow answers 403.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from agentfarm.settings import experiment_enabled
from api_shim.deps import AppSettings, CurrentUser, DbSession
from models.base import utcnow
from models.errors import BadRequest, Forbidden
from models.identity import organizations, rbac, users
from models.identity.tables import OrganizationMember, User
from models.identity.tokens import create_token

router = APIRouter(prefix="/api/v2/users", tags=["users"])


class CreateUserRequest(BaseModel):
    email: str = ""
    username: str = ""
    name: str = ""
    password: str = Field(default="", description="Not supported: agentfarm signs in by token.")
    login_type: str = Field(default="none", description="none, password, github or oidc.")
    organization_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Empty or the nil UUID: the default organization."
    )


class UpdateRolesRequest(BaseModel):
    roles: list[str] = Field(description="The full set of site roles (member is implied).")


# Coder's default cap on token lifetimes (876,600 h, about 100 years), in nanoseconds.
MAX_TOKEN_LIFETIME_NS = 876_600 * 3600 * 10**9


class CreateTokenRequest(BaseModel):
    token_name: str = ""
    lifetime: int = Field(
        default=0,
        ge=0,
        le=MAX_TOKEN_LIFETIME_NS,
        description="Nanoseconds (Go's time.Duration); 0: the token never expires.",
    )


def forbidden(detail: str) -> Forbidden:
    return Forbidden("Forbidden.", detail=detail)


def _readable_user(session: Session, caller: User, ref: str) -> tuple[User, rbac.Subject]:
    subject = users.subject_for(session, caller)
    target = users.find_user(session, ref, caller)
    if target is None or not rbac.can(subject, "read", rbac.Object("user", target.id)):
        raise users.user_not_found()
    return target, subject


@router.get("", summary="List users (owners and user admins see everyone, others themselves)")
def list_users(
    user: CurrentUser,
    session: DbSession,
    q: str = "",
    limit: int = Query(default=50, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> dict[str, Any]:
    subject = users.subject_for(session, user)
    rows, count = users.list_users(session, subject, q=q.strip(), limit=limit, offset=offset)
    return {"users": users.users_json(session, rows), "count": count}


@router.post("", status_code=201, summary="Create a user (owner or user-admin)")
def create_user(
    body: CreateUserRequest, user: CurrentUser, session: DbSession, settings: AppSettings
) -> dict[str, Any]:
    subject = users.subject_for(session, user)
    if not rbac.can(subject, "create", rbac.Object("user")):
        raise forbidden("Creating users needs the owner or user-admin role.")
    if body.password:
        raise BadRequest(
            "Password authentication is not supported.",
            detail="Create a session token for the user: POST /api/v2/users/{user}/keys/tokens.",
        )
    organizations = users.resolve_organizations(session, body.organization_ids)
    roles = rbac.initial_site_roles(
        body.login_type,
        agents_experiment=experiment_enabled(settings, "agents"),
        oidc_role_sync=settings.oidc_role_sync,
    )
    created = users.create_api_user(
        session,
        username=body.username,
        email=body.email,
        name=body.name,
        login_type=body.login_type,
        organizations=organizations,
        roles=roles,
    )
    session.commit()
    return users.user_json(session, created)


@router.get("/roles", summary="Site roles, and which of them you may assign")
def site_roles(user: CurrentUser) -> list[dict[str, Any]]:
    mine = user.rbac_roles or []
    return [
        {**rbac.role_json(name), "assignable": rbac.can_assign(mine, name), "built_in": True}
        for name in rbac.SITE_ROLES
    ]


@router.get("/{user}", summary="Get a user (me, username or UUID)")
def get_user(user: str, caller: CurrentUser, session: DbSession) -> dict[str, Any]:
    target, _ = _readable_user(session, caller, user)
    return users.user_json(session, target)


@router.get("/{user}/roles", summary="A user's site and organization roles")
def get_user_roles(user: str, caller: CurrentUser, session: DbSession) -> dict[str, Any]:
    target, _ = _readable_user(session, caller, user)
    memberships = session.exec(
        select(OrganizationMember).where(OrganizationMember.user_id == target.id)
    ).all()
    return {
        "roles": [r for r in target.rbac_roles or [] if r != rbac.MEMBER],
        "organization_roles": {str(m.organization_id): list(m.roles or []) for m in memberships},
    }


@router.put("/{user}/roles", summary="Replace a user's site roles")
def put_user_roles(
    user: str,
    body: UpdateRolesRequest,
    caller: CurrentUser,
    session: DbSession,
    settings: AppSettings,
) -> dict[str, Any]:
    target, subject = _readable_user(session, caller, user)
    if not rbac.can(subject, "assign", rbac.Object("assign_role")):
        raise forbidden("Assigning roles needs the owner or user-admin role.")
    users.set_site_roles(
        session, caller, target, body.roles, oidc_role_sync=settings.oidc_role_sync
    )
    session.commit()
    return users.user_json(session, target)


@router.get("/{user}/organizations", summary="The organizations a user belongs to")
def user_organizations(user: str, caller: CurrentUser, session: DbSession) -> list[dict[str, Any]]:
    target, subject = _readable_user(session, caller, user)
    theirs = users.subject_for(session, target).organization_ids
    return [
        organizations.organization_json(org)
        for org in organizations.list_organizations(session, subject)
        if org.id in theirs
    ]


@router.post(
    "/{user}/keys/tokens",
    status_code=201,
    summary="Create a session token for a user (yourself, or anyone as owner)",
)
def create_user_token(
    user: str, body: CreateTokenRequest, caller: CurrentUser, session: DbSession
) -> dict[str, str]:
    target, subject = _readable_user(session, caller, user)
    if not rbac.can(subject, "create", rbac.Object("api_key", target.id)):
        raise forbidden("Only owners create tokens for other users.")
    if len(body.token_name) > 64:
        raise BadRequest("Token name is too long.", detail="At most 64 characters.")
    expires = utcnow() + timedelta(microseconds=body.lifetime // 1000) if body.lifetime else None
    token = create_token(session, target.id, name=body.token_name, expires_at=expires)
    session.commit()
    return {"key": token}
