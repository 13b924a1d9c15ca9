"""The model adapter against the scripted model server over HTTP (no in-process fakes).

Every test runs twice: on the direct OpenAI-wire client (what openai / openai-compat /
openrouter models use) and forced through litellm's stream wrapper (what every other
provider uses), so both paths keep the same behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from agentfarm.scripted_llm import ScriptedLLMServer
from models.enums import ErrorKind
from workers.turn.llm import LLMError, ResolvedModel, StreamHooks, stream_step


@pytest.fixture(autouse=True, params=["direct", "litellm"])
def model_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    from agentfarm.settings import reset_settings_cache

    direct = request.param == "direct"
    monkeypatch.setenv("AGENTFARM_LLM_DIRECT_OPENAI", "true" if direct else "false")
    reset_settings_cache()
    yield request.param
    monkeypatch.undo()
    reset_settings_cache()


@pytest.fixture(scope="module")
def server() -> Any:
    with ScriptedLLMServer() as srv:
        yield srv


def model_for(server: ScriptedLLMServer, api_key: str = "k") -> ResolvedModel:
    return ResolvedModel(
        provider="openai-compat",
        model="scripted",
        api_key=api_key,
        base_url=server.base_url,
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
