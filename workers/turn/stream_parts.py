"""A provider's stream, chunk by chunk, into one :class:`StepOutput`: the absorbers for the
direct OpenAI-wire chunks (decoded JSON), litellm's chunk objects and Anthropic's events, and
the types they fill. Each absorber runs once per streamed token, so it does no more than add
the delta and hand the part to the step's hook.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workers.turn import anthropic_wire


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str = ""

    def parsed_args(self) -> Any:
        try:
            return json.loads(self.arguments) if self.arguments else {}
        except json.JSONDecodeError:
            return self.arguments


@dataclass
class StepOutput:
    """What one streamed call produced (possibly partial if it was stopped)."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    provider_response_id: str | None = None
    stopped: bool = False

    def has_content(self) -> bool:
        return bool(self.text or self.reasoning or self.tool_calls)


@dataclass
class StreamHooks:
    """Callbacks the step gives the stream: parts out, stop requests in."""

    on_part: Callable[[dict[str, Any]], None]
    should_stop: Callable[[], bool]
    # Receives a function that aborts the HTTP stream from another thread (interrupts).
    set_closer: Callable[[Callable[[], None] | None], None] = lambda _closer: None
    # Called once with the seconds until the first chunk (time to first token).
    on_first_chunk: Callable[[float], None] = lambda _seconds: None


def anthropic_absorber() -> Callable[[dict[str, Any], StepOutput, StreamHooks], None]:
    """An absorber for one Anthropic stream (it maps content blocks to tool calls)."""
    state = anthropic_wire.StreamState()

    def absorb(event: dict[str, Any], out: StepOutput, hooks: StreamHooks) -> None:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                out.text += delta["text"]
                hooks.on_part({"type": "text", "text": delta["text"]})
            elif dtype == "thinking_delta" and delta.get("thinking"):
                out.reasoning += delta["thinking"]
                hooks.on_part({"type": "reasoning", "text": delta["thinking"]})
            elif dtype == "input_json_delta" and delta.get("partial_json"):
                call = state.tool_of_block.get(event.get("index", -1))
                if call is not None:
                    _absorb_tool_delta_parts(call, None, None, delta["partial_json"], out, hooks)
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                call = len(out.tool_calls)
                state.tool_of_block[event.get("index", -1)] = call
                _absorb_tool_delta_parts(call, block.get("id"), block.get("name"), None, out,
                                         hooks)  # fmt: skip
            elif block.get("type") == "text" and block.get("text"):
                out.text += block["text"]
                hooks.on_part({"type": "text", "text": block["text"]})
        elif kind == "message_start":
            message = event.get("message") or {}
            out.provider_response_id = message.get("id")
            out.usage = anthropic_wire.usage_dict(message.get("usage") or {}, state.usage)
        elif kind == "message_delta":
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                out.finish_reason = anthropic_wire.STOP_REASONS.get(reason, reason)
            out.usage = anthropic_wire.usage_dict(event.get("usage") or {}, state.usage)

    return absorb


def absorb_raw(chunk: dict[str, Any], out: StepOutput, hooks: StreamHooks) -> None:
    """``_absorb_chunk`` for a decoded JSON chunk of the direct path."""
    if out.provider_response_id is None:
        out.provider_response_id = chunk.get("id")
    usage = chunk.get("usage")
    if usage:
        out.usage = _usage_from_dict(usage)
    choices = chunk.get("choices")
    if not choices:
        return
    choice = choices[0]
    if choice.get("finish_reason"):
        out.finish_reason = choice["finish_reason"]
    delta = choice.get("delta") or {}
    # reasoning_content (DeepSeek/vLLM style, our scripted model) or reasoning (OpenRouter)
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if reasoning and isinstance(reasoning, str):
        out.reasoning += reasoning
        hooks.on_part({"type": "reasoning", "text": reasoning})
    content = delta.get("content")
    if content:
        out.text += content
        hooks.on_part({"type": "text", "text": content})
    for tc in delta.get("tool_calls") or []:
        fn = tc.get("function") or {}
        _absorb_tool_delta_parts(
            tc.get("index"), tc.get("id"), fn.get("name"), fn.get("arguments"), out, hooks
        )


def _usage_from_dict(usage: dict[str, Any]) -> dict[str, int]:
    def num(obj: Any, name: str) -> int:
        value = obj.get(name) if isinstance(obj, dict) else None
        return int(value) if isinstance(value, int | float) else 0

    return {
        "input_tokens": num(usage, "prompt_tokens"),
        "output_tokens": num(usage, "completion_tokens"),
        "total_tokens": num(usage, "total_tokens"),
        "reasoning_tokens": num(usage.get("completion_tokens_details"), "reasoning_tokens"),
        "cache_read_tokens": num(usage.get("prompt_tokens_details"), "cached_tokens"),
        "cache_creation_tokens": num(usage, "cache_creation_input_tokens"),
    }


def absorb_chunk(chunk: Any, out: StepOutput, hooks: StreamHooks) -> None:
    if out.provider_response_id is None:
        out.provider_response_id = getattr(chunk, "id", None)
    usage = getattr(chunk, "usage", None)
    if usage:
        out.usage = _usage_dict(usage)
    if not chunk.choices:
        return
    choice = chunk.choices[0]
    if choice.finish_reason:
        out.finish_reason = choice.finish_reason
    delta = choice.delta
    reasoning = getattr(delta, "reasoning_content", None)
    if reasoning:
        out.reasoning += reasoning
        hooks.on_part({"type": "reasoning", "text": reasoning})
    if delta.content:
        out.text += delta.content
        hooks.on_part({"type": "text", "text": delta.content})
    for tc in getattr(delta, "tool_calls", None) or []:
        _absorb_tool_delta(tc, out, hooks)


def _absorb_tool_delta(tc: Any, out: StepOutput, hooks: StreamHooks) -> None:
    fn = tc.function
    _absorb_tool_delta_parts(
        tc.index,
        tc.id,
        fn.name if fn is not None else None,
        fn.arguments if fn is not None else None,
        out,
        hooks,
    )


def _absorb_tool_delta_parts(
    index: int | None,
    call_id: str | None,
    name: str | None,
    args: str | None,
    out: StepOutput,
    hooks: StreamHooks,
) -> None:
    index = index if index is not None else len(out.tool_calls)
    while len(out.tool_calls) <= index:
        out.tool_calls.append(ToolCall(id="", name=""))
    call = out.tool_calls[index]
    if call_id:
        call.id = call_id
    if name:
        call.name = name
    if args:
        call.arguments += args
    hooks.on_part(
        {
            "type": "tool-call",
            "tool_call_id": call.id,
            "tool_name": call.name,
            "args_delta": args or "",
        }
    )


def _usage_dict(usage: Any) -> dict[str, int]:
    def num(obj: Any, name: str) -> int:
        value = getattr(obj, name, None) if obj is not None else None
        return int(value) if isinstance(value, int | float) else 0

    details = getattr(usage, "completion_tokens_details", None)
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    return {
        "input_tokens": num(usage, "prompt_tokens"),
        "output_tokens": num(usage, "completion_tokens"),
        "total_tokens": num(usage, "total_tokens"),
        "reasoning_tokens": num(details, "reasoning_tokens"),
        "cache_read_tokens": num(prompt_details, "cached_tokens"),
        "cache_creation_tokens": num(usage, "cache_creation_input_tokens"),
    }
