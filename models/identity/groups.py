"""Groups of an organization and their members, as Coder's ``/api/v2/groups`` shows them.

The Everyone group of an organization (id = the organization's id) always exists and holds
every member of the organization implicitly; other groups hold their ``group_members`` rows.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.base import utcnow
from models.errors import BadRequest, Conflict, NotFound
from models.identity import rbac
from models.identity.tables import (
    EVERYONE_GROUP,
    Group,
    GroupMember,
    Organization,
    OrganizationMember,
    User,
)
from models.identity.users import users_json, validate_name

REDUCED_USER_KEYS = (
    "id", "username", "email", "name", "avatar_url", "created_at", "updated_at",
    "last_seen_at", "status", "login_type", "theme_preference",
)  # fmt: skip


def group_not_found() -> NotFound:
    return NotFound("Resource not found or you do not have access to this resource")


def readable_group(session: Session, subject: rbac.Subject, ref: str) -> Group:
    """The group with this id, if the subject may read it (404 otherwise)."""
    try:
        group = session.get(Group, uuid.UUID(ref))
    except ValueError:
        raise BadRequest(f'Invalid group ID "{ref}".') from None
    if group is None or not rbac.can(subject, "read", group_object(group)):
        raise group_not_found()
    return group


def group_object(group: Group) -> rbac.Object:
    return rbac.Object("group", None, group.organization_id)


def list_groups(session: Session, org: Organization) -> list[Group]:
    """The organization's groups, Everyone first."""
    rows = session.exec(select(Group).where(Group.organization_id == org.id)).all()
    return sorted(rows, key=lambda g: (not g.is_everyone, g.name.lower()))


def member_users(session: Session, group: Group) -> list[User]:
    """The group's members (for Everyone: the organization's members)."""
    if group.is_everyone:
        stmt = select(User).join(OrganizationMember, col(OrganizationMember.user_id) == User.id)
        stmt = stmt.where(OrganizationMember.organization_id == group.organization_id)
    else:
        stmt = select(User).join(GroupMember, col(GroupMember.user_id) == User.id)
        stmt = stmt.where(GroupMember.group_id == group.id)
    stmt = stmt.where(User.deleted.is_(False)).order_by(sa.func.lower(User.username))  # type: ignore[attr-defined]
    return list(session.exec(stmt).all())


def group_json(session: Session, group: Group) -> dict[str, Any]:
    """Coder's Group: members as ReducedUser objects."""
    org = session.get(Organization, group.organization_id)
    assert org is not None  # groups cascade with their organization
    users = member_users(session, group)
    members = [{k: u[k] for k in REDUCED_USER_KEYS} for u in users_json(session, users)]
    return {
        "id": str(group.id),
        "name": group.name,
        "display_name": group.display_name,
        "organization_id": str(group.organization_id),
        "organization_name": org.name,
        "organization_display_name": org.display_name or org.name,
        "members": members,
        "total_member_count": len(members),
        "avatar_url": group.avatar_url,
        "quota_allowance": 0,
        "source": "user",
    }


def _check_name(session: Session, org_id: uuid.UUID, name: str, *, current: Group | None) -> str:
    validate_name(name, "name")
    if name.lower() == EVERYONE_GROUP.lower():
        raise BadRequest("Invalid group name.", detail=f"{EVERYONE_GROUP} is a reserved name.")
    clash = session.exec(
        select(Group).where(
            Group.organization_id == org_id, sa.func.lower(Group.name) == name.lower()
        )
    ).first()
    if clash is not None and clash is not current:
        raise Conflict(f'A group named "{name}" already exists.')
    return name


def create_group(
    session: Session, org: Organization, *, name: str, display_name: str, avatar_url: str
) -> Group:
    group = Group(
        organization_id=org.id,
        name=_check_name(session, org.id, name, current=None),
        display_name=display_name,
        avatar_url=avatar_url,
    )
    session.add(group)
    session.flush()
    return group


def _user_ids(raw: list[str], org: Organization, session: Session) -> list[uuid.UUID]:
    """Parse ids and check each names a member of the group's organization."""
    out: list[uuid.UUID] = []
    for value in raw:
        try:
            user_id = uuid.UUID(value)
        except ValueError:
            raise BadRequest(f'ID "{value}" must be a valid user UUID.') from None
        if session.get(OrganizationMember, (org.id, user_id)) is None:
            raise BadRequest(f'User "{value}" must be a member of organization "{org.name}".')
        out.append(user_id)
    return out


def update_group(session: Session, group: Group, changes: dict[str, Any]) -> None:
    """Apply Coder's PatchGroupRequest: name, display_name, avatar_url, add_users,
    remove_users (the Everyone group can be renamed or repopulated by nobody)."""
    org = session.get(Organization, group.organization_id)
    assert org is not None
    add, remove = changes.get("add_users") or [], changes.get("remove_users") or []
    if group.is_everyone and (add or remove):
        raise BadRequest(f'Cannot add or remove users from the "{EVERYONE_GROUP}" group.')
    both = set(add) & set(remove)
    if both:
        raise BadRequest(f'Cannot both add and remove user "{sorted(both)[0]}".')
    name = changes.get("name")
    if name is not None and name != group.name:
        if group.is_everyone:
            raise BadRequest(f'Cannot rename the "{EVERYONE_GROUP}" group.')
        group.name = _check_name(session, group.organization_id, name, current=group)
    if changes.get("display_name") is not None:
        group.display_name = changes["display_name"]
    if changes.get("avatar_url") is not None:
        group.avatar_url = changes["avatar_url"]
    for user_id in _user_ids(add, org, session):
        if session.get(GroupMember, (group.id, user_id)) is None:
            session.add(GroupMember(group_id=group.id, user_id=user_id))
    removing = [uuid.UUID(v) for v in remove if _is_uuid(v, "user")]
    if removing:
        session.execute(
            sa.delete(GroupMember).where(
                col(GroupMember.group_id) == group.id, col(GroupMember.user_id).in_(removing)
            )
        )
    group.updated_at = utcnow()
    session.flush()


def _is_uuid(value: str, what: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        raise BadRequest(f'ID "{value}" must be a valid {what} UUID.') from None
    return True


def delete_group(session: Session, group: Group) -> None:
    if group.is_everyone:
        raise BadRequest(f'Cannot delete the "{EVERYONE_GROUP}" group.')
    session.delete(group)
    session.flush()
