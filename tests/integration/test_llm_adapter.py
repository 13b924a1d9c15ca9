"""The model adapter against the scripted model server over HTTP (no in-process fakes).

Every test runs four times: for an OpenAI-protocol provider (openai-compat) and for
Anthropic (the scripted server's Messages dialect), each on its direct wire client
(``workers/turn/openai_wire.py``, ``workers/turn/anthropic_wire.py``) and forced through
litellm (what Bedrock, Google, Azure and Vercel use), so every path keeps the same behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from agentfarm.scripted_llm import ScriptedLLMServer
from models.enums import ErrorKind
from workers.turn.llm import LLMError, ResolvedModel, stream_step
from workers.turn.stream_parts import StreamHooks

PATHS = [
    ("openai-compat", "direct"),
    ("openai-compat", "litellm"),
    ("anthropic", "direct"),
    ("anthropic", "litellm"),
]
PROVIDER = "openai-compat"


@pytest.fixture(autouse=True, params=PATHS, ids=["-".join(p) for p in PATHS])
def model_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    from agentfarm.settings import reset_settings_cache

    global PROVIDER
    provider, path = request.param
    PROVIDER = provider
    flag = "true" if path == "direct" else "false"
    monkeypatch.setenv("AGENTFARM_LLM_DIRECT_OPENAI", flag)
    monkeypatch.setenv("AGENTFARM_LLM_DIRECT_ANTHROPIC", flag)
    reset_settings_cache()
    yield f"{provider}-{path}"
    monkeypatch.undo()
    reset_settings_cache()
    PROVIDER = "openai-compat"


@pytest.fixture(scope="module")
def server() -> Any:
    with ScriptedLLMServer() as srv:
        yield srv


def model_for(server: ScriptedLLMServer, api_key: str = "k") -> ResolvedModel:
    # An Anthropic base URL is the host (litellm and the direct client add /v1/messages).
    anthropic = PROVIDER == "anthropic"
    return ResolvedModel(
        provider=PROVIDER,
        model="scripted",
        api_key=api_key,
        base_url=server.base_url.removesuffix("/v1") if anthropic else server.base_url,
        context_limit=1000,
    )


def run(server: ScriptedLLMServer, text: str, *, timeout: float = 10, **kw: Any) -> Any:
    parts: list[dict[str, Any]] = []
    out = stream_step(
        model_for(server, **kw),
        [{"role": "user", "content": text}],
        tools=None,
        hooks=StreamHooks(on_part=parts.append, should_stop=lambda: False),
        first_chunk_timeout=timeout,
        max_output_tokens=100,
    )
    return out, parts


def test_text_reasoning_and_usage(server: ScriptedLLMServer) -> None:
    out, parts = run(server, "[[reasoning: think first]] [[reply: the answer]]")
    assert out.text == "the answer" and out.reasoning == "think first"
    assert {p["type"] for p in parts} == {"reasoning", "text"}
    assert out.usage["input_tokens"] > 0 and out.usage["output_tokens"] > 0
    assert out.finish_reason == "stop"


def test_parallel_tool_calls_are_reassembled(server: ScriptedLLMServer) -> None:
    out, parts = run(server, '[[tool: a {"x": 1}]] [[tool: b {"y": [2, 3]}]]')
    assert [(c.name, c.parsed_args()) for c in out.tool_calls] == [
        ("a", {"x": 1}),
        ("b", {"y": [2, 3]}),
    ]
    assert all(c.id for c in out.tool_calls)
    assert any(p["type"] == "tool-call" and p["args_delta"] for p in parts)


def test_tool_results_go_back_in_the_providers_shape(server: ScriptedLLMServer) -> None:
    """A tool round trip: the scripted server checks the second request as the provider
    would (for Anthropic: every tool_use answered by a tool_result in the next user turn)."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "execute",
                "description": "Run a command",
                "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
            },
        }
    ]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": '[[tool: execute {"command": "ls"}]] [[tool: execute {}]]'},
    ]
    hooks = StreamHooks(on_part=lambda _p: None, should_stop=lambda: False)
    first = stream_step(model_for(server), messages, tools=tools, hooks=hooks,
                        first_chunk_timeout=10, max_output_tokens=100)  # fmt: skip
    assert first.finish_reason == "tool_calls" and len(first.tool_calls) == 2
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for c in first.tool_calls
            ],
        }
    )  # fmt: skip
    for n, call in enumerate(first.tool_calls):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f'{{"n": {n}}}'})
    second = stream_step(model_for(server), messages, tools=tools, hooks=hooks,
                         first_chunk_timeout=10, max_output_tokens=100)  # fmt: skip
    assert second.finish_reason == "stop"
    assert second.text == (
        f'Tool results received: {first.tool_calls[0].id}={{"n": 0}}; '
        f'{first.tool_calls[1].id}={{"n": 1}}'
    )
    if PROVIDER != "anthropic":
        return  # the scripted chat-completions dialect does not check tool pairing
    # A result left out is refused by Anthropic, and the refusal is not retried.
    with pytest.raises(LLMError) as info:
        stream_step(model_for(server), messages[:-1] + [{"role": "user", "content": "next"}],
                    tools=tools, hooks=hooks, first_chunk_timeout=10,
                    max_output_tokens=100)  # fmt: skip
    assert info.value.status_code == 400 and not info.value.retryable


