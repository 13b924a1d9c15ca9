"""``POST /api/v2/authcheck`` and the ``agents`` experiment gate.

The gate tests build second, in-process apps with their own settings (the farm's app runs
with ``AGENTFARM_EXPERIMENTS=agents``); they share the farm's database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse

from agentfarm.settings import Settings
from api_shim.app import create_app
from tests.fixtures.farm import Caller, Farm, make_caller

AUTHCHECK = "/api/v2/authcheck"
CHATS = "/api/experimental/chats"
REQUIRED = "Agents functionality requires enabling the 'agents' experiment."


def check(resource_type: str, action: str, **obj: Any) -> dict[str, Any]:
    return {"object": {"resource_type": resource_type, **obj}, "action": action}


def ask(caller: Caller, **checks: dict[str, Any]) -> dict[str, bool]:
    resp = caller.http.post(AUTHCHECK, json={"checks": checks})
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def roles(farm: Farm) -> Iterator[dict[str, Caller]]:
    callers = {
        "owner": make_caller(farm.base_url, roles=["owner", "member"]),
        "user-admin": make_caller(farm.base_url, roles=["user-admin", "member"]),
        "member": make_caller(farm.base_url, roles=["member", "agents-access"]),
        "no-access": make_caller(farm.base_url, roles=["member"]),
    }
    yield callers
    for c in callers.values():
        c.http.close()


def test_authcheck_answers_per_role(roles: dict[str, Caller]) -> None:
    member = roles["member"]
    chat = member.create_chat("[[reply: hi]]")
    default_org = chat["organization_id"]
    checks = {
        "create_chat": check("chat", "create", owner_id="me", organization_id=default_org),
        "create_chat_elsewhere": check(
            "chat", "create", owner_id="me", organization_id=str(uuid.uuid4())
        ),
        "read_members_chat": check("chat", "read", resource_id=chat["id"]),
        "update_deployment": check("deployment_config", "update"),
        "create_user": check("user", "create"),
        "assign_roles": check("assign_role", "assign"),
        "read_org": check("organization", "read", organization_id=default_org),
        "manage_groups": check("group", "create", organization_id=default_org),
        "any_org_group": check("group", "read", any_org=True),
        "unknown": check("starship", "read"),
    }
    expected = {
        "owner": {"create_chat": True, "update_deployment": True, "create_user": True,
                  "assign_roles": True, "manage_groups": True},
        "user-admin": {"create_user": True, "assign_roles": True, "manage_groups": True},
        "member": {"create_chat": True, "read_members_chat": True},
        "no-access": {},
    }  # fmt: skip
    for role, caller in roles.items():
        answers = ask(caller, **checks)
        want = {name: expected[role].get(name, False) for name in checks}
        want["read_org"] = want["any_org_group"] = True  # every caller is in the default org
        assert answers == want, role


def test_authcheck_resolves_me_and_refuses_bad_requests(roles: dict[str, Caller]) -> None:
    member, other = roles["member"], roles["no-access"]
    mine = check("user", "read", owner_id="me")
    theirs = check("user", "read", owner_id=str(other.user_id))
    assert ask(member, mine=mine, theirs=theirs) == {"mine": True, "theirs": False}
    missing = member.http.post(AUTHCHECK, json={"checks": {"x": {"action": "read"}}})
    assert missing.status_code == 400
    assert (
        missing.json()["message"] == 'Object\'s "resource_type" field must be defined for key "x".'
    )
    bad_id = member.http.post(
        AUTHCHECK, json={"checks": {"x": check("chat", "read", resource_id="nope")}}
    )
    assert bad_id.status_code == 400
    many = {f"c{i}": check("chat", "read", resource_id=str(uuid.uuid4())) for i in range(11)}
    assert member.http.post(AUTHCHECK, json={"checks": many}).status_code == 400
    gone = ask(member, gone=check("chat", "read", resource_id=str(uuid.uuid4())))
    assert gone == {"gone": False}


def app_client(farm: Farm, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(**settings)))


@pytest.mark.parametrize("experiments", ["", "*", "agents-beta", "*,other"])
def test_chat_routes_need_the_agents_experiment_by_name(
    farm: Farm, caller: Caller, experiments: str
) -> None:
    client = app_client(farm, experiments=experiments)
    headers = {"Coder-Session-Token": caller.token}
    for method, path in [
        ("GET", CHATS),
        ("POST", CHATS),
        ("GET", f"{CHATS}/models"),
        ("GET", f"{CHATS}/{uuid.uuid4()}"),
        ("PUT", f"{CHATS}/config/retention-days"),
        ("GET", "/api/experimental/mcp/servers"),
    ]:
        resp = client.request(method, path, headers=headers, json={})
        assert resp.status_code == 403, (method, path)
        assert resp.json() == {"message": REQUIRED}
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect(f"{CHATS}/watch", headers=headers):
            pass
    assert denied.value.status_code == 403 and denied.value.json() == {"message": REQUIRED}
    # Everything outside the chat routes works as usual.
    me = client.get("/api/v2/users/me", headers=headers)
    assert me.status_code == 200 and me.json()["id"] == str(caller.user_id)


def test_naming_agents_enables_the_chat_routes(farm: Farm, caller: Caller) -> None:
    client = app_client(farm, experiments=" other , agents")
    resp = client.get(CHATS, headers={"Coder-Session-Token": caller.token})
    assert resp.status_code == 200 and resp.json() == []


def create_user(client: TestClient, owner: Caller, **body: Any) -> dict[str, Any]:
    name = f"x-{uuid.uuid4().hex[:10]}"
    resp = client.post(
        "/api/v2/users",
        headers={"Coder-Session-Token": owner.token},
        json={"username": name, "email": f"{name}@example.com", **body},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def role_names(user: dict[str, Any]) -> list[str]:
    return [r["name"] for r in user["roles"]]


def test_new_users_get_agents_access_only_while_the_experiment_is_on(
    farm: Farm, roles: dict[str, Caller]
) -> None:
    owner = roles["owner"]
    off = app_client(farm, experiments="")
    assert role_names(create_user(off, owner)) == []
    on = app_client(farm, experiments="agents")
    assert role_names(create_user(on, owner)) == ["agents-access"]


def test_role_sync_users_get_their_roles_from_the_identity_provider(
    farm: Farm, roles: dict[str, Caller]
) -> None:
    owner = roles["owner"]
    synced = app_client(farm, experiments="agents", oidc_role_sync=True)
    oidc = create_user(synced, owner, login_type="oidc")
    assert oidc["login_type"] == "oidc" and role_names(oidc) == []
    assert role_names(create_user(synced, owner, login_type="github")) == ["agents-access"]
    resp = synced.put(
        f"/api/v2/users/{oidc['id']}/roles",
        headers={"Coder-Session-Token": owner.token},
        json={"roles": ["agents-access"]},
    )
    assert resp.status_code == 400
    assert resp.json()["message"] == "Cannot modify roles for OIDC users when role sync is enabled."
    # Without role sync an OIDC user is like any other.
    plain = app_client(farm, experiments="agents")
    assert role_names(create_user(plain, owner, login_type="oidc")) == ["agents-access"]
