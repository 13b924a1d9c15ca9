"""The RBAC matrix's table: for every route of the app, one request and the status each caller
gets (tests/e2e/test_rbac.py runs it; a route missing here fails that test).

Callers: ``owner`` (site owner), ``user-admin``, ``member`` (agents-access; owns the chat,
file and workspace under test and belongs to the second organization), ``no-access`` (a member
without agents-access), ``other`` (another user with agents-access) and ``anon`` (no token).

Requests that change things are built so that an authorized caller fails validation instead
(e.g. an empty message): the status then proves the caller got past authorization, and no
cell changes what another cell sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("owner", "user-admin", "member", "no-access", "other", "anon")
C = "/api/experimental/chats"
ORG = "/api/v2/organizations/{organization}"
MCP = "/api/experimental/mcp/servers"
TOO_LONG = "x" * (128 * 1024 + 1)


def E(owner: int, admin: int, member: int, no_access: int, other: int, anon: int = 401) -> dict:
    return dict(zip(ROLES, (owner, admin, member, no_access, other, anon), strict=True))


PUBLIC = E(200, 200, 200, 200, 200, 200)
ANYONE = E(200, 200, 200, 200, 200)
EVERYONE_400 = E(400, 400, 400, 400, 400)  # any user gets past auth; the request is invalid
OWNER_ONLY_READ = E(200, 403, 403, 403, 403)  # owner succeeds
OWNER_ONLY_WRITE = E(400, 403, 403, 403, 403)  # owner gets past auth, fails validation
OWNER_ONLY_404 = E(200, 404, 404, 404, 404)  # hidden settings (reference §1.1)
MEMBERS_OWN = E(404, 404, 200, 404, 404)  # owner-scoped: only the chat's owner
MEMBERS_OWN_400 = E(404, 404, 400, 404, 404)
# Creating and sending: agents-access first (403), then ownership (404).
AGENTS_CREATE = E(400, 403, 400, 403, 400)
AGENTS_ON_CHAT = E(404, 403, 400, 403, 404)
# The second organization: owner and member belong to it; user admins see every one.
ORG_READ = E(200, 200, 200, 404, 404)
ORG_ADMIN_WRITE = E(400, 400, 403, 404, 404)  # owner / user-admin get past auth
USER_READ = E(200, 200, 200, 404, 404)  # the member's user record


@dataclass(frozen=True)
class Case:
    expect: dict[str, int]
    path: str | None = None  # default: the route's path with the world's ids
    body: Any = None
    kind: str = "http"  # http | raw (bytes body) | sse | ws
    extra: dict[str, Any] = field(default_factory=dict)


CASES: dict[tuple[str, str], Case] = {
    # FastAPI's own pages and the operational endpoints need no token.
    ("GET", "/openapi.json"): Case(PUBLIC),
    ("GET", "/docs"): Case(PUBLIC),
    ("GET", "/docs/oauth2-redirect"): Case(PUBLIC),
    ("GET", "/redoc"): Case(PUBLIC),
    ("GET", "/healthz"): Case(PUBLIC),
    ("GET", "/metrics"): Case(PUBLIC),
    ("GET", "/api/experimental/farm/status"): Case(OWNER_ONLY_READ),
    # Users
    ("GET", "/api/v2/users"): Case(ANYONE),
    ("POST", "/api/v2/users"): Case(E(400, 400, 403, 403, 403), body={}),
    ("GET", "/api/v2/users/roles"): Case(ANYONE),
    ("GET", "/api/v2/users/{user}"): Case(USER_READ),
    ("GET", "/api/v2/users/{user}/roles"): Case(USER_READ),
    ("PUT", "/api/v2/users/{user}/roles"): Case(
        E(400, 400, 403, 404, 404), body={"roles": ["bogus"]}
    ),
    ("GET", "/api/v2/users/{user}/organizations"): Case(USER_READ),
    ("POST", "/api/v2/users/{user}/keys/tokens"): Case(
        E(400, 403, 400, 404, 404), body={"token_name": "x" * 65}
    ),
    # Organizations, members, groups
    ("GET", "/api/v2/organizations"): Case(ANYONE),
    ("POST", "/api/v2/organizations"): Case(OWNER_ONLY_WRITE, body={}),
    ("GET", ORG): Case(ORG_READ),
    ("PATCH", ORG): Case(E(400, 403, 403, 404, 404), body={"name": ""}),
    ("GET", ORG + "/members"): Case(ORG_READ),
    # Adding the member again: past auth it is a 409.
    ("POST", ORG + "/members/{user}"): Case(E(409, 409, 403, 404, 404)),
    # Removing yourself: past auth it is a 400.
    ("DELETE", ORG + "/members/{user}"): Case(ORG_ADMIN_WRITE, path=ORG + "/members/me"),
    ("GET", ORG + "/groups"): Case(ORG_READ),
    ("POST", ORG + "/groups"): Case(ORG_ADMIN_WRITE, body={"name": ""}),
    ("GET", "/api/v2/groups/{group}"): Case(ORG_READ),
    ("PATCH", "/api/v2/groups/{group}"): Case(ORG_ADMIN_WRITE, body={"name": ""}),
    # The Everyone group cannot be deleted: past auth it is a 400.
    ("DELETE", "/api/v2/groups/{group}"): Case(
        ORG_ADMIN_WRITE, path="/api/v2/groups/{organization}"
    ),
    ("POST", "/api/v2/authcheck"): Case(ANYONE, body={"checks": {}}),
    ("GET", "/api/v2/audit"): Case(OWNER_ONLY_READ),
    # Templates and workspaces
    ("POST", "/api/v2/organizations/{organization}/templates"): Case(
        OWNER_ONLY_WRITE, path="/api/v2/organizations/default/templates", body={"name": ""}
    ),
    ("GET", "/api/v2/organizations/{organization}/templates"): Case(
        ANYONE, path="/api/v2/organizations/default/templates"
    ),
    ("GET", "/api/v2/templates/{template}"): Case(ANYONE),
    ("GET", "/api/v2/workspaces"): Case(ANYONE),
    ("GET", "/api/v2/workspaces/{workspace}"): Case(MEMBERS_OWN),
    # Deployment settings
    ("GET", C + "/config/plan-mode-instructions"): Case(OWNER_ONLY_404),
    ("PUT", C + "/config/plan-mode-instructions"): Case(
        OWNER_ONLY_WRITE, body={"plan_mode_instructions": TOO_LONG}
    ),
    ("GET", C + "/config/system-prompt"): Case(OWNER_ONLY_404),
    ("PUT", C + "/config/system-prompt"): Case(OWNER_ONLY_WRITE, body={"system_prompt": TOO_LONG}),
    ("GET", C + "/config/template-allowlist"): Case(OWNER_ONLY_404),
    ("PUT", C + "/config/template-allowlist"): Case(
        OWNER_ONLY_WRITE, body={"template_ids": ["nope"]}
    ),
    # The caller's own prompt: every user (the prompt is too long: 400).
    ("GET", C + "/config/user-prompt"): Case(ANYONE),
    ("PUT", C + "/config/user-prompt"): Case(EVERYONE_400, body={"custom_prompt": TOO_LONG}),
    ("GET", C + "/config/desktop-enabled"): Case(ANYONE),
    # Writes the default value: the owner's 204 changes nothing.
    ("PUT", C + "/config/desktop-enabled"): Case(
        E(204, 403, 403, 403, 403), body={"enable_desktop": False}
    ),
    ("GET", C + "/config/retention-days"): Case(ANYONE),
    ("PUT", C + "/config/retention-days"): Case(OWNER_ONLY_WRITE, body={"retention_days": -1}),
    ("GET", C + "/config/workspace-ttl"): Case(ANYONE),
    ("PUT", C + "/config/workspace-ttl"): Case(OWNER_ONLY_WRITE, body={"workspace_ttl_ms": -1}),
    # Files
    ("POST", C + "/files"): Case(AGENTS_CREATE, kind="raw"),  # no ?organization=: 400
    ("GET", C + "/files/{file}"): Case(MEMBERS_OWN),
    # Watch: the plain GET explains it is a WebSocket (before authenticating).
    ("GET", C + "/watch"): Case(E(400, 400, 400, 400, 400, 400)),
    ("WS", C + "/watch"): Case(E(101, 101, 101, 101, 101), kind="ws"),
    # Providers and models
    ("GET", C + "/providers"): Case(OWNER_ONLY_READ),
    ("POST", C + "/providers"): Case(OWNER_ONLY_WRITE, body={}),
    ("PATCH", C + "/providers/{provider_config}"): Case(OWNER_ONLY_WRITE, body={}),
    ("DELETE", C + "/providers/{provider_config}"): Case(OWNER_ONLY_WRITE),
    ("GET", C + "/model-configs"): Case(ANYONE),
    ("POST", C + "/model-configs"): Case(OWNER_ONLY_WRITE, body={}),
    ("PATCH", C + "/model-configs/{model_config}"): Case(OWNER_ONLY_WRITE, body={}),
    ("DELETE", C + "/model-configs/{model_config}"): Case(OWNER_ONLY_WRITE),
    # The caller's own keys: every user, and the provider id is malformed (400).
    ("GET", C + "/user-provider-configs"): Case(ANYONE),
    ("PUT", C + "/user-provider-configs/{provider_config}"): Case(
        EVERYONE_400, body={"api_key": "k"}
    ),
    ("DELETE", C + "/user-provider-configs/{provider_config}"): Case(EVERYONE_400),
    # Usage limits and cost
    ("GET", C + "/usage-limits"): Case(OWNER_ONLY_READ),
    ("PUT", C + "/usage-limits"): Case(OWNER_ONLY_WRITE, body={"period": "year"}),
    ("GET", C + "/usage-limits/status"): Case(ANYONE),
    ("PUT", C + "/usage-limits/overrides/{user}"): Case(
        OWNER_ONLY_WRITE, body={"spend_limit_micros": 0}
    ),
    ("DELETE", C + "/usage-limits/overrides/{user}"): Case(OWNER_ONLY_WRITE),  # none set
    ("PUT", C + "/usage-limits/group-overrides/{group}"): Case(
        OWNER_ONLY_WRITE, path=C + "/usage-limits/group-overrides/x", body={}
    ),
    ("DELETE", C + "/usage-limits/group-overrides/{group}"): Case(
        OWNER_ONLY_WRITE, path=C + "/usage-limits/group-overrides/x"
    ),
    ("GET", C + "/cost/users"): Case(OWNER_ONLY_READ),
    ("GET", C + "/cost/{user}/summary"): Case(E(200, 404, 200, 404, 404)),
    # PR insights (admins), git providers (none configured here: 404 past auth), web push
    ("GET", C + "/insights/pull-requests"): Case(OWNER_ONLY_READ),
    ("GET", "/api/v2/external-auth"): Case(ANYONE),
    ("GET", "/api/v2/external-auth/{externalauth}"): Case(
        E(404, 404, 404, 404, 404), path="/api/v2/external-auth/github"
    ),
    ("PUT", "/api/v2/external-auth/{externalauth}/token"): Case(
        E(404, 404, 404, 404, 404), path="/api/v2/external-auth/github/token", body={}
    ),
    ("DELETE", "/api/v2/external-auth/{externalauth}"): Case(
        E(404, 404, 404, 404, 404), path="/api/v2/external-auth/github"
    ),
    ("GET", "/api/v2/notifications/push/public-key"): Case(ANYONE),
    # The member's own subscriptions only (an empty subscription: 400 past auth).
    ("POST", "/api/v2/users/{user}/notifications/push/subscription"): Case(
        E(404, 404, 400, 404, 404), body={}
    ),
    ("DELETE", "/api/v2/users/{user}/notifications/push/subscription"): Case(
        E(404, 404, 204, 404, 404), body={}
    ),
    ("POST", "/api/v2/users/{user}/notifications/push/test"): Case(E(404, 404, 204, 404, 404)),
    # Admin MCP servers ({mcp_server} is malformed: 400 once past authorization).
    ("GET", MCP): Case(ANYONE),
    ("POST", MCP): Case(OWNER_ONLY_WRITE, body={}),
    ("GET", MCP + "/{mcp_server}"): Case(EVERYONE_400),
    ("PATCH", MCP + "/{mcp_server}"): Case(OWNER_ONLY_WRITE, body={}),
    ("DELETE", MCP + "/{mcp_server}"): Case(OWNER_ONLY_WRITE),
    ("GET", MCP + "/{mcp_server}/oauth2/connect"): Case(EVERYONE_400),
    ("GET", MCP + "/{mcp_server}/oauth2/callback"): Case(EVERYONE_400),
    ("DELETE", MCP + "/{mcp_server}/oauth2/disconnect"): Case(EVERYONE_400),
    # Chats
    ("POST", C): Case(AGENTS_CREATE, body={"content": []}),
    ("GET", C): Case(ANYONE),
    ("GET", C + "/models"): Case(ANYONE),
    ("GET", C + "/{chat}"): Case(MEMBERS_OWN),
    ("PATCH", C + "/{chat}"): Case(MEMBERS_OWN_400, body={"pin_order": -1}),
    # Archiving the already archived chat / unarchiving the active one: 400 past auth.
    ("POST", C + "/{chat}/archive"): Case(MEMBERS_OWN_400, path=C + "/{archived_chat}/archive"),
    ("POST", C + "/{chat}/unarchive"): Case(MEMBERS_OWN_400),
    ("POST", C + "/{chat}/interrupt"): Case(MEMBERS_OWN),
    ("GET", C + "/{chat}/messages"): Case(MEMBERS_OWN),
    ("POST", C + "/{chat}/messages"): Case(AGENTS_ON_CHAT, body={"content": []}),
    ("PATCH", C + "/{chat}/messages/{message}"): Case(AGENTS_ON_CHAT, body={"content": []}),
    ("DELETE", C + "/{chat}/queue/{queuedMessage}"): Case(MEMBERS_OWN_400),
    ("POST", C + "/{chat}/queue/{queuedMessage}/promote"): Case(AGENTS_ON_CHAT),
    # Not waiting for tool results: 409 past auth.
    ("POST", C + "/{chat}/tool-results"): Case(E(404, 403, 409, 403, 404), body={"results": []}),
    ("POST", C + "/{chat}/title/regenerate"): Case(MEMBERS_OWN),
    ("POST", C + "/{chat}/title/propose"): Case(MEMBERS_OWN),
    ("GET", C + "/{chat}/diff"): Case(MEMBERS_OWN),
    ("GET", C + "/{chat}/stream"): Case(MEMBERS_OWN, kind="sse"),
    ("WS", C + "/{chat}/stream"): Case(E(404, 404, 101, 404, 404), kind="ws"),
}
