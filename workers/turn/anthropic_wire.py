"""The direct streaming path for Anthropic's Messages API (provider ``anthropic``): the
prompt (chat-completions messages, as ``workers.turn.prompt`` builds them) translated to a
``/v1/messages`` request, the SSE events decoded with ``json.loads`` on the pooled client
``workers.turn.openai_wire`` keeps, nothing else per event.

Why: litellm's Anthropic stream wrapper turns every event into pydantic chunk objects and runs
its logging and cost bookkeeping per chunk; ``bench/llm_cpu.py`` measured it at ~17x the CPU
of a raw httpx stream, on the worker's hottest loop (issue 15). litellm still serves Bedrock,
Google, Azure and Vercel, and ``AGENTFARM_LLM_DIRECT_OPENAI=false`` sends this provider
through it again.

The translation follows Anthropic's rules: every system message joins the top-level
``system`` blocks; tool results become ``tool_result`` blocks of a user message; messages of
one role in a row are merged (the API wants user and assistant turns to alternate, starting
with the user); a tool call's arguments become its ``input`` object. Reasoning effort maps to
an extended-thinking budget as litellm maps it (low 1024, medium 2048, high 4096, max 16384
tokens), kept below ``max_tokens`` as the API requires.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import httpx

from models.providers.model_options import reasoning_effort_for
from workers.turn.openai_wire import (
    ProviderHTTPError,
    client,
    error_text,
    message_of,
    sse_data,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
SAMPLING = ("temperature", "top_p", "top_k")
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192,
                    "max": 16384}  # fmt: skip
MIN_THINKING_BUDGET = 1024  # Anthropic refuses a smaller budget
# Anthropic's finish reasons in OpenAI's words (what the step and its events speak).
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
}
# In-stream error types and the HTTP status the same error would have had (drives classify()).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def messages_url(configured: str | None) -> str:
    """The Messages endpoint for a provider row's base URL (none: Anthropic's own). A base URL
    may be given with or without its ``/v1`` or ``/v1/messages`` suffix."""
    url = (configured or DEFAULT_BASE_URL).rstrip("/")
    if url.endswith("/v1/messages"):
        return url
    if url.endswith("/v1"):
        return f"{url}/messages"
    return f"{url}/v1/messages"


def request_body(
    model: str,
    options: dict[str, Any],
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    max_tokens: int,
    *,
    stream: bool = True,
) -> dict[str, Any]:
    """The Messages request for a chat-completions prompt and a model config's options."""
    system, turns = translate_messages(messages)
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if stream:
        body["stream"] = True
    if system:
        body["system"] = system
    if tools:
        body["tools"] = [translate_tool(t) for t in tools]
    for key in SAMPLING:
        if options.get(key) is not None:
            body[key] = options[key]
    effort = reasoning_effort_for("anthropic", options)
    if effort and effort != "none":
        budget = THINKING_BUDGETS.get(effort, THINKING_BUDGETS["medium"])
        if budget >= max_tokens:
            # The budget must stay below max_tokens; with no room for the minimum the request
            # goes without thinking rather than being refused.
            budget = max_tokens - 1
        if budget >= MIN_THINKING_BUDGET:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return body


def translate_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions function tool as an Anthropic tool."""
    fn = tool.get("function") or tool
    out: dict[str, Any] = {
        "name": fn.get("name", ""),
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def translate_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating user/assistant messages) for chat-completions messages."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"))
            if text:
                system.append({"type": "text", "text": text})
        elif role == "user":
            add("user", _user_blocks(message.get("content")))
        elif role == "assistant":
            add("assistant", _assistant_blocks(message))
        elif role == "tool":
            add("user", [_tool_result(message)])
    if not turns or turns[0]["role"] != "user":
        # The API wants the user first (a transcript can start with the assistant after a
        # compaction cut); a neutral first turn keeps the rest as it is.
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": "Continue."}]})
    return system, turns


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            image = _image_block((part.get("image_url") or {}).get("url", ""))
            if image is not None:
                blocks.append(image)
    return blocks


def _image_block(url: str) -> dict[str, Any] | None:
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                             "data": data}}  # fmt: skip
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    return None


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text_of(message.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": fn.get("name", ""),
                "input": _tool_input(fn.get("arguments")),
            }
        )
    return blocks


def _tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic requires (arguments that were not a
    JSON object are kept under ``input``, so the model still sees what it sent)."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if arguments else {}
    except (TypeError, ValueError):
        return {"input": arguments}
    return value if isinstance(value, dict) else {"input": value}


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": message.get("tool_call_id", ""),
        "content": _text_of(message.get("content")) or "{}",
    }


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"anthropic-version": API_VERSION, "Accept": "text/event-stream"}
    if api_key:
        headers["x-api-key"] = api_key
    return headers


def stream(
    url: str,
    api_key: str | None,
    body: dict[str, Any],
    *,
    timeout: httpx.Timeout,
    set_closer: Callable[[Callable[[], None] | None], None],
) -> Iterator[dict[str, Any]]:
    """POST the request and yield each decoded SSE event; raises ProviderHTTPError (an HTTP
    error status, or an ``error`` event in the stream). ``event:`` lines repeat the data's
    own ``type`` and are skipped."""
    # closing(): stopping this generator closes the response now, not at garbage collection.
    with closing(sse_data(url, _headers(api_key), body, timeout, set_closer)) as sse:
        for data in sse:
            event = json.loads(data)
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "error":
                error = event.get("error") or {}
                status = ERROR_STATUS.get(str(error.get("type")))
                raise ProviderHTTPError(status, message_of(error))
            yield event
            if kind == "message_stop":
                return


def complete(url: str, api_key: str | None, body: dict[str, Any], *, timeout: httpx.Timeout) -> str:
    """One non-streamed call (titles, proposals); returns the text."""
    body = {k: v for k, v in body.items() if k != "stream"}
    response = client().post(url, json=body, headers=_headers(api_key), timeout=timeout)
    if response.status_code >= 400:
        raise ProviderHTTPError(response.status_code, error_text(response))
    payload = response.json()
    return "".join(
        b.get("text", "") for b in payload.get("content") or [] if b.get("type") == "text"
    )


class StreamState:
    """What the absorber remembers between events: which content block is which tool call."""

    def __init__(self) -> None:
        self.tool_of_block: dict[int, int] = {}
        self.usage: dict[str, int] = {}


def usage_dict(usage: dict[str, Any], into: dict[str, int]) -> dict[str, int]:
    """Anthropic usage (message_start carries the input side, message_delta the output side)
    merged into the step's usage keys. ``input_tokens`` counts the whole prompt, as OpenAI's
    ``prompt_tokens`` does: Anthropic's own excludes cached and cache-written tokens."""

    def num(name: str) -> int | None:
        value = usage.get(name)
        return int(value) if isinstance(value, int | float) else None

    fresh, read = num("input_tokens"), num("cache_read_input_tokens")
    written = num("cache_creation_input_tokens")
    if fresh is not None or read is not None or written is not None:
        into["input_tokens"] = (fresh or 0) + (read or 0) + (written or 0)
        into["cache_read_tokens"] = read or 0
        into["cache_creation_tokens"] = written or 0
    output = num("output_tokens")
    if output is not None:
        into["output_tokens"] = output
    into["total_tokens"] = into.get("input_tokens", 0) + into.get("output_tokens", 0)
    into.setdefault("reasoning_tokens", 0)
    return into
