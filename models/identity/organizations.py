"""Organizations and their members as Coder's ``/api/v2/organizations`` shows them."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.base import utcnow
from models.chat.wire import ts
from models.errors import BadRequest, Conflict, Forbidden, NotFound
from models.identity import rbac
from models.identity.tables import Group, GroupMember, Organization, OrganizationMember, User
from models.identity.users import validate_name

MAX_DESCRIPTION = 128


def org_not_found() -> NotFound:
    return NotFound("Resource not found or you do not have access to this resource")


def find_organization(session: Session, ref: str) -> Organization | None:
    """An organization by UUID, by name, or ``default``."""
    if ref == "default":
        return session.exec(select(Organization).where(Organization.is_default)).first()
    try:
        return session.get(Organization, uuid.UUID(ref))
    except ValueError:
        return session.exec(
            select(Organization).where(sa.func.lower(Organization.name) == ref.lower())
        ).first()


def readable_organization(session: Session, subject: rbac.Subject, ref: str) -> Organization:
    """The organization ``ref`` names, if the subject may read it (404 otherwise)."""
    org = find_organization(session, ref)
    if org is None or not rbac.can(subject, "read", rbac.Object("organization", None, org.id)):
        raise org_not_found()
    return org


def organization_json(org: Organization) -> dict[str, Any]:
    return {
        "id": str(org.id),
        "name": org.name,
        "display_name": org.display_name or org.name,
        "description": org.description,
        "icon": org.icon,
        "is_default": org.is_default,
        "created_at": ts(org.created_at),
        "updated_at": ts(org.updated_at),
    }


def list_organizations(session: Session, subject: rbac.Subject) -> list[Organization]:
    """Every organization for those who may read all, else the subject's own."""
    stmt = select(Organization).order_by(col(Organization.created_at))
    if not rbac.can(subject, "read", rbac.Object("organization")):
        stmt = stmt.where(col(Organization.id).in_(subject.organization_ids))
    return list(session.exec(stmt).all())


def _check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise BadRequest(
            "Validation failed.",
            validations=[{"field": "description", "detail": f"At most {MAX_DESCRIPTION} chars."}],
        )
    return description


def create_organization(
    session: Session, creator: User, *, name: str, display_name: str, description: str, icon: str
) -> Organization:
    """A new organization (its Everyone group comes with it) with the creator as a member."""
    validate_name(name, "name")
    if find_organization(session, name) is not None or name == "default":
        raise Conflict(f'Organization already exists with the name "{name}".')
    org = Organization(
        name=name,
        display_name=display_name or name,
        description=_check_description(description),
        icon=icon,
    )
    session.add(org)
    session.flush()
    session.add(OrganizationMember(organization_id=org.id, user_id=creator.id))
    session.flush()
    return org


def update_organization(session: Session, org: Organization, changes: dict[str, Any]) -> None:
    """Apply a PATCH (name, display_name, description, icon)."""
    name = changes.get("name")
    if name is not None and name != org.name:
        validate_name(name, "name")
        if find_organization(session, name) is not None or name == "default":
            raise Conflict(f'Organization already exists with the name "{name}".')
        org.name = name
    if changes.get("display_name") is not None:
        org.display_name = changes["display_name"]
    if changes.get("description") is not None:
        org.description = _check_description(changes["description"])
    if changes.get("icon") is not None:
        org.icon = changes["icon"]
    org.updated_at = utcnow()
    session.flush()


def members(session: Session, org: Organization) -> list[tuple[OrganizationMember, User]]:
    rows = session.exec(
        select(OrganizationMember, User)
        .join(User, col(User.id) == OrganizationMember.user_id)
        .where(OrganizationMember.organization_id == org.id, User.deleted.is_(False))  # type: ignore[attr-defined]
        .order_by(sa.func.lower(User.username))
    ).all()
    return list(rows)


def member_json(member: OrganizationMember, user: User) -> dict[str, Any]:
    """Coder's OrganizationMemberWithUserData."""
    return {
        "user_id": str(user.id),
        "organization_id": str(member.organization_id),
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "avatar_url": "",
        "roles": [
            {**rbac.role_json(r), "organization_id": str(member.organization_id)}
            for r in member.roles or []
        ],
        "global_roles": rbac.visible_roles(user.rbac_roles or []),
        "created_at": ts(member.created_at),
        "updated_at": ts(member.updated_at),
    }


def add_member(session: Session, org: Organization, user: User) -> OrganizationMember:
    if session.get(OrganizationMember, (org.id, user.id)) is not None:
        raise Conflict("User is already an organization member.")
    member = OrganizationMember(organization_id=org.id, user_id=user.id)
    session.add(member)
    session.flush()
    return member


def remove_member(session: Session, actor: User, org: Organization, user: User) -> None:
    """Remove a member and their memberships of the organization's groups. Their chats stay
    in the organization; they cannot create new ones there."""
    if actor.id == user.id:
        raise BadRequest("You cannot remove yourself from an organization.")
    member = session.get(OrganizationMember, (org.id, user.id))
    if member is None:
        raise NotFound("Organization member not found.")
    org_groups = select(Group.id).where(Group.organization_id == org.id)
    session.execute(
        sa.delete(GroupMember).where(
            col(GroupMember.user_id) == user.id, col(GroupMember.group_id).in_(org_groups)
        )
    )
    session.delete(member)
    session.flush()


def chat_organization(session: Session, user: User, org_id: uuid.UUID | None) -> uuid.UUID:
    """The organization a new chat of ``user`` goes to, which they must belong to (403
    otherwise, reference §1.5). Without one (an agentfarm extension: Coder requires it): the
    default organization if they are a member of it, else their oldest membership."""
    if org_id is not None:
        if session.get(OrganizationMember, (org_id, user.id)) is None:
            raise Forbidden("You are not a member of the specified organization.")
        return org_id
    memberships = session.exec(
        select(OrganizationMember)
        .where(OrganizationMember.user_id == user.id)
        .order_by(col(OrganizationMember.created_at))
    ).all()
    if not memberships:
        raise Forbidden(
            "You are not a member of the specified organization.",
            detail="You belong to no organization; an administrator can add you to one.",
        )
    default = session.exec(select(Organization).where(Organization.is_default)).first()
    if default is not None and any(m.organization_id == default.id for m in memberships):
        return default.id
    return memberships[0].organization_id
