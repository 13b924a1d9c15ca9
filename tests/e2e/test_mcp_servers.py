"""Admin MCP servers end to end: the CRUD API and its secrecy, per-chat selection, and the
scripted model calling ``<slug>__<tool>`` on the real test server (streamable HTTP and SSE)."""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from models import db
from tests.e2e.test_tools import tool, tool_results, turn
from tests.fixtures.farm import Caller, Farm
from tests.fixtures.mcp_servers import Admin, RunningServer, offered, seen

SERVERS = "/api/experimental/mcp/servers"
CHATS = "/api/experimental/chats"
SECRETS = ("sk-live-123456", "team-header-secret", "oauth-client-secret-789")


def test_crud_keeps_secrets_out_of_every_response(
    farm: Farm, mcp_admin: Admin, caller: Caller, mcp_http_server: RunningServer
) -> None:
    http = mcp_admin.caller.http
    bodies: list[str] = []
    keyed = mcp_admin.create(
        url=mcp_http_server.url,
        auth_type="api_key",
        api_key_header="X-Api-Key",
        api_key_value=SECRETS[0],
        icon_url="/icon/github.svg",
    )
    headed = mcp_admin.create(
        url=mcp_http_server.url,
        auth_type="custom_headers",
        custom_headers={"X-Team": SECRETS[1]},
        enabled=False,
    )
    manual = mcp_admin.create(
        url=mcp_http_server.url,
        auth_type="oauth2",
        oauth2_client_id="cid",
        oauth2_client_secret=SECRETS[2],
        oauth2_auth_url="https://idp.example/authorize",
        oauth2_token_url="https://idp.example/token",
        oauth2_scopes="read write",
    )
    assert keyed["has_api_key"] and keyed["api_key_header"] == "X-Api-Key"
    assert headed["has_custom_headers"] and not headed["has_api_key"]
    assert manual["has_oauth2_secret"] and manual["oauth2_client_id"] == "cid"
    assert manual["auth_connected"] is False and keyed["auth_connected"] is True
    bodies += [json.dumps(b) for b in (keyed, headed, manual)]
    bodies.append(http.get(SERVERS).text)
    bodies.append(http.get(f"{SERVERS}/{keyed['id']}").text)
    patched = http.patch(f"{SERVERS}/{keyed['id']}", json={"description": "hello"})
    assert patched.status_code == 200 and patched.json()["description"] == "hello"
    bodies.append(patched.text)

    # Other users: enabled servers only, without the admin-only fields.
    listed = caller.http.get(SERVERS).json()
    mine = {s["id"]: s for s in listed}
    assert keyed["id"] in mine and headed["id"] not in mine
    assert "api_key_header" not in mine[keyed["id"]] and mine[keyed["id"]]["has_api_key"]
    assert not {"oauth2_client_id", "oauth2_auth_url", "oauth2_scopes"} & set(mine[manual["id"]])
    assert caller.http.get(f"{SERVERS}/{headed['id']}").status_code == 404
    assert caller.http.post(SERVERS, json={"slug": "x"}).status_code == 403
    assert caller.http.delete(f"{SERVERS}/{keyed['id']}").status_code == 403
    bodies += [json.dumps(listed), caller.http.get(f"{SERVERS}/{keyed['id']}").text]
    for body in bodies:
        assert not any(secret in body for secret in SECRETS), body

    # At rest: ciphertext only.
    with db.session_scope() as session:
        stored = session.execute(
            sa.text(
                "SELECT api_key_value, custom_headers, oauth2_client_secret FROM mcp_server_configs"
            )
        ).all()
    assert not any(secret in str(stored) for secret in SECRETS)

    # Changing auth_type clears the old type's fields.
    switched = http.patch(f"{SERVERS}/{keyed['id']}", json={"auth_type": "none"}).json()
    assert switched["has_api_key"] is False and switched["api_key_header"] == "Authorization"


def test_validation(farm: Farm, mcp_admin: Admin, mcp_http_server: RunningServer) -> None:
    url = mcp_http_server.url
    external = mcp_admin.create(400, url=url, icon_url="https://cdn.example/icon.png")
    assert "deployment-relative" in external["detail"]
    assert mcp_admin.create(400, url=url, transport="websocket")["message"] == (
        "Invalid MCP server config."
    )
    assert mcp_admin.create(400, url="ftp://x")["detail"].startswith("url must be")
    assert (
        "at least one header"
        in mcp_admin.create(400, url=url, auth_type="custom_headers")["detail"]
    )
    partial = mcp_admin.create(400, url=url, auth_type="oauth2", oauth2_client_id="only-this")
    assert "together" in partial["detail"]
    first = mcp_admin.create(url=url)
    assert mcp_admin.create(409, url=url, slug=first["slug"])["message"].startswith("MCP server")


