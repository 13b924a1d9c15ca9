"""The RBAC matrix: every route of the app × every kind of caller → the expected status.

The routes are enumerated from the app itself, so a new route without a row in
``tests/e2e/rbac_cases.py`` fails ``test_every_route_has_an_expectation``. Each cell is one
request against one shared set of users and resources (built once for the module).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.routing import WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from agentfarm.settings import Settings
from api_shim.app import create_app
from models import db
from tests.e2e.rbac_cases import CASES, ROLES, Case
from tests.fixtures.farm import Caller, Farm, make_caller

ROLE_GRANTS = {
    "owner": ["owner", "member"],
    "user-admin": ["user-admin", "member"],
    "member": ["member", "agents-access"],
    "no-access": ["member"],
    "other": ["member", "agents-access"],
}


def flat_routes(routes: list[Any]) -> Iterator[Any]:
    """The app's routes with their full paths (FastAPI keeps included routers nested)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is None:
            yield route
        else:
            for ctx in contexts():
                yield ctx.starlette_route or ctx.original_route


def app_routes() -> set[tuple[str, str]]:
    out = set()
    for route in flat_routes(create_app(Settings()).routes):
        if isinstance(route, WebSocketRoute):
            out.add(("WS", route.path))
        else:
            out |= {(m, route.path) for m in route.methods - {"HEAD"}}
    return out


def test_every_route_has_an_expectation() -> None:
    routes = app_routes()
    assert sorted(routes - set(CASES)) == [], "routes without a row in rbac_cases.CASES"
    assert sorted(set(CASES) - routes) == [], "rows in rbac_cases.CASES for no route"


@dataclass
class World:
    callers: dict[str, Caller]
    anon: httpx.Client
    ids: dict[str, str]


def _workspace_and_template(member: Caller) -> tuple[str, str]:
    from models.identity.bootstrap import default_organization
    from models.workspaces.rules import create_template
    from models.workspaces.tables import Workspace

    with db.session_scope() as session:
        org = default_organization(session)
        template = create_template(
            session, organization_id=org.id, name=f"m-{uuid.uuid4().hex[:8]}"
        )
        workspace = Workspace(
            owner_id=member.user_id, organization_id=org.id, template_id=template.id,
            name="ws", host="local", directory="/nonexistent", status="stopped",
        )  # fmt: skip
        session.add(workspace)
        session.flush()
        return str(template.id), str(workspace.id)


@pytest.fixture(scope="module")
def world(farm: Farm) -> Iterator[World]:
    callers = {
        role: make_caller(farm.base_url, roles=grants) for role, grants in ROLE_GRANTS.items()
    }
    owner, member = callers["owner"], callers["member"]
    org = owner.http.post("/api/v2/organizations", json={"name": f"rbac-{uuid.uuid4().hex[:8]}"})
    org_id = org.json()["id"]
    assert owner.http.post(f"/api/v2/organizations/{org_id}/members/{member.user_id}").is_success
    group = owner.http.post(f"/api/v2/organizations/{org_id}/groups", json={"name": "team"})
    chat = member.create_chat("[[reply: hi]]")
    archived = member.create_chat("[[reply: old]]")
    assert member.http.post(f"/api/experimental/chats/{archived['id']}/archive").status_code == 204
    upload = member.http.post(
        f"/api/experimental/chats/files?organization={chat['organization_id']}",
        content=b"notes",
        headers={
            "Content-Type": "text/plain",
            "Content-Disposition": 'attachment; filename="n.txt"',
        },
    )
    template, workspace = _workspace_and_template(member)
    ids = {
        "chat": chat["id"], "archived_chat": archived["id"], "file": upload.json()["id"],
        "organization": org_id, "group": group.json()["id"], "user": member.username,
        "template": template, "workspace": workspace, "provider_config": "x",
        "model_config": "x", "message": "0", "queuedMessage": "x", "mcp_server": "x",
    }  # fmt: skip
    anon = httpx.Client(base_url=farm.base_url, timeout=30.0)
    yield World(callers, anon, ids)
    anon.close()
    for c in callers.values():
        c.http.close()


def _request(world: World, role: str, method: str, path: str, case: Case) -> int:
    client = world.anon if role == "anon" else world.callers[role].http
    token = {} if role == "anon" else {"Coder-Session-Token": world.callers[role].token}
    if case.kind == "ws":
        url = str(client.base_url).replace("http://", "ws://").rstrip("/") + path
        try:
            with connect(url, additional_headers=token, open_timeout=10):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code
    if case.kind == "sse":
        headers = {"Accept": "text/event-stream"}
        with client.stream(method, path, headers=headers) as resp:
            return resp.status_code
    if case.kind == "raw":
        return client.request(method, path, content=b"data").status_code
    return client.request(method, path, json=case.body).status_code


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "route"), sorted(CASES), ids=lambda v: str(v))
def test_rbac_matrix(world: World, method: str, route: str, role: str) -> None:
    case = CASES[(method, route)]
    path = (case.path or route).format(**world.ids)
    status = _request(world, role, "GET" if method == "WS" else method, path, case)
    assert status == case.expect[role], f"{role} {method} {path}"
