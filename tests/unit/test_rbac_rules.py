"""models.rbac: the permission table, role assignment and the initial roles of a new user."""

from __future__ import annotations

import uuid

import pytest

from models.errors import BadRequest, Forbidden
from models.identity import rbac

ME, SOMEONE = uuid.uuid4(), uuid.uuid4()
MY_ORG, OTHER_ORG = uuid.uuid4(), uuid.uuid4()


def subject(*roles: str) -> rbac.Subject:
    return rbac.Subject(ME, frozenset(roles), frozenset({MY_ORG}))


@pytest.mark.parametrize(
    ("roles", "action", "obj", "allowed"),
    [
        # Chats: creating needs agents-access (or owner), in one of your organizations.
        ((), "create", rbac.Object("chat", ME, MY_ORG), False),
        (("agents-access",), "create", rbac.Object("chat", ME, MY_ORG), True),
        (("agents-access",), "create", rbac.Object("chat", ME, OTHER_ORG), False),
        (("agents-access",), "create", rbac.Object("chat", SOMEONE), False),
        (("owner",), "create", rbac.Object("chat", ME), True),
        (("owner",), "create", rbac.Object("chat", ME, OTHER_ORG), False),
        # ...reading your own needs nothing; another user's chat is private, even to owners.
        ((), "read", rbac.Object("chat", ME), True),
        (("owner",), "read", rbac.Object("chat", SOMEONE), False),
        (("owner",), "read", rbac.Object("workspace", SOMEONE), False),
        (("owner",), "read", rbac.Object("chat"), True),
        ((), "read", rbac.Object("chat"), False),
        # Users: yourself, or everyone as owner / user admin.
        ((), "read", rbac.Object("user", ME), True),
        ((), "read", rbac.Object("user", SOMEONE), False),
        (("user-admin",), "read", rbac.Object("user", SOMEONE), True),
        (("user-admin",), "create", rbac.Object("user"), True),
        ((), "create", rbac.Object("user"), False),
        # Organizations and groups: members read theirs; admins manage.
        ((), "read", rbac.Object("organization", None, MY_ORG), True),
        ((), "read", rbac.Object("organization", None, OTHER_ORG), False),
        (("user-admin",), "read", rbac.Object("organization", None, OTHER_ORG), True),
        (("user-admin",), "update", rbac.Object("organization", None, MY_ORG), False),
        (("owner",), "update", rbac.Object("organization", None, OTHER_ORG), True),
        ((), "read", rbac.Object("group", None, MY_ORG), True),
        ((), "update", rbac.Object("group", None, MY_ORG), False),
        (("user-admin",), "delete", rbac.Object("group", None, OTHER_ORG), True),
        ((), "create", rbac.Object("organization_member", None, MY_ORG), False),
        (("user-admin",), "create", rbac.Object("organization_member", None, OTHER_ORG), True),
        # Deployment settings: owners only.
        (("user-admin",), "update", rbac.Object("deployment_config"), False),
        (("owner",), "update", rbac.Object("deployment_config"), True),
        # Tokens: your own, or anyone's as owner.
        ((), "create", rbac.Object("api_key", ME), True),
        (("user-admin",), "create", rbac.Object("api_key", SOMEONE), False),
        (("owner",), "create", rbac.Object("api_key", SOMEONE), True),
        # Unknown types and actions are never allowed.
        (("owner",), "read", rbac.Object("spaceship"), False),
        (("owner",), "launch", rbac.Object("chat", ME), False),
    ],
)
def test_permission_table(
    roles: tuple[str, ...], action: str, obj: rbac.Object, allowed: bool
) -> None:
    assert rbac.can(subject(*roles), action, obj) is allowed


@pytest.mark.parametrize(
    ("actor", "current", "requested", "result"),
    [
        (["owner"], ["member"], ["owner"], ["member", "owner"]),
        (["owner"], ["member", "owner"], [], ["member"]),
        (["user-admin"], ["member"], ["agents-access"], ["member", "agents-access"]),
        (["user-admin"], ["member", "agents-access"], ["member"], ["member"]),
        # Unchanged roles need no permission: a user admin may edit an owner's other roles.
        (
            ["user-admin"],
            ["member", "owner"],
            ["owner", "agents-access"],
            ["member", "owner", "agents-access"],
        ),  # fmt: skip
        (
            ["user-admin"],
            ["member"],
            ["agents-access", "agents-access"],
            ["member", "agents-access"],
        ),
    ],
)
def test_role_changes_allowed(
    actor: list[str], current: list[str], requested: list[str], result: list[str]
) -> None:
    assert rbac.role_change(actor, current, requested) == result


@pytest.mark.parametrize(
    ("actor", "current", "requested"),
    [
        (["user-admin"], ["member"], ["owner"]),
        (["user-admin"], ["member"], ["user-admin"]),
        (["user-admin"], ["member", "owner"], []),
        (["member", "agents-access"], ["member"], ["agents-access"]),
    ],
)
def test_role_changes_refused(actor: list[str], current: list[str], requested: list[str]) -> None:
    with pytest.raises(Forbidden):
        rbac.role_change(actor, current, requested)


def test_unknown_role_is_400() -> None:
    with pytest.raises(BadRequest) as err:
        rbac.role_change(["owner"], ["member"], ["template-admin"])
    assert err.value.message == 'Invalid role "template-admin".'


@pytest.mark.parametrize(
    ("login_type", "experiment", "role_sync", "roles"),
    [
        ("password", True, False, ["member", "agents-access"]),
        ("oidc", True, False, ["member", "agents-access"]),
        ("oidc", True, True, ["member"]),
        ("github", True, True, ["member", "agents-access"]),
        ("password", False, False, ["member"]),
    ],
)
def test_initial_site_roles(
    login_type: str, experiment: bool, role_sync: bool, roles: list[str]
) -> None:
    got = rbac.initial_site_roles(
        login_type, agents_experiment=experiment, oidc_role_sync=role_sync
    )
    assert got == roles


def test_visible_roles_hide_the_implied_member_role() -> None:
    assert rbac.visible_roles(["member", "owner"]) == [{"name": "owner", "display_name": "Owner"}]