def test_force_on_default_on_and_replacement_per_message(
    farm: Farm, mcp_admin: Admin, caller: Caller, mcp_http_server: RunningServer
) -> None:
    forced = mcp_admin.create(url=mcp_http_server.url, availability="force_on")["id"]
    default = mcp_admin.create(url=mcp_http_server.url, availability="default_on")["id"]
    optional = mcp_admin.create(url=mcp_http_server.url)["id"]
    hidden = mcp_admin.create(url=mcp_http_server.url, enabled=False)["id"]

    chat = caller.create_chat("[[reply: hi]]")
    assert set(chat["mcp_server_ids"]) == {forced, default}
    chosen = caller.create_chat("[[reply: hi]]", mcp_server_ids=[optional])
    assert set(chosen["mcp_server_ids"]) == {optional, forced}

    caller.wait_status(chat["id"], "waiting")
    caller.send(chat["id"], "[[reply: again]]", mcp_server_ids=[])
    assert caller.chat(chat["id"])["mcp_server_ids"] == [forced]  # force_on stays

    unknown = str(uuid.uuid4())
    for bad in ([unknown], [hidden]):
        resp = caller.http.post(
            CHATS, json={"content": [{"type": "text", "text": "x"}], "mcp_server_ids": bad}
        )
        assert resp.status_code == 400
        assert resp.json() == {
            "message": "One or more MCP server IDs are invalid.",
            "detail": f"Invalid IDs: {bad[0]}",
        }
    resp = caller.http.post(
        f"{CHATS}/{chat['id']}/messages",
        json={"content": [{"type": "text", "text": "x"}], "mcp_server_ids": [unknown]},
    )
    assert resp.status_code == 400


def test_model_calls_admin_tools_with_api_key_and_filters(
    farm: Farm, mcp_admin: Admin, caller: Caller, mcp_http_server: RunningServer
) -> None:
    server = mcp_admin.create(
        url=mcp_http_server.url,
        auth_type="api_key",
        api_key_header="X-Api-Key",
        api_key_value=SECRETS[0],
        tool_allow_list=["whoami", "forecast", "pixel"],
        tool_deny_list=["pixel"],
    )
    slug = server["slug"]
    text = (
        tool(f"{slug}__whoami")
        + tool(f"{slug}__forecast", city="Oslo")
        + tool(f"{slug}__pixel")
        + "apikey-marker [[after_tools: done]]"
    )
    chat_id = turn(caller, None, text, mcp_server_ids=[server["id"]])
    assert set(offered(farm, "apikey-marker", slug)) == {f"{slug}__whoami", f"{slug}__forecast"}
    who, forecast, denied = tool_results(caller, chat_id)
    assert who["mcp_server_config_id"] == server["id"] and not who.get("is_error")
    assert seen(who)["x_api_key"] == SECRETS[0]
    assert forecast["result"]["structured_content"] == {"city": "Oslo", "celsius": 21.5}
    assert denied["is_error"] is True
    assert any(h.get("x-api-key") == SECRETS[0] for h in mcp_http_server.headers_seen())
    calls = [
        p
        for m in caller.messages(chat_id)["messages"]
        if m["role"] == "assistant"
        for p in m["content"]
        if p["type"] == "tool-call"
    ]
    by_name = {c["tool_name"]: c for c in calls}
    assert by_name[f"{slug}__whoami"]["mcp_server_config_id"] == server["id"]
    assert "mcp_server_config_id" not in by_name[f"{slug}__pixel"]  # never offered


def test_custom_headers_over_sse_images_and_model_intent(
    farm: Farm, mcp_admin: Admin, caller: Caller, mcp_sse_server: RunningServer
) -> None:
    server = mcp_admin.create(
        url=mcp_sse_server.url,
        transport="sse",
        auth_type="custom_headers",
        custom_headers={"X-Team": SECRETS[1]},
        model_intent=True,
    )
    slug = server["slug"]
    text = (
        tool(f"{slug}__whoami", model_intent="check who I am")
        + tool(f"{slug}__arguments", note="n1", model_intent="show arguments")
        + tool(f"{slug}__pixel", model_intent="draw")
        + "sse-marker [[after_tools: done]]"
    )
    chat_id = turn(caller, None, text, mcp_server_ids=[server["id"]])
    schema = offered(farm, "sse-marker", slug)[f"{slug}__arguments"]["parameters"]
    assert "model_intent" in schema["properties"] and "model_intent" in schema["required"]
    who, args, image = tool_results(caller, chat_id)
    assert seen(who)["x_team"] == SECRETS[1]
    assert args["result"]["structured_content"]["received"] == {"note": "n1"}  # intent stripped
    assert image["is_media"] is True and image["result"]["content"][0]["type"] == "image"


def test_plan_mode_keeps_only_servers_allowed_in_plan_mode(
    farm: Farm, mcp_admin: Admin, caller: Caller, mcp_http_server: RunningServer
) -> None:
    planner = mcp_admin.create(url=mcp_http_server.url, allow_in_plan_mode=True)
    other = mcp_admin.create(url=mcp_http_server.url)
    text = (
        tool(f"{planner['slug']}__echo", text="ok")
        + tool(f"{other['slug']}__echo", text="no")
        + "plan-marker [[after_tools: done]]"
    )
    chat_id = turn(
        caller, None, text, mcp_server_ids=[planner["id"], other["id"]], plan_mode="plan"
    )
    names = set(offered(farm, "plan-marker", "t"))
    assert f"{planner['slug']}__echo" in names
    assert not any(n.startswith(other["slug"]) for n in names)
    allowed, refused = tool_results(caller, chat_id)
    assert allowed["result"]["content"] == [{"type": "text", "text": "echo: ok"}]
    assert refused["is_error"] is True
