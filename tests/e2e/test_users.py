"""``/api/v2/users``: lookup, listing, creation, site-role assignment and tokens."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.farm import Caller, Farm, make_caller

USERS = "/api/v2/users"
CHATS = "/api/experimental/chats"
TEXT = [{"type": "text", "text": "[[reply: hi]]"}]


def role_names(user: dict[str, Any]) -> list[str]:
    return sorted(r["name"] for r in user["roles"])


def new_name() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def test_me_username_and_uuid_name_the_same_user(caller: Caller, other_caller: Caller) -> None:
    me = caller.http.get(f"{USERS}/me").json()
    assert me["id"] == str(caller.user_id) and me["username"] == caller.username
    # The test farm runs with the agents experiment on: new users get agents-access.
    assert role_names(me) == ["agents-access"]
    assert len(me["organization_ids"]) == 1
    assert set(me) >= {"email", "status", "login_type", "created_at", "last_seen_at"}
    for ref in (caller.username, caller.username.upper(), str(caller.user_id)):
        assert caller.http.get(f"{USERS}/{ref}").json()["id"] == me["id"], ref
    hidden = other_caller.http.get(f"{USERS}/{caller.username}")
    assert hidden.status_code == 404
    assert other_caller.http.get(f"{USERS}/no-such-user").status_code == 404


def test_listing_shows_admins_everyone_and_members_themselves(
    bare_owner: Caller, user_admin: Caller, caller: Caller
) -> None:
    mine = caller.http.get(USERS).json()
    assert mine["count"] == 1 and [u["id"] for u in mine["users"]] == [str(caller.user_id)]
    for admin in (bare_owner, user_admin):
        found = admin.http.get(USERS, params={"q": caller.username}).json()
        assert [u["username"] for u in found["users"]] == [caller.username]
        everyone = admin.http.get(USERS, params={"limit": 1000}).json()
        assert everyone["count"] >= 3 and len(everyone["users"]) == everyone["count"]


def test_owners_and_user_admins_create_users(bare_owner: Caller, user_admin: Caller) -> None:
    for admin in (bare_owner, user_admin):
        name = new_name()
        resp = admin.http.post(USERS, json={"username": name, "email": f"{name}@example.com"})
        assert resp.status_code == 201, resp.text
        user = resp.json()
        assert user["username"] == name and user["login_type"] == "none"
        assert role_names(user) == ["agents-access"]
        default = admin.http.get("/api/v2/organizations/default").json()
        assert user["organization_ids"] == [default["id"]]
        assert admin.http.get(f"{USERS}/{name}").json()["id"] == user["id"]
    dup = bare_owner.http.post(USERS, json={"username": name.upper(), "email": "x@example.com"})
    assert dup.status_code == 409 and dup.json()["message"] == "User already exists."


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"username": "bad name", "email": "a@example.com"}, 400, "Validation failed."),
        ({"username": "me", "email": "a@example.com"}, 400, "Validation failed."),
        ({"username": "okname", "email": "nope"}, 400, "Validation failed."),
        (
            {"username": "okname", "email": "a@example.com", "password": "hunter2hunter2"},
            400,
            "Password authentication is not supported.",
        ),
        (
            {"username": "okname", "email": "a@example.com", "login_type": "saml"},
            400,
            'Unsupported login type "saml" for manually creating new users.',
        ),
        (
            {
                "username": "okname",
                "email": "a@example.com",
                "organization_ids": [str(uuid.UUID(int=7))],
            },
            404,
            f'Organization does not exist with the provided id "{uuid.UUID(int=7)}".',
        ),
    ],
)
def test_create_user_validation(
    bare_owner: Caller, body: dict[str, Any], status: int, message: str
) -> None:
    resp = bare_owner.http.post(USERS, json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["message"] == message


def test_members_cannot_create_users(caller: Caller) -> None:
    resp = caller.http.post(USERS, json={"username": new_name(), "email": "m@example.com"})
    assert resp.status_code == 403


def test_role_assignment_follows_coders_rules(
    farm: Farm, bare_owner: Caller, user_admin: Caller, caller: Caller
) -> None:
    target = make_caller(farm.base_url, roles=["member"])
    try:
        roles_url = f"{USERS}/{target.username}/roles"
        # Without agents-access a member cannot create chats...
        assert target.http.post(CHATS, json={"content": TEXT}).status_code == 403
        # ...a user admin may grant it (and member, implied), but not owner or user-admin.
        granted = user_admin.http.put(roles_url, json={"roles": ["member", "agents-access"]})
        assert granted.status_code == 200 and role_names(granted.json()) == ["agents-access"]
        assert target.http.post(CHATS, json={"content": TEXT}).status_code == 201
        for role in ("owner", "user-admin"):
            refused = user_admin.http.put(roles_url, json={"roles": ["agents-access", role]})
            assert refused.status_code == 403, role
        # An owner grants anything; the user admin may then still revoke agents-access only.
        made = bare_owner.http.put(roles_url, json={"roles": ["agents-access", "user-admin"]})
        assert role_names(made.json()) == ["agents-access", "user-admin"]
        assert user_admin.http.put(roles_url, json={"roles": ["agents-access"]}).status_code == 403
        kept = user_admin.http.put(roles_url, json={"roles": ["user-admin"]})
        assert kept.status_code == 200 and role_names(kept.json()) == ["user-admin"]
        assert target.http.post(CHATS, json={"content": TEXT}).status_code == 403
        assert bare_owner.http.get(roles_url).json() == {
            "roles": ["user-admin"],
            "organization_roles": {
                bare_owner.http.get("/api/v2/organizations/default").json()["id"]: []
            },
        }
        # Nobody changes their own roles; members assign nothing; unknown roles are 400.
        own = bare_owner.http.put(f"{USERS}/me/roles", json={"roles": []})
        assert (
            own.status_code == 400 and own.json()["message"] == "You cannot change your own roles."
        )
        assert caller.http.put(roles_url, json={"roles": []}).status_code == 404
        bogus = bare_owner.http.put(roles_url, json={"roles": ["template-admin"]})
        assert (
            bogus.status_code == 400 and bogus.json()["message"] == 'Invalid role "template-admin".'
        )
    finally:
        target.http.close()


def test_site_roles_say_what_you_may_assign(user_admin: Caller) -> None:
    roles = {r["name"]: r["assignable"] for r in user_admin.http.get(f"{USERS}/roles").json()}
    assert roles == {"owner": False, "user-admin": False, "member": True, "agents-access": True}


def test_tokens_for_yourself_or_as_owner(
    farm: Farm, bare_owner: Caller, user_admin: Caller, caller: Caller, other_caller: Caller
) -> None:
    url = f"{USERS}/{caller.username}/keys/tokens"
    made = bare_owner.http.post(url, json={"token_name": "ci"})
    assert made.status_code == 201
    with httpx.Client(
        base_url=farm.base_url, headers={"Coder-Session-Token": made.json()["key"]}
    ) as c:
        assert c.get(f"{USERS}/me").json()["id"] == str(caller.user_id)
    short = caller.http.post(f"{USERS}/me/keys/tokens", json={"lifetime": 1})  # 1 ns
    assert short.status_code == 201
    with httpx.Client(
        base_url=farm.base_url, headers={"Coder-Session-Token": short.json()["key"]}
    ) as c:
        assert c.get(f"{USERS}/me").status_code == 401  # already expired
    assert user_admin.http.post(url, json={}).status_code == 403
    assert other_caller.http.post(url, json={}).status_code == 404


def test_user_organizations(bare_owner: Caller, caller: Caller, other_caller: Caller) -> None:
    mine = caller.http.get(f"{USERS}/me/organizations").json()
    assert [o["is_default"] for o in mine] == [True]
    assert bare_owner.http.get(f"{USERS}/{caller.username}/organizations").json() == mine
    assert other_caller.http.get(f"{USERS}/{caller.username}/organizations").status_code == 404
