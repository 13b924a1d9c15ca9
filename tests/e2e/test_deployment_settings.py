"""Deployment settings (system prompt, user prompt, template allowlist), the order in which
prompt layers reach the model, and the audit log of admin changes and chat create/patch."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.farm import Caller, Farm

CHATS = "/api/experimental/chats"
CONFIG = f"{CHATS}/config"


@pytest.fixture
def restore_prompt(owner: Caller) -> Iterator[None]:
    yield
    body = {"system_prompt": "", "include_default_system_prompt": True}
    assert owner.http.put(f"{CONFIG}/system-prompt", json=body).status_code == 204


def system_texts(farm: Farm, marker: str) -> list[str]:
    request = next(
        r for r in reversed(farm.llm.requests) if r.get("tools") and marker in json.dumps(r)
    )
    return [m["content"] for m in request["messages"] if m["role"] == "system"]


def test_system_prompt_settings(
    farm: Farm, owner: Caller, caller: Caller, restore_prompt: None
) -> None:
    url = f"{CONFIG}/system-prompt"
    assert caller.http.get(url).status_code == 404  # hidden from non-owners
    assert caller.http.put(url, json={"system_prompt": "x"}).status_code == 403
    got = owner.http.get(url).json()
    assert got["system_prompt"] == "" and got["include_default_system_prompt"] is True
    default = got["default_system_prompt"]
    assert default
    too_long = owner.http.put(url, json={"system_prompt": "é" * 70_000})
    assert too_long.status_code == 400
    assert too_long.json()["message"] == "System prompt exceeds maximum length."

    text = "Prefer\u200b small diffs.\n\n\n\nAlways run the tests."
    assert owner.http.put(url, json={"system_prompt": text}).status_code == 204
    got = owner.http.get(url).json()
    assert got["system_prompt"] == "Prefer small diffs.\n\nAlways run the tests."
    assert got["include_default_system_prompt"] is True  # unchanged when absent
    chat = caller.create_chat("layered one [[reply: ok]]")
    caller.wait_status(chat["id"], "waiting", timeout=60)
    first = system_texts(farm, "layered one")[0]
    assert first == default + "\n\nPrefer small diffs.\n\nAlways run the tests."

    body = {"system_prompt": "Only this.", "include_default_system_prompt": False}
    assert owner.http.put(url, json=body).status_code == 204
    chat = caller.create_chat("layered two [[reply: ok]]")
    caller.wait_status(chat["id"], "waiting", timeout=60)
    assert system_texts(farm, "layered two")[0] == "Only this."


def test_prompt_layers_reach_the_model_in_order(
    farm: Farm, owner: Caller, caller: Caller, restore_prompt: None
) -> None:
    url = f"{CONFIG}/user-prompt"
    assert caller.http.get(url).json() == {"custom_prompt": ""}
    saved = caller.http.put(url, json={"custom_prompt": "I like  Go.\u200b"})
    assert saved.status_code == 200 and saved.json() == {"custom_prompt": "I like  Go."}
    too_long = caller.http.put(url, json={"custom_prompt": "x" * (128 * 1024 + 1)})
    assert too_long.json()["message"] == "Custom prompt exceeds maximum length."
    assert owner.http.get(url).json() == {"custom_prompt": ""}  # each user has their own
    owner.http.put(f"{CONFIG}/system-prompt", json={"system_prompt": "DEPLOYMENT RULES"})
    plan = f"{CONFIG}/plan-mode-instructions"
    owner.http.put(plan, json={"plan_mode_instructions": "PLAN RULES"})
    try:
        chat = caller.create_chat(
            "ordered [[reply: ok]]", system_prompt="CHAT RULES", plan_mode="plan"
        )
        caller.wait_status(chat["id"], "waiting", timeout=60)
    finally:
        owner.http.put(plan, json={"plan_mode_instructions": ""})
        caller.http.put(url, json={"custom_prompt": ""})
    joined = "\n".join(system_texts(farm, "ordered"))
    positions = [
        joined.index(marker)
        for marker in ("DEPLOYMENT RULES", "CHAT RULES", "I like  Go.", "PLAN RULES")
    ]
    assert positions == sorted(positions), joined


def test_template_allowlist(farm: Farm, owner: Caller, caller: Caller) -> None:
    url = f"{CONFIG}/template-allowlist"
    body = {"name": f"tpl-{uuid.uuid4().hex[:8]}", "description": "allowlisted"}
    template = owner.http.post("/api/v2/organizations/default/templates", json=body).json()
    assert caller.http.get(url).status_code == 404
    assert caller.http.put(url, json={"template_ids": []}).status_code == 403
    bad = owner.http.put(url, json={"template_ids": ["nope"]})
    assert bad.status_code == 400 and bad.json()["message"] == "Invalid template ID in allowlist."
    unknown = owner.http.put(url, json={"template_ids": [str(uuid.uuid4())]})
    assert unknown.json()["message"] == "One or more templates not found or deprecated."
    try:
        ids = [template["id"].upper(), template["id"]]
        assert owner.http.put(url, json={"template_ids": ids}).status_code == 204
        assert owner.http.get(url).json() == {"template_ids": [template["id"]]}
        chat = caller.create_chat("[[tool: list_templates {}]] [[after_tools: listed]]")
        caller.wait_status(chat["id"], "waiting", timeout=60)
        messages = caller.messages(chat["id"])["messages"]
        (result,) = [p for m in messages if m["role"] == "tool" for p in m["content"]]
        assert [t["id"] for t in result["result"]["templates"]] == [template["id"]]
    finally:
        owner.http.put(url, json={"template_ids": []})


def test_audit_log_records_admin_changes_and_chats(
    farm: Farm, owner: Caller, caller: Caller, restore_prompt: None
) -> None:
    assert caller.http.get("/api/v2/audit").status_code == 403
    owner.http.put(f"{CONFIG}/system-prompt", json={"system_prompt": "audited"})
    secret = f"sk-audit-{uuid.uuid4().hex}"
    created = owner.http.post(
        f"{CHATS}/providers", json={"provider": "openrouter", "api_key": secret}
    )
    assert created.status_code == 201, created.text
    try:
        chat = caller.create_chat("audit me [[reply: ok]]")
        assert (
            caller.http.patch(f"{CHATS}/{chat['id']}", json={"title": "Renamed"}).status_code == 204
        )
        logs = owner.http.get("/api/v2/audit", params={"limit": 200}).json()
        assert secret not in json.dumps(logs)
        entries: list[dict[str, Any]] = logs["audit_logs"]
        assert logs["count"] >= len(entries) >= 4

        def find(**want: Any) -> dict[str, Any]:
            return next(e for e in entries if all(e[k] == v for k, v in want.items()))

        prompt = find(resource_type="deployment_config", action="write")
        assert prompt["diff"] == {"system_prompt": "audited"}
        assert prompt["user"]["username"] == owner.username
        provider = find(resource_type="chat_provider", action="create")
        assert provider["resource_id"] == created.json()["id"]
        assert provider["diff"]["api_key"] == "[redacted]"
        made = find(resource_type="chat", action="create", resource_id=chat["id"])
        assert made["user"]["username"] == caller.username and made["status_code"] == 201
        patched = find(resource_type="chat", action="write", resource_id=chat["id"])
        assert patched["diff"] == {"title": "Renamed"}
        only_chats = owner.http.get("/api/v2/audit", params={"q": "resource_type:chat"}).json()
        assert {e["resource_type"] for e in only_chats["audit_logs"]} == {"chat"}
        # Reading is not auditing: a GET leaves no entry.
        assert not any(e["request_path"] == "/api/v2/audit" for e in entries)
    finally:
        owner.http.delete(f"{CHATS}/providers/{created.json()['id']}")
