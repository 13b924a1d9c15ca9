"""Plan mode end to end: the tool allowlist, writes confined to the chat's plan file,
propose_plan / ask_user_question ending the turn, and the deployment's plan instructions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.test_tools import create_workspace, make_template, tool, tool_results, turn
from tests.fixtures.farm import Caller, Farm

CHATS = "/api/experimental/chats"
ROOT_PLAN_TOOLS = {
    "read_file",
    "write_file",
    "edit_files",
    "execute",
    "process_output",
    "list_templates",
    "read_template",
    "create_workspace",
    "start_workspace",
    "propose_plan",
    "spawn_agent",
    "wait_agent",
    "ask_user_question",
}
QUESTION = {
    "header": "Database",
    "question": "Which database should the service use?",
    "options": [
        {"label": "Postgres", "description": "What the farm already runs"},
        {"label": "SQLite", "description": "Simplest to operate"},
    ],
}


@pytest.fixture
def planning(owner: Caller, caller: Caller) -> tuple[str, dict[str, Any]]:
    """A chat with a running workspace, switched to plan mode."""
    chat_id, workspace = create_workspace(caller, make_template(owner))
    resp = caller.http.patch(f"{CHATS}/{chat_id}", json={"plan_mode": "plan"})
    assert resp.status_code == 204, resp.text
    return chat_id, workspace


def plan_file(chat_id: str, workspace: dict[str, Any]) -> str:
    return f"{workspace['directory']}/.coder/plans/PLAN-{chat_id}.md"


def last_request(farm: Farm, marker: str) -> dict[str, Any]:
    return next(
        r
        for r in reversed(farm.llm.requests)
        if r.get("tools") and marker in json.dumps(r) and "Generate a short title" not in str(r)
    )


def names(request: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in request["tools"]}


def test_plan_mode_offers_only_the_allowlist_and_refuses_the_rest(
    farm: Farm, caller: Caller, planning: tuple[str, dict[str, Any]]
) -> None:
    chat_id, workspace = planning
    text = (
        tool("process_signal", process_id="x", signal="kill")
        + tool("write_file", path="src/app.py", content="print('hi')")
        + tool("write_file", path=plan_file(chat_id, workspace), content="# Plan\n")
        + tool("message_agent", chat_id=chat_id, message="hi")
        + "refusals [[after_tools: noted]]"
    )
    turn(caller, chat_id, text)
    assert names(last_request(farm, "refusals")) == ROOT_PLAN_TOOLS
    signal_result, outside, inside, message = tool_results(caller, chat_id)[-4:]
    assert signal_result["is_error"] is True
    assert signal_result["result"] == {
        "error": "tool 'process_signal' is not available in plan mode"
    }
    assert outside["is_error"] is True and "plan mode" in outside["result"]["error"]
    assert plan_file(chat_id, workspace) in outside["result"]["error"]
    assert inside["result"] == {"ok": True}
    assert message["result"] == {"error": "tool 'message_agent' is not available in plan mode"}
    # The plan prompt names the plan file.
    system = " ".join(
        m["content"] for m in last_request(farm, "refusals")["messages"] if m["role"] == "system"
    )
    assert plan_file(chat_id, workspace) in system and "plan mode" in system


def test_propose_plan_stores_a_linked_file_and_ends_the_turn(
    farm: Farm, caller: Caller, planning: tuple[str, dict[str, Any]]
) -> None:
    chat_id, workspace = planning
    plan = "# Plan\n\n1. Fix the flaky login test.\n2. Add a regression test.\n"
    text = (
        tool("write_file", path=plan_file(chat_id, workspace), content=plan)
        + "[[tool2: propose_plan {}]] [[after_tools: never sent]]"
    )
    turn(caller, chat_id, text)
    proposed = tool_results(caller, chat_id)[-1]
    assert proposed["tool_name"] == "propose_plan" and not proposed.get("is_error")
    result = proposed["result"]
    assert set(result) == {"ok", "path", "kind", "file_id", "media_type"}
    assert result["ok"] is True and result["kind"] == "plan"
    assert result["path"] == plan_file(chat_id, workspace)
    assert result["media_type"] == "text/markdown"
    # The turn ended after the tool result: no assistant reply followed.
    newest = caller.messages(chat_id)["messages"][0]
    assert newest["role"] == "tool"
    assert caller.chat(chat_id)["status"] == "waiting"
    files = caller.chat(chat_id)["files"]
    assert result["file_id"] in [f["id"] for f in files]
    body = caller.http.get(f"{CHATS}/files/{result['file_id']}")
    assert body.status_code == 200 and body.text == plan


def test_an_empty_plan_is_refused_and_the_turn_goes_on(
    farm: Farm, caller: Caller, planning: tuple[str, dict[str, Any]]
) -> None:
    chat_id, workspace = planning
    turn(caller, chat_id, tool("propose_plan") + "[[after_tools: I will write it first]]")
    refused = tool_results(caller, chat_id)[-1]
    assert refused["is_error"] is True
    assert refused["result"]["error"] == (
        f"plan file is empty; write your plan to {plan_file(chat_id, workspace)} before proposing"
    )
    newest = caller.messages(chat_id)["messages"][0]
    assert newest["role"] == "assistant"
    assert newest["content"][0]["text"] == "I will write it first"


def test_ask_user_question_validates_and_ends_the_turn(
    farm: Farm, caller: Caller, planning: tuple[str, dict[str, Any]]
) -> None:
    chat_id, _ = planning
    bad = dict(QUESTION, options=QUESTION["options"][:1])
    turn(caller, chat_id, tool("ask_user_question", questions=[bad]) + "[[after_tools: retry]]")
    refused = tool_results(caller, chat_id)[-1]
    assert refused["result"] == {"error": "questions[0].options must have 2 to 4 options"}
    empty = dict(QUESTION, header=" ")
    turn(caller, chat_id, tool("ask_user_question", questions=[empty]) + "[[after_tools: x]]")
    assert tool_results(caller, chat_id)[-1]["result"] == {
        "error": "questions[0].header must be a non-empty string"
    }
    turn(caller, chat_id, tool("ask_user_question", questions=[QUESTION]) + "[[after_tools: no]]")
    asked = tool_results(caller, chat_id)[-1]
    assert asked["result"] == {"questions": [QUESTION]}
    assert caller.messages(chat_id)["messages"][0]["role"] == "tool"


def test_plan_mode_per_message_and_dynamic_tools(farm: Farm, caller: Caller) -> None:
    weather = {"name": "get_weather", "description": "Weather", "input_schema": {}}
    chat = caller.create_chat("normal turn [[reply: ok]]", unsafe_dynamic_tools=[weather])
    caller.wait_status(chat["id"], "waiting", timeout=60)
    assert {"get_weather", "process_signal"} <= names(last_request(farm, "normal turn"))
    caller.send(chat["id"], "planning turn [[reply: ok]]", plan_mode="plan")
    caller.wait_status(chat["id"], "waiting", timeout=60)
    assert caller.chat(chat["id"])["plan_mode"] == "plan"
    planned = names(last_request(farm, "planning turn"))
    assert "get_weather" not in planned and "process_signal" not in planned
    caller.send(chat["id"], "implement turn [[reply: ok]]", plan_mode="")
    caller.wait_status(chat["id"], "waiting", timeout=60)
    assert caller.chat(chat["id"])["plan_mode"] is None
    assert {"get_weather", "process_signal"} <= names(last_request(farm, "implement turn"))


def test_deployment_plan_mode_instructions(farm: Farm, owner: Caller, caller: Caller) -> None:
    url = f"{CHATS}/config/plan-mode-instructions"
    assert caller.http.get(url).status_code == 404
    assert caller.http.put(url, json={"plan_mode_instructions": "x"}).status_code == 403
    too_long = owner.http.put(url, json={"plan_mode_instructions": "x" * (128 * 1024 + 1)})
    assert too_long.status_code == 400
    assert too_long.json()["message"] == "Plan mode instructions exceed maximum length."
    text = "Always list risks.\u200b\n\n\n\nKeep plans short."
    try:
        assert owner.http.put(url, json={"plan_mode_instructions": text}).status_code == 204
        stored = owner.http.get(url).json()["plan_mode_instructions"]
        assert stored == "Always list risks.\n\nKeep plans short."
        chat = caller.create_chat("instructed plan [[reply: ok]]", plan_mode="plan")
        caller.wait_status(chat["id"], "waiting", timeout=60)
        request = last_request(farm, "instructed plan")
        system = " ".join(m["content"] for m in request["messages"] if m["role"] == "system")
        assert "Keep plans short." in system
    finally:
        owner.http.put(url, json={"plan_mode_instructions": ""})
