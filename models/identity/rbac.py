"""Who may do what on which resource: agentfarm's subset of Coder's RBAC, as pure functions.

A permission is (resource type, action) granted at one of Coder's three levels:

- **site**: every object of the type (the roles ``owner`` and ``user-admin``);
- **organization**: objects of an organization the subject is a member of;
- **user**: objects the subject owns (``owner_id`` is the subject).

Site roles (``users.rbac_roles``): ``owner`` (everything), ``user-admin`` (users, role
assignment, organization members, groups — Coder's rules), ``member`` (implied for every user)
and ``agents-access`` (Coder's experimental-era site role that gates creating chats, sending,
promoting and posting tool results).

agentfarm is stricter than Coder in one place: chats, chat files and workspaces are private to
their owner. No role reaches another user's chat, file or workspace; a site role only answers
for "any chat" (no ``owner_id``), which is what aggregate views such as cost roll-ups ask.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from models.enums import SiteRole
from models.errors import BadRequest, Forbidden

OWNER, USER_ADMIN = SiteRole.OWNER.value, SiteRole.USER_ADMIN.value
MEMBER, AGENTS_ACCESS = SiteRole.MEMBER.value, SiteRole.AGENTS_ACCESS.value

# Display names as Coder shows them (agents-access: reference §5.9).
ROLE_DISPLAY_NAMES: dict[str, str] = {
    OWNER: "Owner",
    USER_ADMIN: "User Admin",
    MEMBER: "Member",
    AGENTS_ACCESS: "Coder Agents User",
}
SITE_ROLES: tuple[str, ...] = tuple(ROLE_DISPLAY_NAMES)

CRUD = frozenset({"create", "read", "update", "delete"})
# Resource types and the actions each supports (Coder's names).
ACTIONS: dict[str, frozenset[str]] = {
    "user": CRUD | {"read_personal", "update_personal"},
    "assign_role": frozenset({"assign", "unassign", "read"}),
    "organization": CRUD,
    "organization_member": CRUD,
    "group": CRUD,
    "group_member": frozenset({"read"}),
    "deployment_config": frozenset({"read", "update"}),
    "api_key": CRUD,
    "chat": CRUD,
    "file": frozenset({"create", "read"}),
    "template": CRUD,
    "workspace": CRUD,
}
ALL = "*"
PRIVATE_TYPES = frozenset({"chat", "file", "workspace"})

# Site level: role -> resource type -> actions.
SITE: dict[str, dict[str, frozenset[str]]] = {
    OWNER: {t: frozenset({ALL}) for t in ACTIONS},
    USER_ADMIN: {
        "user": ACTIONS["user"],
        "assign_role": ACTIONS["assign_role"],
        "organization": frozenset({"read"}),
        "organization_member": CRUD,
        "group": CRUD,
        "group_member": frozenset({"read"}),
    },
    MEMBER: {"assign_role": frozenset({"read"})},
}
# Organization level: what every member of an organization may do in it (Coder's
# organization-member role with workspace sharing open to members).
ORG_MEMBER: dict[str, frozenset[str]] = {
    "organization": frozenset({"read"}),
    "organization_member": frozenset({"read"}),
    "group": frozenset({"read"}),
    "group_member": frozenset({"read"}),
    "template": frozenset({"read"}),
}
# User level: role -> what it allows on the subject's own objects.
USER_LEVEL: dict[str, dict[str, frozenset[str]]] = {
    MEMBER: {
        "user": frozenset({"read", "read_personal", "update_personal"}),
        "api_key": CRUD,
        "chat": frozenset({"read", "update", "delete"}),
        "file": frozenset({"read"}),
        "workspace": CRUD,
        "organization_member": frozenset({"read"}),
        "group_member": frozenset({"read"}),
    },
    AGENTS_ACCESS: {"chat": frozenset({"create"}), "file": frozenset({"create"})},
}

# Which site roles each role may grant or revoke. Coder's table (coderd/rbac/roles.go
# assignRoles): owners assign every role, user admins only `member`. [inferred] agents-access
# was a site role in the experimental era; letting user admins grant it follows their job
# (managing users) and Coder's later rule that organization admins grant it. A user admin can
# neither make owners nor other user admins, as in Coder.
ASSIGNABLE: dict[str, frozenset[str]] = {
    OWNER: frozenset(SITE_ROLES),
    USER_ADMIN: frozenset({MEMBER, AGENTS_ACCESS}),
}


@dataclass(frozen=True)
class Subject:
    """Who is asking: the user, their site roles and the organizations they belong to."""

    user_id: uuid.UUID
    roles: frozenset[str]
    organization_ids: frozenset[uuid.UUID] = frozenset()


@dataclass(frozen=True)
class Object:
    """What is asked about: a resource type, and optionally its owner and organization."""

    resource_type: str
    owner_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None


def _grants(table: dict[str, frozenset[str]] | None, resource_type: str, action: str) -> bool:
    actions = (table or {}).get(resource_type, frozenset())
    return ALL in actions or action in actions


def can(subject: Subject, action: str, obj: Object) -> bool:
    """Whether ``subject`` may perform ``action`` on ``obj``."""
    if action not in ACTIONS.get(obj.resource_type, frozenset()):
        return False
    owned = obj.owner_id is not None and obj.owner_id == subject.user_id
    if obj.resource_type in PRIVATE_TYPES and obj.owner_id is not None and not owned:
        return False
    if (
        obj.resource_type == "chat"
        and action == "create"
        and obj.organization_id is not None
        and obj.organization_id not in subject.organization_ids
    ):
        return False  # chats live in an organization their owner belongs to (reference §8)
    roles = subject.roles | {MEMBER}
    if any(_grants(SITE.get(role), obj.resource_type, action) for role in roles):
        return True
    if obj.organization_id is not None and obj.organization_id in subject.organization_ids:
        if _grants(ORG_MEMBER, obj.resource_type, action):
            return True
    if owned:
        return any(_grants(USER_LEVEL.get(role), obj.resource_type, action) for role in roles)
    return False


def site_roles_allowed(resource_type: str, action: str) -> frozenset[str]:
    """The site roles that may perform ``action`` on every object of ``resource_type``."""
    return frozenset(r for r, table in SITE.items() if _grants(table, resource_type, action))


def has_agents_access(roles: Iterable[str]) -> bool:
    """Whether these site roles may create chats (owners always may)."""
    return bool(set(roles) & {AGENTS_ACCESS, OWNER})


def can_assign(actor_roles: Iterable[str], role: str) -> bool:
    """Whether a holder of ``actor_roles`` may grant or revoke the site role ``role``."""
    return any(role in ASSIGNABLE.get(r, frozenset()) for r in actor_roles)


def validate_role_names(roles: Iterable[str]) -> list[str]:
    """The requested site roles, de-duplicated in order; 400 for a name that is no site role."""
    out: list[str] = []
    for name in roles:
        if name not in ROLE_DISPLAY_NAMES:
            raise BadRequest(
                f'Invalid role "{name}".', detail="Site roles: " + ", ".join(SITE_ROLES)
            )
        if name not in out:
            out.append(name)
    return out


def role_change(
    actor_roles: Iterable[str], current: Iterable[str], requested: Iterable[str]
) -> list[str]:
    """The new site roles of a user whose roles are replaced by ``requested``.

    ``member`` is implied (always kept, never needs assigning). Every role added must be one
    the actor may assign and every role removed one the actor may unassign (403 otherwise);
    roles left unchanged need no permission, as in Coder's ``ChangeRoleSet`` check.
    """
    actor = list(actor_roles)
    wanted = [r for r in validate_role_names(requested) if r != MEMBER]
    have = {r for r in current if r != MEMBER}
    changed = sorted(set(wanted) ^ have)
    denied = [r for r in changed if not can_assign(actor, r)]
    if denied:
        raise Forbidden(
            "Forbidden.",
            detail=f'You are not allowed to assign or remove the role "{denied[0]}".',
        )
    return [MEMBER, *wanted]


def has_role_sync(login_type: str, *, oidc_role_sync: bool) -> bool:
    """Whether a user's site roles come from their identity provider (Coder's OIDC role sync)."""
    return login_type == "oidc" and oidc_role_sync


def initial_site_roles(
    login_type: str, *, agents_experiment: bool, oidc_role_sync: bool
) -> list[str]:
    """The site roles a new user starts with.

    Every user is a ``member``. While the ``agents`` experiment is enabled a new user also gets
    ``agents-access`` (Coder assigns it on user creation then), except when the login type has
    role sync: the identity provider decides that user's roles.
    """
    roles = [MEMBER]
    if agents_experiment and not has_role_sync(login_type, oidc_role_sync=oidc_role_sync):
        roles.append(AGENTS_ACCESS)
    return roles


def role_json(name: str) -> dict[str, str]:
    """A site role as Coder's SlimRole."""
    return {"name": name, "display_name": ROLE_DISPLAY_NAMES.get(name, name)}


def visible_roles(roles: Iterable[str]) -> list[dict[str, str]]:
    """A user's site roles as Coder shows them: ``member`` is implied and not listed."""
    return [role_json(r) for r in roles if r != MEMBER]
