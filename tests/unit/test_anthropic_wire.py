"""The Anthropic Messages translation (workers/turn/anthropic_wire.py): every request it builds
passes the scripted server's Messages checks (agentfarm/scripted_anthropic.py), and the
conversation the server reads back is the one the prompt held."""

from __future__ import annotations

from typing import Any

import pytest

from agentfarm import scripted_anthropic
from workers.turn import anthropic_wire


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


PROMPT: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "system", "content": "Workspace: demo"},
    {"role": "user", "content": "list files"},
    {"role": "assistant", "content": "Looking.", "tool_calls": [call("c1", "execute", '{"c": 1}'),
                                                                 call("c2", "read", "not json")]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"out": "a"}'},
    {"role": "tool", "tool_call_id": "c2", "content": '{"out": "b"}'},
    {"role": "user", "content": "and now?"},
    {"role": "assistant", "content": "Done."},
]  # fmt: skip


def test_a_transcript_becomes_alternating_turns_with_top_level_system() -> None:
    body = anthropic_wire.request_body("claude", {}, PROMPT, None, 1000)
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Workspace: demo"},
    ]
    roles = [t["role"] for t in body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assistant = body["messages"][1]["content"]
    assert assistant[0] == {"type": "text", "text": "Looking."}
    assert assistant[1] == {"type": "tool_use", "id": "c1", "name": "execute", "input": {"c": 1}}
    # Arguments that are not a JSON object still reach the model, as an object.
    assert assistant[2]["input"] == {"input": "not json"}
    # Both results and the next user text share one user turn, results first.
    results = body["messages"][2]["content"]
    assert [b["type"] for b in results] == ["tool_result", "tool_result", "text"]
    assert results[0] == {"type": "tool_result", "tool_use_id": "c1", "content": '{"out": "a"}'}
    chat = scripted_anthropic.chat_request(body)
    assert [m["role"] for m in chat["messages"]] == [
        "system", "user", "assistant", "tool", "tool", "user", "assistant",
    ]  # fmt: skip


def test_images_become_base64_or_url_sources() -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    body = anthropic_wire.request_body("claude", {}, [{"role": "user", "content": content}],
                                       None, 100)  # fmt: skip
    blocks = body["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/a.png"},
    }
    scripted_anthropic.chat_request(body)


def test_a_transcript_that_starts_with_the_assistant_gets_a_user_turn_first() -> None:
    body = anthropic_wire.request_body(
        "claude", {}, [{"role": "system", "content": "s"}, {"role": "assistant", "content": "hi"}],
        None, 100,
    )  # fmt: skip
    assert [t["role"] for t in body["messages"]] == ["user", "assistant"]
    scripted_anthropic.chat_request(body)


def test_tools_and_sampling_options() -> None:
    tool = {"type": "function", "function": {"name": "execute", "description": "Run",
                                             "parameters": {"type": "object"}}}  # fmt: skip
    options = {"temperature": 0.2, "top_k": 5, "presence_penalty": 1.0}
    body = anthropic_wire.request_body("claude", options, PROMPT[:3], [tool], 100)
    assert body["tools"] == [{"name": "execute", "description": "Run",
                              "input_schema": {"type": "object"}}]  # fmt: skip
    assert body["temperature"] == 0.2 and body["top_k"] == 5
    assert "presence_penalty" not in body  # not an Anthropic parameter


@pytest.mark.parametrize(
    ("effort", "max_tokens", "budget"),
    [("low", 32000, 1024), ("medium", 32000, 2048), ("high", 32000, 4096),
     ("max", 32000, 16384), ("max", 4000, 3999), ("low", 1000, None), (None, 32000, None)],
)  # fmt: skip
def test_reasoning_effort_is_a_thinking_budget_below_max_tokens(
    effort: str | None, max_tokens: int, budget: int | None
) -> None:
    options = {"provider_options": {"anthropic": {"effort": effort}}} if effort else {}
    body = anthropic_wire.request_body("claude", options, PROMPT[:3], None, max_tokens)
    if budget is None:
        assert "thinking" not in body
    else:
        assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    scripted_anthropic.chat_request(body)


@pytest.mark.parametrize(
    ("configured", "url"),
    [
        (None, "https://api.anthropic.com/v1/messages"),
        ("https://proxy.example.com/anthropic/", "https://proxy.example.com/anthropic/v1/messages"),
        ("https://proxy.example.com/v1", "https://proxy.example.com/v1/messages"),
        ("https://proxy.example.com/v1/messages", "https://proxy.example.com/v1/messages"),
    ],
)
def test_messages_url(configured: str | None, url: str) -> None:
    assert anthropic_wire.messages_url(configured) == url


def test_usage_counts_the_whole_prompt_like_openai() -> None:
    usage: dict[str, int] = {}
    anthropic_wire.usage_dict(
        {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
         "output_tokens": 1},
        usage,
    )  # fmt: skip
    anthropic_wire.usage_dict({"output_tokens": 42}, usage)
    assert usage == {
        "input_tokens": 115,
        "cache_read_tokens": 100,
        "cache_creation_tokens": 5,
        "output_tokens": 42,
        "total_tokens": 157,
        "reasoning_tokens": 0,
    }


def test_the_scripted_server_refuses_what_anthropic_refuses() -> None:
    ok = anthropic_wire.request_body("claude", {}, PROMPT, None, 100)
    unanswered = {**ok, "messages": ok["messages"][:2] + [
        {"role": "user", "content": [{"type": "text", "text": "skip the results"}]}]}  # fmt: skip
    no_max = {k: v for k, v in ok.items() if k != "max_tokens"}
    system_role = {**ok, "messages": [{"role": "system", "content": "x"}]}
    for bad in (unanswered, no_max, system_role):
        with pytest.raises(scripted_anthropic.InvalidRequest):
            scripted_anthropic.chat_request(bad)