def test_first_chunk_guard_is_a_retryable_startup_timeout(server: ScriptedLLMServer) -> None:
    with pytest.raises(LLMError) as info:
        run(server, "[[stall_ms: 1500]] [[reply: late]]", timeout=0.3)
    assert info.value.kind == ErrorKind.STARTUP_TIMEOUT and info.value.retryable


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, ErrorKind.RATE_LIMIT, True),
        (529, ErrorKind.OVERLOADED, True),
        (503, ErrorKind.OVERLOADED, True),
        (500, ErrorKind.GENERIC, True),
        (400, ErrorKind.CONFIG, False),
    ],
)
def test_http_failures_are_classified(
    server: ScriptedLLMServer, status: int, kind: ErrorKind, retryable: bool, model_path: str
) -> None:
    # [[fail]] counts identical conversations: each path gets its own.
    with pytest.raises(LLMError) as info:
        run(server, f"[[fail: {status} times=1]] classify {status} on {model_path}")
    assert (info.value.kind, info.value.retryable) == (kind, retryable)
    if model_path == "anthropic-litellm" and status == 529:
        status = 500  # litellm reports Anthropic's overload as an InternalServerError
    assert info.value.status_code == status


def test_bad_key_is_auth_and_not_retried(server: ScriptedLLMServer) -> None:
    with pytest.raises(LLMError) as info:
        run(server, "[[reply: x]]", api_key="reject-me")
    assert info.value.kind == ErrorKind.AUTH and not info.value.retryable


def test_stop_request_ends_the_stream_early(server: ScriptedLLMServer) -> None:
    seen: list[dict[str, Any]] = []
    out = stream_step(
        model_for(server),
        [{"role": "user", "content": "[[tokens: 200 delay_ms=5]]"}],
        tools=None,
        hooks=StreamHooks(on_part=seen.append, should_stop=lambda: len(seen) >= 3),
        first_chunk_timeout=10,
        max_output_tokens=100,
    )
    assert out.stopped and out.text.startswith("tok0 tok1 tok2") and len(seen) < 10


def test_non_streamed_completion(server: ScriptedLLMServer) -> None:
    from workers.turn.llm import complete_text

    messages = [
        {"role": "system", "content": "Generate a short title for this chat."},
        {"role": "user", "content": "[[title: Fix The Login Test]] please fix it"},
    ]
    text = complete_text(model_for(server), messages, timeout=10, max_tokens=20)
    assert text == "Fix The Login Test"
    with pytest.raises(LLMError) as info:
        complete_text(model_for(server, api_key="reject-me"), messages, timeout=10, max_tokens=20)
    assert info.value.kind == ErrorKind.AUTH and info.value.status_code == 401
