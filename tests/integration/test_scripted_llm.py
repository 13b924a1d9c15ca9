"""The scripted model server, exercised through litellm over HTTP exactly as the workers use it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Must be set before litellm is imported, or it tries to download the cost map (no network).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

from agentfarm.scripted_llm import ScriptedLLMServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    # litellm 1.106.2 builds pydantic models from TypedDicts that use typing.ReadOnly; pydantic
    # warns once, lazily, on the first completion. Nothing in our code can avoid it.
    pytest.mark.filterwarnings(
        r"ignore:Item '\w+' on TypedDict class '\w+' is using the `ReadOnly` qualifier:UserWarning"
    ),
]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLLMServer]:
    """A fresh scripted server per test (binding a socket is cheap)."""
    # Expected errors would otherwise make litellm print "Provider List: ..." banners.
    monkeypatch.setattr(litellm, "suppress_debug_info", True)
    with ScriptedLLMServer() as srv:
        yield srv


def user(text: str) -> list[dict[str, Any]]:
    """A one-message conversation."""
    return [{"role": "user", "content": text}]


def stream(server: ScriptedLLMServer, messages: list[dict[str, Any]], **kwargs: Any) -> list[Any]:
    """All chunks of a streamed litellm completion."""
    response = litellm.completion(
        model="openai/scripted",
        api_base=server.base_url,
        api_key=kwargs.pop("api_key", "x"),
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        timeout=kwargs.pop("timeout", 30),
        num_retries=0,
        **kwargs,
    )
    return list(response)


def deltas(chunks: list[Any], attr: str) -> list[str]:
    """The non-empty values of ``delta.<attr>`` across chunks."""
    values = (getattr(c.choices[0].delta, attr, None) for c in chunks if c.choices)
    return [v for v in values if v]


def test_reply_text_is_streamed_in_pieces_and_reassembles_exactly(
    server: ScriptedLLMServer,
) -> None:
    text = "Hello  there,\n  world! 42"
    chunks = stream(server, user(f"ignored [[reply: {text}]]"))
    pieces = deltas(chunks, "content")
    assert len(pieces) > 1
    assert "".join(pieces) == text
    built = litellm.stream_chunk_builder(chunks)
    assert built.choices[0].finish_reason == "stop"


def test_tokens_directive_and_usage(server: ScriptedLLMServer) -> None:
    chunks = stream(server, user("[[tokens: 5]]"))
    assert deltas(chunks, "content") == ["tok0 ", "tok1 ", "tok2 ", "tok3 ", "tok4"]
    usage = litellm.stream_chunk_builder(chunks).usage
    # prompt: 2 words ("[[tokens:", "5]]") + 1 for the message
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 5, 8)
    assert server.requests[-1]["stream_options"] == {"include_usage": True}


def test_usage_override(server: ScriptedLLMServer) -> None:
    usage = litellm.stream_chunk_builder(
        stream(server, user("[[usage: prompt=1000 completion=7]]"))
    ).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 7, 1007)


def test_reasoning_arrives_as_reasoning_content(server: ScriptedLLMServer) -> None:
    chunks = stream(server, user("[[reasoning: let me think it over]] [[reply: done]]"))
    assert "".join(deltas(chunks, "reasoning_content")) == "let me think it over"
    assert "".join(deltas(chunks, "content")) == "done"
    usage = litellm.stream_chunk_builder(chunks).usage
    assert usage.completion_tokens_details.reasoning_tokens == 5
    assert usage.completion_tokens == 6


def test_parallel_tool_calls_reassemble(server: ScriptedLLMServer) -> None:
    messages = user(
        'go [[tool: read_file {"path": "src/app.py"}]]\n[[tool: run_shell {"cmd": "ls -la"}]]'
    )
    chunks = stream(server, messages)
    message = litellm.stream_chunk_builder(chunks).choices[0]
    calls = message.message.tool_calls
    assert message.finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["read_file", "run_shell"]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"path": "src/app.py"},
        {"cmd": "ls -la"},
    ]
    # Arguments arrive in several fragments, and ids are stable for the same request.
    fragments = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(fragments) >= 6
    again = litellm.stream_chunk_builder(stream(server, messages)).choices[0].message
    assert [c.id for c in again.tool_calls] == [c.id for c in calls]
    assert calls[0].id != calls[1].id


def test_tool_results_get_a_text_reply_not_another_tool_call(server: ScriptedLLMServer) -> None:
    conversation = [
        *user("[[tool: read_file {}]]"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "file contents"},
    ]
    built = litellm.stream_chunk_builder(stream(server, conversation)).choices[0]
    assert built.finish_reason == "stop"
    assert not built.message.tool_calls
    assert built.message.content == "Tool results received: call_1=file contents"

    conversation[0] = user("[[tool: read_file {}]] [[after_tools: All done.]]")[0]
    assert "".join(deltas(stream(server, conversation), "content")) == "All done."


def test_later_tool_rounds_use_earlier_results_and_escaped_brackets(
    server: ScriptedLLMServer,
) -> None:
    script = (
        r'[[tool: spawn_agent {"prompt": "\[\[reply: found it\]\]"}]] '
        '[[tool2: wait_agent {"chat_id": "{{0.chat_id}}"}]] [[after_tools: all reported]]'
    )
    built = litellm.stream_chunk_builder(stream(server, user(script))).choices[0]
    (first,) = built.message.tool_calls
    assert json.loads(first.function.arguments) == {"prompt": "[[reply: found it]]"}

    def round_of(call_id: str, name: str, result: str) -> list[dict[str, Any]]:
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}
        return [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": result},
        ]

    conversation = [*user(script), *round_of("c1", "spawn_agent", '{"chat_id": "abc-123"}')]
    built = litellm.stream_chunk_builder(stream(server, conversation)).choices[0]
    (second,) = built.message.tool_calls
    assert second.function.name == "wait_agent"
    assert json.loads(second.function.arguments) == {"chat_id": "abc-123"}

    conversation += round_of("c2", "wait_agent", '{"report": "done"}')
    built = litellm.stream_chunk_builder(stream(server, conversation)).choices[0]
    assert built.finish_reason == "stop" and built.message.content == "all reported"


def test_fail_429_twice_then_succeed(server: ScriptedLLMServer) -> None:
    messages = user("[[fail: 429 times=2]] hello")
    for _ in range(2):
        with pytest.raises(litellm.RateLimitError) as info:
            stream(server, messages)
        assert info.value.status_code == 429
    assert "".join(deltas(stream(server, messages), "content")) == "You said: hello"
    # litellm/openai did not retry behind our back: exactly one HTTP request per call.
    assert len(server.requests) == 3


def test_fail_500_is_an_internal_server_error(server: ScriptedLLMServer) -> None:
    with pytest.raises(litellm.InternalServerError) as info:
        stream(server, user("[[fail: 500]]"))
    assert info.value.status_code == 500
    assert "scripted failure 500 (attempt 1 of 1)" in str(info.value)


def test_stall_before_first_chunk_trips_the_client_timeout(server: ScriptedLLMServer) -> None:
    with pytest.raises(litellm.Timeout):
        stream(server, user("[[stall_ms: 1000]]"), timeout=0.2)
    assert len(server.requests) == 1


def test_rejected_api_key_is_an_authentication_error(server: ScriptedLLMServer) -> None:
    with pytest.raises(litellm.AuthenticationError) as info:
        stream(server, user("hi"), api_key="reject-me")
    assert info.value.status_code == 401


def test_title_generation(server: ScriptedLLMServer) -> None:
    system = {"role": "system", "content": "Generate a short title for this conversation."}
    first = {"role": "user", "content": "please fix the flaky login test today! [[tokens: 9]]"}
    text = "".join(deltas(stream(server, [system, first]), "content"))
    assert text == "Please Fix The Flaky Login"
    titled = {"role": "user", "content": "whatever [[title: Login Bug Hunt]]"}
    assert "".join(deltas(stream(server, [system, titled]), "content")) == "Login Bug Hunt"


def test_list_content_and_default_reply(server: ScriptedLLMServer) -> None:
    parts = [{"type": "text", "text": "What is"}, {"type": "text", "text": "[[mystery: x]] up?"}]
    text = "".join(deltas(stream(server, [{"role": "user", "content": parts}]), "content"))
    assert text == "You said: What is\n up?"


def test_non_streaming_completion(server: ScriptedLLMServer) -> None:
    response = litellm.completion(
        model="openai/scripted",
        api_base=server.base_url,
        api_key="x",
        messages=user("[[reasoning: hmm]] [[reply: plain answer]] [[tool: ping {}]]"),
        timeout=30,
        num_retries=0,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "plain answer"
    assert choice.message.reasoning_content == "hmm"
    assert choice.message.tool_calls[0].function.name == "ping"
    assert response.usage.completion_tokens == 4  # 2 text + 1 reasoning + 1 tool call


def _raw(server: ScriptedLLMServer, method: str, path: str, body: bytes | None = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_plain_http_endpoints(server: ScriptedLLMServer) -> None:
    assert _raw(server, "GET", "/healthz") == (200, b"ok")
    status, body = _raw(server, "GET", "/v1/models")
    assert status == 200 and json.loads(body)["data"][0]["id"] == "scripted"
    status, body = _raw(server, "POST", "/v1/chat/completions", b"{not json")
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"


def test_client_disconnect_mid_stream_does_not_break_the_server(
    server: ScriptedLLMServer,
) -> None:
    payload = {"model": "scripted", "stream": True, "messages": user("[[tokens: 50 delay_ms=5]]")}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(payload))
    response = conn.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.readline().startswith(b"data: {")
    conn.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
        assert r.read() == b"ok"


def test_cli_prints_its_url_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentfarm.scripted_llm", "--port", "0"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("scripted-llm listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].removesuffix("/v1")
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:
            assert r.read() == b"ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
