"""OAuth2 admin MCP servers end to end, against the test server acting as its own local
authorization server: auto-discovery (RFC 9728 → RFC 8414) and dynamic registration (RFC 7591)
when the admin saves the server, a user's connect → authorize → callback, token refresh before
a call (the server's tokens live 5 s, inside the 10 s expiry buffer), and disconnect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from models import db
from tests.e2e.test_tools import tool, tool_results, turn
from tests.fixtures.farm import Caller, Farm
from tests.fixtures.mcp_servers import Admin, RunningServer, offered, seen, start_server

SERVERS = "/api/experimental/mcp/servers"
TOKEN_TTL_S = "5"


@pytest.fixture(scope="module")
def oauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("mcp-oauth"), "oauth", TOKEN_TTL_S)
    yield server
    server.stop()


def connect_account(caller: Caller, server_id: str) -> httpx.Response:
    """What the browser popup does: connect → the authorization server → our callback."""
    start = caller.http.get(f"{SERVERS}/{server_id}/oauth2/connect")
    assert start.status_code == 307, start.text
    approved = httpx.get(start.headers["location"])
    assert approved.status_code == 302, approved.text
    back = urlsplit(approved.headers["location"])
    assert back.path == f"{SERVERS}/{server_id}/oauth2/callback"
    return caller.http.get(back.path, params=dict(parse_qsl(back.query)))


def server_view(caller: Caller, server_id: str) -> dict[str, Any]:
    resp = caller.http.get(f"{SERVERS}/{server_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_discovery_registration_connect_refresh_disconnect(
    farm: Farm, mcp_admin: Admin, caller: Caller, oauth_server: RunningServer
) -> None:
    server = mcp_admin.create(url=oauth_server.url, auth_type="oauth2", display_name="Secured")
    client_id = server["oauth2_client_id"]
    (registration,) = [r for r in oauth_server.events("register") if r["client_id"] == client_id]
    assert registration["redirect_uris"][0].endswith(f"{SERVERS}/{server['id']}/oauth2/callback")
    assert server["has_oauth2_secret"] is True and server["oauth2_scopes"] == "tools"
    assert server["oauth2_auth_url"].endswith("/authorize")
    assert server["oauth2_token_url"].endswith("/token")
    assert server_view(caller, server["id"])["auth_connected"] is False

    # Not connected yet: the chat is not offered the server's tools.
    slug = server["slug"]
    chat_id = turn(caller, None, "oauth-before [[reply: ok]]", mcp_server_ids=[server["id"]])
    assert offered(farm, "oauth-before", slug) == {}

    page = connect_account(caller, server["id"])
    assert page.status_code == 200 and "mcp-oauth2-complete" in page.text
    assert server_view(caller, server["id"])["auth_connected"] is True
    grants = [g for g in oauth_server.events("grant") if g["client_id"] == client_id]
    (first,) = [g for g in grants if g["grant_type"] == "authorization_code"]
    with db.session_scope() as session:
        stored = session.execute(
            sa.text("SELECT access_token, refresh_token FROM mcp_server_user_tokens")
        ).all()
    assert stored and first["access_token"] not in str(stored)  # encrypted at rest

    caller.send(chat_id, tool(f"{slug}__whoami") + "oauth-after [[after_tools: done]]")
    caller.wait_status(chat_id, "waiting", "error", timeout=60)
    assert f"{slug}__whoami" in offered(farm, "oauth-after", slug)
    (result,) = tool_results(caller, chat_id)
    assert result["mcp_server_config_id"] == server["id"] and not result.get("is_error")
    grants = [g for g in oauth_server.events("grant") if g["client_id"] == client_id]
    refreshed = [g["access_token"] for g in grants if g["grant_type"] == "refresh_token"]
    # The 5 s token was inside the 10 s buffer: refreshed before use, the new one was sent.
    assert refreshed and seen(result)["authorization"] in {f"Bearer {t}" for t in refreshed}

    assert caller.http.delete(f"{SERVERS}/{server['id']}/oauth2/disconnect").status_code == 204
    assert server_view(caller, server["id"])["auth_connected"] is False
    for body in (json.dumps(server), page.text, caller.http.get(SERVERS).text):
        assert not any(t in body for t in [first["access_token"], *refreshed])


def test_callback_refuses_a_forged_state_and_another_users_state(
    farm: Farm, mcp_admin: Admin, caller: Caller, other_caller: Caller, oauth_server: RunningServer
) -> None:
    server = mcp_admin.create(url=oauth_server.url, auth_type="oauth2")
    start = caller.http.get(f"{SERVERS}/{server['id']}/oauth2/connect")
    approved = httpx.get(start.headers["location"])
    query = dict(parse_qsl(urlsplit(approved.headers["location"]).query))
    callback = f"{SERVERS}/{server['id']}/oauth2/callback"
    stolen = other_caller.http.get(callback, params=query)
    assert stolen.status_code == 400
    assert stolen.json()["message"] == "Invalid or missing OAuth2 state parameter."
    forged = caller.http.get(callback, params={**query, "state": "forged"})
    assert forged.status_code == 400
    denied = caller.http.get(callback, params={"error": "access_denied"})
    assert denied.status_code == 400 and denied.json()["detail"] == "access_denied"
    assert caller.http.get(callback, params=query).status_code == 200


def test_discovery_failure_is_a_clear_400(farm: Farm, mcp_admin: Admin) -> None:
    failed = mcp_admin.create(400, url="http://127.0.0.1:9/mcp", auth_type="oauth2")
    assert failed["message"] == "OAuth2 auto-discovery failed."
