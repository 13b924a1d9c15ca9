"""The HTTP contract: auth, ownership, Coder's 400 messages, and the chat resource's shape."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.farm import Caller, Farm, make_caller

CHATS = "/api/experimental/chats"


def text(t: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": t}]


def test_requests_without_a_valid_token_are_401(farm: Farm) -> None:
    with httpx.Client(base_url=farm.base_url) as anon:
        resp = anon.get(CHATS)
        assert resp.status_code == 401
        body = resp.json()
        assert body["message"] == "Cookie or header (Coder-Session-Token) must be provided."
        assert set(body) <= {"message", "detail", "validations"}
        bad = anon.get(CHATS, headers={"Coder-Session-Token": "abcdefghij-notarealsecret"})
        assert bad.status_code == 401
        assert bad.json()["message"] == "Invalid or expired session token."


def test_bearer_token_is_accepted(farm: Farm, caller: Caller) -> None:
    with httpx.Client(base_url=farm.base_url) as client:
        resp = client.get(CHATS, headers={"Authorization": f"Bearer {caller.token}"})
    assert resp.status_code == 200 and resp.json() == []


def test_another_users_chat_is_404_everywhere(
    farm: Farm, caller: Caller, other_caller: Caller
) -> None:
    chat = caller.create_chat("[[reply: mine]]")
    base = f"{CHATS}/{chat['id']}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"title": "stolen"}),
        ("GET", f"{base}/messages", None),
        ("POST", f"{base}/messages", {"content": text("hi")}),
        ("POST", f"{base}/interrupt", None),
        ("POST", f"{base}/archive", None),
    ]:
        resp = other_caller.http.request(method, path, json=body)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["message"]
    assert [c["id"] for c in other_caller.http.get(CHATS).json()] == []
    assert caller.chat(chat["id"])["title"] != "stolen"


@pytest.mark.parametrize(
    ("body", "message", "detail"),
    [
        ({}, "Content is required.", "Content cannot be empty."),
        ({"content": []}, "Content is required.", "Content cannot be empty."),
        ({"content": text("   ")}, "content[0].text cannot be empty.", None),
        (
            {"content": [{"type": "text", "text": "ok"}, {"type": "Video"}]},
            'content[1].type "Video" is not supported.',
            None,
        ),
        (
            {"content": [{"type": "file-reference", "start_line": 1, "end_line": 2}]},
            "content[0].file_name cannot be empty for file-reference.",
            None,
        ),
        (
            {"content": [{"type": "file", "file_id": str(uuid.uuid4())}]},
            "content[0].file_id references a file that does not exist.",
            None,
        ),
        ({"content": text("hi"), "plan_mode": "yolo"}, "Invalid plan_mode value.", None),
        ({"content": text("hi"), "client_type": "cli"}, "Invalid client_type.", None),
        (
            {"content": text("hi"), "model_config_id": str(uuid.UUID(int=0))},
            "Invalid model config ID.",
            None,
        ),
        (
            {"content": text("hi"), "model_config_id": str(uuid.uuid4())},
            "Invalid model config ID.",
            None,
        ),
        (
            {"content": text("hi"), "system_prompt": "x" * 10_001},
            "System prompt exceeds maximum length.",
            None,
        ),
        (
            {"content": text("hi"), "workspace_id": str(uuid.uuid4())},
            "Workspace not found or you do not have access to this resource",
            None,
        ),
        (
            {"content": text("hi"), "unsafe_dynamic_tools": [{"name": "a"}, {"name": "a"}]},
            "Duplicate dynamic tool name.",
            None,
        ),
        (
            {"content": text("hi"), "unsafe_dynamic_tools": [{"name": " "}]},
            "Dynamic tool name must not be empty.",
            None,
        ),
    ],
)
def test_create_chat_validation(
    caller: Caller, body: dict[str, Any], message: str, detail: str | None
) -> None:
    before = caller.http.get(CHATS).json()
    resp = caller.http.post(CHATS, json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["message"] == message
    if detail:
        assert resp.json()["detail"] == detail
    assert caller.http.get(CHATS).json() == before  # nothing half-written


def test_create_in_a_foreign_organization_is_403(farm: Farm, caller: Caller) -> None:
    resp = caller.http.post(
        CHATS, json={"content": text("hi"), "organization_id": str(uuid.uuid4())}
    )
    assert resp.status_code == 403
    assert resp.json()["message"] == "You are not a member of the specified organization."


def test_create_without_agents_access_is_403(farm: Farm) -> None:
    plain = make_caller(farm.base_url, roles=["member"])
    try:
        resp = plain.http.post(CHATS, json={"content": text("hi")})
        assert resp.status_code == 403
        assert plain.http.get(CHATS).json() == []
    finally:
        plain.http.close()


def test_malformed_json_and_wrong_types_are_400(caller: Caller) -> None:
    resp = caller.http.post(
        CHATS, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["message"] == "Request body must be valid JSON."
    resp = caller.http.post(CHATS, json={"content": "not a list"})
    assert resp.status_code == 400
    assert resp.json()["validations"][0]["field"].startswith("content")


def test_bad_ids_and_params_are_400(caller: Caller) -> None:
    assert caller.http.get(f"{CHATS}/not-a-uuid").status_code == 400
    chat = caller.create_chat("[[reply: ok]]")
    msgs = f"{CHATS}/{chat['id']}/messages"
    assert caller.http.get(msgs, params={"limit": 0}).json()["message"] == (
        "Invalid limit parameter (1-200)."
    )
    assert caller.http.get(msgs, params={"limit": 201}).status_code == 400
    assert caller.http.get(msgs, params={"before_id": "x"}).status_code == 400
    assert caller.http.get(msgs, params={"after_id": 5, "before_id": 3}).status_code == 400
    resp = caller.http.post(msgs, json={"content": text("hi"), "busy_behavior": "shove"})
    assert resp.status_code == 400
    assert resp.json() == {
        "message": "Invalid busy_behavior value.",
        "detail": 'Must be "queue" or "interrupt".',
    }
    resp = caller.http.get(f"{CHATS}/{chat['id']}/stream", params={"after_id": "x"},
                           headers={"Accept": "text/event-stream"})  # fmt: skip
    assert resp.status_code == 400 and resp.json()["message"] == "Invalid after_id parameter."
    resp = caller.http.get(CHATS, params={"label": "nocolon"})
    assert resp.json()["message"] == (
        'Invalid label filter: "nocolon" (expected format key:value, both must be non-empty)'
    )


def test_chat_shape_defaults_and_listing(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: ok]] first chat", labels={"team": "infra"})
    assert chat["labels"] == {"team": "infra"}
    assert chat["mcp_server_ids"] == [] and chat["files"] == [] and chat["children"] == []
    assert chat["archived"] is False and chat["pin_order"] == 0
    assert chat["root_chat_id"] is None and chat["parent_chat_id"] is None
    assert chat["created_at"].endswith("Z")
    second = caller.create_chat("[[reply: ok]] second chat", client_type="ui")
    assert second["client_type"] == "ui"
    for c in (chat, second):  # let the steps and title jobs settle (they bump updated_at)
        caller.wait_status(c["id"], "waiting")
        deadline = time.monotonic() + 20
        while caller.chat(c["id"])["title"] == c["title"] and time.monotonic() < deadline:
            time.sleep(0.05)
    listed = caller.http.get(CHATS).json()
    assert {c["id"] for c in listed} == {second["id"], chat["id"]}
    # Newest activity first (steps and titles bump updated_at, so compare the listed values).
    keys = [(c["updated_at"], c["id"]) for c in listed]
    assert keys == sorted(keys, reverse=True)
    assert "files" not in listed[0]
    only_infra = caller.http.get(CHATS, params={"label": "team:infra"}).json()
    assert [c["id"] for c in only_infra] == [chat["id"]]
    page = caller.http.get(CHATS, params={"limit": 1, "after_id": listed[0]["id"]}).json()
    assert len(page) == 1 and page[0]["id"] != listed[0]["id"]
    assert caller.chat(chat["id"])["has_unread"] is True


def test_patch_title_labels_pin_and_archive(caller: Caller) -> None:
    a = caller.create_chat("[[reply: a]]")
    b = caller.create_chat("[[reply: b]]")
    url_a, url_b = f"{CHATS}/{a['id']}", f"{CHATS}/{b['id']}"
    assert caller.http.patch(url_a, json={"title": "  Renamed  "}).status_code == 204
    assert caller.chat(a["id"])["title"] == "Renamed"
    assert caller.http.patch(url_a, json={"title": " "}).json()["message"] == (
        "Title cannot be empty."
    )
    assert caller.http.patch(url_a, json={"labels": {"k": "v"}}).status_code == 204
    assert caller.chat(a["id"])["labels"] == {"k": "v"}
    assert caller.http.patch(url_a, json={"labels": {}}).status_code == 204
    assert caller.chat(a["id"])["labels"] == {}
    assert caller.http.patch(url_a, json={"pin_order": 5}).status_code == 204
    assert caller.http.patch(url_b, json={"pin_order": 1}).status_code == 204
    # A newly pinned chat is appended whatever the value asked; a pinned one moves.
    assert caller.chat(a["id"])["pin_order"] == 1 and caller.chat(b["id"])["pin_order"] == 2
    assert caller.http.patch(url_b, json={"pin_order": 1}).status_code == 204
    assert caller.chat(a["id"])["pin_order"] == 2 and caller.chat(b["id"])["pin_order"] == 1
    assert caller.http.patch(url_a, json={"pin_order": -1}).json()["message"] == (
        "Pin order must be non-negative."
    )
    assert caller.http.post(f"{url_b}/archive").status_code == 204
    archived = caller.chat(b["id"])
    assert archived["archived"] is True and archived["pin_order"] == 0
    assert caller.chat(a["id"])["pin_order"] == 1
    assert caller.http.post(f"{url_b}/archive").json()["message"] == "Chat is already archived."
    assert caller.http.patch(url_b, json={"pin_order": 1}).json()["message"] == (
        "Cannot pin an archived chat."
    )
    only_archived = caller.http.get(CHATS, params={"q": "archived:true"}).json()
    assert [c["id"] for c in only_archived] == [b["id"]]
    assert caller.http.post(f"{url_b}/unarchive").status_code == 204
    assert caller.chat(b["id"])["archived"] is False


def test_models_catalog(caller: Caller) -> None:
    resp = caller.http.get(f"{CHATS}/models")
    assert resp.status_code == 200
    providers = resp.json()["providers"]
    compat = next(p for p in providers if p["provider"] == "openai-compat")
    assert compat["available"] is True
    assert compat["models"] == [
        {
            "id": "openai-compat:scripted",
            "provider": "openai-compat",
            "model": "scripted",
            "display_name": "Scripted",
        }
    ]


def test_messages_page_shapes(caller: Caller) -> None:
    chat = caller.create_chat("[[reply: one]]")
    caller.wait_status(chat["id"], "waiting")
    page = caller.messages(chat["id"])
    assert page["has_more"] is False and page["queued_messages"] == []
    assistant = page["messages"][0]
    assert assistant["role"] == "assistant"
    assert assistant["usage"]["input_tokens"] > 0 and assistant["usage"]["total_tokens"] > 0
    first = caller.http.get(f"{CHATS}/{chat['id']}/messages", params={"limit": 1}).json()
    assert first["has_more"] is True and len(first["messages"]) == 1
    newer = caller.http.get(
        f"{CHATS}/{chat['id']}/messages", params={"after_id": page["messages"][1]["id"]}
    ).json()
    assert [m["id"] for m in newer["messages"]] == [assistant["id"]]


def test_openapi_lists_the_routes(farm: Farm) -> None:
    spec = httpx.get(f"{farm.base_url}/openapi.json").json()
    paths = spec["paths"]
    for path in (
        CHATS,
        f"{CHATS}/{{chat}}",
        f"{CHATS}/{{chat}}/messages",
        f"{CHATS}/{{chat}}/interrupt",
        f"{CHATS}/{{chat}}/stream",
        f"{CHATS}/models",
        "/healthz",
    ):
        assert path in paths, path


def test_healthz_and_metrics(farm: Farm) -> None:
    health = httpx.get(f"{farm.base_url}/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}
    metrics = httpx.get(f"{farm.base_url}/metrics").text
    assert "agentfarm_http_requests_total" in metrics


def test_json_body_is_accepted_without_a_json_content_type(caller: Caller) -> None:
    # `curl -d` sends application/x-www-form-urlencoded; Coder decodes JSON regardless.
    resp = caller.http.post(
        CHATS,
        content=b'{"content":[{"type":"text","text":"[[reply: curl]]"}]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 201, resp.text
