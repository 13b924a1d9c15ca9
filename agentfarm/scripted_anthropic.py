"""The scripted model's Anthropic dialect: ``POST /v1/messages`` on the same server.

A Messages request is checked as Anthropic checks it (``max_tokens`` present, roles user and
assistant only, every ``tool_use`` answered by a ``tool_result`` in the next user turn and no
result without its call, tool inputs as objects, a thinking budget of at least 1024 tokens
below ``max_tokens``), then read as the chat-completions conversation it stands for, so the
same ``[[...]]`` directives (``agentfarm.scripted_replies``) decide the reply. The reply is
rendered as a Messages body or as its SSE events (``message_start``, content blocks for
thinking, text and each tool call, ``message_delta`` with the stop reason and output tokens,
``message_stop``). Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from typing import Any

from agentfarm.scripted_replies import MODEL_ID, Script, build_usage, split_pieces

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class InvalidRequest(ValueError):
    """The request breaks one of the Messages API's rules (answered 400)."""


def error_body(status: int, message: str) -> dict[str, Any]:
    """An Anthropic error object for ``status``."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions request a valid Messages request stands for; raises
    InvalidRequest."""
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (a positive integer)")
    _check_thinking(body.get("thinking"), max_tokens)
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not tool.get("name") or "input_schema" not in tool:
            raise InvalidRequest(f"tools.{index}: name and input_schema are required")
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise InvalidRequest("messages: at least one message is required")
    messages = _system_messages(body.get("system"))
    pending: set[str] = set()  # tool_use ids the next user turn must answer
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{index}.role: must be 'user' or 'assistant'")
        blocks = _blocks(turn.get("content"), index)
        if turn["role"] == "assistant":
            if pending:
                raise InvalidRequest(_unanswered(index, pending))
            messages.append(_assistant(blocks, index))
            pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
        else:
            answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
            if answered - pending:
                raise InvalidRequest(
                    f"messages.{index}.content: unexpected tool_use_id found in tool_result "
                    f"blocks: {sorted(str(a) for a in answered - pending)}. Each tool_result "
                    "block must have a corresponding tool_use block in the previous message."
                )
            if pending - answered:
                raise InvalidRequest(_unanswered(index, pending - answered))
            pending = set()
            messages.extend(_user(blocks))
    chat: dict[str, Any] = {"model": body.get("model") or MODEL_ID, "messages": messages}
    chat["stream"] = bool(body.get("stream"))
    chat["stream_options"] = {"include_usage": True}
    return chat


def _unanswered(index: int, ids: set[str]) -> str:
    return (
        f"messages.{index}: tool_use ids were found without tool_result blocks immediately "
        f"after: {sorted(ids)}. Each tool_use block must have a corresponding tool_result block "
        "in the next message."
    )


def _check_thinking(thinking: Any, max_tokens: int) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        raise InvalidRequest("thinking: type must be 'enabled' or 'disabled'")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise InvalidRequest("thinking.budget_tokens: must be at least 1024")
        if budget >= max_tokens:
            raise InvalidRequest("max_tokens must be greater than thinking.budget_tokens")


def _system_messages(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" for b in system
    ):
        return [{"role": "system", "content": "\n".join(b.get("text", "") for b in system)}]
    raise InvalidRequest("system: must be a string or a list of text blocks")


def _blocks(content: Any, index: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise InvalidRequest(f"messages.{index}.content: must be a string or a non-empty list")
    for block in content:
        if not isinstance(block, dict) or block.get("type") not in (
            "text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking",
        ):  # fmt: skip
            raise InvalidRequest(f"messages.{index}.content: unknown content block {block!r}")
        if block["type"] == "text" and not block.get("text"):
            raise InvalidRequest(f"messages.{index}.content: text content blocks must be non-empty")
        if block["type"] == "tool_use" and not isinstance(block.get("input"), dict):
            raise InvalidRequest(f"messages.{index}.content: tool_use.input must be an object")
    return content


def _assistant(blocks: list[dict[str, Any]], index: int) -> dict[str, Any]:
    if any(b["type"] == "tool_result" for b in blocks):
        raise InvalidRequest(f"messages.{index}: tool_result blocks belong to user messages")
    text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": json.dumps(b["input"])},
        }
        for b in blocks
        if b["type"] == "tool_use"
    ]
    if calls:
        message["tool_calls"] = calls
    return message


def _user(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results first (one tool message each), then the user's own text, if any."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        if block["type"] == "tool_result":
            content = block.get("content")
            if isinstance(content, list):
                content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                        "content": content or ""})  # fmt: skip
    text = "\n".join(b.get("text", "") for b in blocks if b["type"] == "text")
    if text or not out:
        out.append({"role": "user", "content": text})
    return out


def _stop_reason(script: Script) -> str:
    return "tool_use" if script.tool_calls else "end_turn"


def _usage(script: Script, chat: dict[str, Any]) -> tuple[int, int]:
    usage = build_usage(script, chat)
    return int(usage["prompt_tokens"]), int(usage["completion_tokens"])


def message_id(chat: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(chat.get("messages"), sort_keys=True).encode())
    return "msg_" + digest.hexdigest()[:24]


def message_body(script: Script, chat: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed Messages reply."""
    content: list[dict[str, Any]] = []
    if script.reasoning:
        content.append({"type": "thinking", "thinking": script.reasoning, "signature": "scripted"})
    if script.content:
        content.append({"type": "text", "text": script.content})
    for call in script.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name,
                        "input": json.loads(call.arguments or "{}")})  # fmt: skip
    prompt, completion = _usage(script, chat)
    return {
        "id": message_id(chat),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model") or MODEL_ID,
        "content": content,
        "stop_reason": _stop_reason(script),
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }


def stream_events(script: Script, chat: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The SSE events of a streamed reply, in Anthropic's order."""
    prompt, completion = _usage(script, chat)
    yield {
        "type": "message_start",
        "message": {
            "id": message_id(chat), "type": "message", "role": "assistant",
            "model": chat.get("model") or MODEL_ID, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": prompt, "output_tokens": 1},
        },
    }  # fmt: skip
    yield {"type": "ping"}
    index = 0
    if script.reasoning:
        yield _start(index, {"type": "thinking", "thinking": ""})
        for piece in split_pieces(script.reasoning):
            yield _delta(index, {"type": "thinking_delta", "thinking": piece})
        yield _delta(index, {"type": "signature_delta", "signature": "scripted"})
        yield {"type": "content_block_stop", "index": index}
        index += 1
    if script.content:
        yield _start(index, {"type": "text", "text": ""})
        for piece in split_pieces(script.content):
            yield _delta(index, {"type": "text_delta", "text": piece})
        yield {"type": "content_block_stop", "index": index}
        index += 1
    for call in script.tool_calls:
        yield _start(index, {"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        size = max(1, math.ceil(len(call.arguments) / 3))
        for start in range(0, len(call.arguments), size):
            fragment = call.arguments[start : start + size]
            yield _delta(index, {"type": "input_json_delta", "partial_json": fragment})
        yield {"type": "content_block_stop", "index": index}
        index += 1
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": _stop_reason(script), "stop_sequence": None},
        "usage": {"output_tokens": completion},
    }
    yield {"type": "message_stop"}


def _start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}
