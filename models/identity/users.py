"""Users as Coder's ``/api/v2/users`` shows them: lookup (``me``, username, UUID), listing,
creation, site-role changes, and the RBAC subject of a signed-in user."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.base import utcnow
from models.chat.wire import ts
from models.errors import BadRequest, Conflict, NotFound
from models.identity import rbac, user_refs
from models.identity.bootstrap import create_user, default_organization
from models.identity.tables import ApiKey, Organization, OrganizationMember, User

# Coder's name rule (codersdk.NameValid): letters, digits and single inner hyphens, ≤ 32.
NAME_RE = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
MAX_NAME = 32
LOGIN_TYPES = ("none", "password", "github", "oidc")


def user_not_found() -> NotFound:
    """Coder's 404 for a user that does not exist or that the caller may not see."""
    return NotFound("Resource not found or you do not have access to this resource")


def validate_name(name: str, field: str) -> str:
    """400 unless ``name`` is a valid Coder name (``me`` is reserved for users)."""
    if not name or len(name) > MAX_NAME or not NAME_RE.match(name) or name.lower() == "me":
        raise BadRequest(
            "Validation failed.",
            validations=[
                {
                    "field": field,
                    "detail": "Must be 1-32 letters, digits or single inner hyphens (not 'me').",
                }
            ],
        )
    return name


def find_user(session: Session, ref: str, caller: User) -> User | None:
    """The live user a route parameter names (``me``, a UUID or a username), or None."""
    try:
        return user_refs.find_user(session, caller, ref)
    except user_refs.InvalidUserRef:
        return None


def organization_ids(session: Session, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """Each user's organization ids (as strings, oldest membership first)."""
    out: dict[uuid.UUID, list[str]] = defaultdict(list)
    if not user_ids:
        return out
    rows = session.exec(
        select(OrganizationMember)
        .where(col(OrganizationMember.user_id).in_(user_ids))
        .order_by(col(OrganizationMember.created_at))
    ).all()
    for row in rows:
        out[row.user_id].append(str(row.organization_id))
    return out


def subject_for(session: Session, user: User) -> rbac.Subject:
    """The RBAC subject of a signed-in user: their site roles and organizations."""
    orgs = session.exec(
        select(OrganizationMember.organization_id).where(OrganizationMember.user_id == user.id)
    ).all()
    return rbac.Subject(user.id, frozenset(user.rbac_roles or []), frozenset(orgs))


def _last_seen(session: Session, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    if not user_ids:
        return {}
    rows = session.execute(
        select(ApiKey.user_id, sa.func.max(ApiKey.last_used))
        .where(col(ApiKey.user_id).in_(user_ids))
        .group_by(ApiKey.user_id)  # type: ignore[arg-type]
    ).all()
    return {uid: last for uid, last in rows}


def users_json(session: Session, users: list[User]) -> list[dict[str, Any]]:
    """Users as Coder's User objects (organization ids, visible site roles, last seen)."""
    ids = [u.id for u in users]
    orgs, seen = organization_ids(session, ids), _last_seen(session, ids)
    return [
        {
            "id": str(u.id),
            "username": u.username,
            "email": u.email,
            "name": u.name,
            "avatar_url": "",
            "created_at": ts(u.created_at),
            "updated_at": ts(u.updated_at),
            "last_seen_at": ts(seen.get(u.id) or u.created_at),
            "status": u.status,
            "login_type": u.login_type,
            "theme_preference": "",
            "organization_ids": orgs.get(u.id, []),
            "roles": rbac.visible_roles(u.rbac_roles or []),
        }
        for u in users
    ]


def user_json(session: Session, user: User) -> dict[str, Any]:
    return users_json(session, [user])[0]


def list_users(
    session: Session, subject: rbac.Subject, *, q: str, limit: int, offset: int
) -> tuple[list[User], int]:
    """The users the subject may read (all for owners and user admins, else themselves),
    filtered by a case-insensitive substring of username, name or email."""
    stmt = select(User).where(User.deleted.is_(False))  # type: ignore[attr-defined]
    if not rbac.can(subject, "read", rbac.Object("user")):
        stmt = stmt.where(User.id == subject.user_id)
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(
            sa.or_(
                sa.func.lower(User.username).like(pattern),
                sa.func.lower(User.name).like(pattern),
                sa.func.lower(User.email).like(pattern),
            )
        )
    count = session.exec(select(sa.func.count()).select_from(stmt.subquery())).one()
    rows = session.exec(
        stmt.order_by(sa.func.lower(User.username)).offset(offset).limit(limit)
    ).all()
    return list(rows), int(count)


def resolve_organizations(session: Session, ids: list[uuid.UUID]) -> list[Organization]:
    """The organizations to place a new user in; the nil UUID (or none) is the default one."""
    out: list[Organization] = []
    for org_id in ids or [uuid.UUID(int=0)]:
        org = (
            default_organization(session) if org_id.int == 0 else session.get(Organization, org_id)
        )
        if org is None:
            raise NotFound(f'Organization does not exist with the provided id "{org_id}".')
        if org not in out:
            out.append(org)
    return out


def create_api_user(
    session: Session,
    *,
    username: str,
    email: str,
    name: str,
    login_type: str,
    organizations: list[Organization],
    roles: list[str],
) -> User:
    """Create a user in the given organizations with the given site roles (409 if the
    username or email is taken)."""
    validate_name(username, "username")
    if not email or "@" not in email:
        raise BadRequest(
            "Validation failed.", validations=[{"field": "email", "detail": "Must be an email."}]
        )
    if login_type not in LOGIN_TYPES:
        raise BadRequest(f'Unsupported login type "{login_type}" for manually creating new users.')
    taken = session.exec(
        select(User).where(
            sa.or_(
                sa.func.lower(User.username) == username.lower(),
                sa.func.lower(User.email) == email.lower(),
            )
        )
    ).first()
    if taken is not None:
        raise Conflict("User already exists.")
    user = create_user(
        session,
        username=username,
        email=email,
        name=name,
        roles=roles,
        organization=organizations[0],
        login_type=login_type,
    )
    for org in organizations[1:]:
        session.add(OrganizationMember(organization_id=org.id, user_id=user.id))
    session.flush()
    return user


def set_site_roles(
    session: Session, actor: User, target: User, requested: list[str], *, oidc_role_sync: bool
) -> User:
    """Replace ``target``'s site roles as ``actor`` (Coder's ``PUT /users/{user}/roles``)."""
    if rbac.has_role_sync(target.login_type, oidc_role_sync=oidc_role_sync):
        raise BadRequest(
            "Cannot modify roles for OIDC users when role sync is enabled.",
            detail="All role changes must come from the OIDC identity provider.",
        )
    if actor.id == target.id:
        raise BadRequest("You cannot change your own roles.")
    target.rbac_roles = rbac.role_change(actor.rbac_roles or [], target.rbac_roles or [], requested)
    target.updated_at = utcnow()
    session.flush()
    return target
