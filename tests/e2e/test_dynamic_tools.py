"""Dynamic tools: the model calls a client-declared tool, the chat waits in requires_action,
the client posts the result and the loop resumes."""

from __future__ import annotations

import json

from tests.fixtures.farm import Caller, Farm, sse_events

CHATS = "/api/experimental/chats"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_dynamic_tool_round_trip(farm: Farm, caller: Caller) -> None:
    text = '[[tool: get_weather {"city": "Oslo"}]] [[after_tools: it is sunny]]'
    chat = caller.create_chat(text, unsafe_dynamic_tools=[WEATHER])
    caller.wait_status(chat["id"], "requires_action")
    events = sse_events(
        farm.base_url,
        caller.token,
        chat["id"],
        last_event_id="0-0",
        until=lambda e: e["type"] == "action_required",
    )
    (call,) = events[-1][1]["action_required"]["tool_calls"]
    assert call["tool_name"] == "get_weather" and json.loads(call["args"]) == {"city": "Oslo"}
    # The model was offered the client's tool.
    # (The step's request, not the concurrent title request, which carries no tools.)
    step_request = next(
        r for r in reversed(farm.llm.requests) if r.get("tools") and "Oslo" in json.dumps(r)
    )
    offered = {t["function"]["name"] for t in step_request["tools"]}
    assert "get_weather" in offered

    url = f"{CHATS}/{chat['id']}/tool-results"
    assert caller.http.post(url, json={"results": []}).json()["message"] == (
        "At least one tool result is required."
    )
    bad = caller.http.post(url, json={"results": [{"tool_call_id": "nope", "output": 1}]})
    assert bad.status_code == 400
    ok = caller.http.post(
        url, json={"results": [{"tool_call_id": call["tool_call_id"], "output": {"temp": 21}}]}
    )
    assert ok.status_code == 204, ok.text
    caller.wait_status(chat["id"], "waiting")
    msgs = list(reversed(caller.messages(chat["id"])["messages"]))
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
    assert msgs[2]["content"][0]["result"] == {"temp": 21}
    assert msgs[3]["content"][0]["text"] == "it is sunny"
    again = caller.http.post(
        url, json={"results": [{"tool_call_id": call["tool_call_id"], "output": 1}]}
    )
    assert again.status_code == 409
    assert again.json() == {
        "message": "Chat is not waiting for tool results.",
        "detail": 'Chat status is "waiting", expected "requires_action".',
    }
