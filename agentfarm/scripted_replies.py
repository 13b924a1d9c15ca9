"""What the scripted LLM answers: ``[[name: args]]`` directives in the latest user message
become a :class:`Script` (text pieces, tool calls, usage, timing, errors), rendered as an
OpenAI chat-completions body or stream. ``agentfarm.scripted_llm`` serves it over HTTP; see
``docs/scripted-llm.md`` for the directives. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MODEL_ID = "scripted"
TITLE_MARKER = "Generate a short title"
SUMMARY_MARKER = "Summarize the conversation so far"
REJECTED_API_KEY = "reject-me"

_DIRECTIVE_RE = re.compile(r"\[\[\s*([A-Za-z_][\w-]*)\s*(?::(.*?))?\]\]", re.DOTALL)
_TOOL_RE = re.compile(r"([\w.-]+)\s*(.*)", re.DOTALL)
_PIECE_RE = re.compile(r"\S+\s*|\s+")
_PLACEHOLDER_RE = re.compile(r"\{\{(\d+)\.([\w-]+)\}\}")
_ERROR_KINDS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    503: ("server_error", "service_unavailable"),
    529: ("overloaded_error", "overloaded"),
}


class DirectiveError(ValueError):
    """A known directive carries arguments that cannot be parsed."""


@dataclass
class ToolCall:
    """One scripted tool call; ``arguments`` is the JSON text sent to the client."""

    id: str
    name: str
    arguments: str


@dataclass
class Script:
    """Everything the server will do for one request."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    delay_s: float = 0.0
    stall_s: float = 0.0
    fail_status: int | None = None
    fail_times: int = 1
    usage_override: dict[str, int] = field(default_factory=dict)

    @property
    def finish_reason(self) -> str:
        """``tool_calls`` when the reply calls tools, else ``stop``."""
        return "tool_calls" if self.tool_calls else "stop"


def message_text(message: dict[str, Any]) -> str:
    """The text of a message whose content is a string or a list of ``text`` parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def parse_directives(text: str) -> dict[str, list[str]]:
    """Map each directive name found in ``text`` to its (stripped) arguments, in order."""
    found: dict[str, list[str]] = {}
    for match in _DIRECTIVE_RE.finditer(text):
        found.setdefault(match.group(1).lower(), []).append((match.group(2) or "").strip())
    return found


def strip_directives(text: str) -> str:
    """``text`` with every ``[[...]]`` directive block removed and outer whitespace stripped."""
    return _DIRECTIVE_RE.sub("", text).strip()


def split_pieces(text: str) -> list[str]:
    """Split into word-ish stream tokens; concatenating them gives back ``text`` exactly."""
    return _PIECE_RE.findall(text)


def conversation_hash(messages: list[Any]) -> str:
    """A stable hash of a request's whole message list."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def count_prompt_tokens(messages: list[Any]) -> int:
    """Whitespace-separated words across all message texts, plus one per message."""
    return sum(len(message_text(m).split()) + 1 for m in messages if isinstance(m, dict))


def _numbers(directives: dict[str, list[str]], name: str) -> tuple[list[int], dict[str, int]]:
    """Integer arguments of the last ``name`` directive: positional values and ``key=value``s."""
    positional: list[int] = []
    keywords: dict[str, int] = {}
    for word in (directives.get(name) or [""])[-1].split():
        key, _, value = word.rpartition("=")
        if not value.isdigit():
            raise DirectiveError(f"[[{name}]]: expected a non-negative integer, got {word!r}")
        if key:
            keywords[key] = int(value)
        else:
            positional.append(int(value))
    return positional, keywords


def _first_number(directives: dict[str, list[str]], name: str) -> int:
    positional, _ = _numbers(directives, name)
    if not positional:
        raise DirectiveError(f"[[{name}]]: a number is required")
    return positional[0]


def plan_response(body: dict[str, Any]) -> Script:
    """Decide the reply for a chat-completions request body from its directives."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    user_messages = [m for m in messages if m.get("role") == "user"]
    user_text = message_text(user_messages[-1]) if user_messages else ""
    directives = parse_directives(user_text)
    if _is_title_request(messages):
        return Script(content=_title(user_text, directives))
    if _has_marker(messages, SUMMARY_MARKER):
        return _summary(user_text, directives)
    script = Script(reasoning="\n".join(directives.get("reasoning", [])))
    _apply_timing(script, directives)
    conv = conversation_hash(messages)
    if messages and messages[-1].get("role") == "tool":
        # Round N+1 of tool calls ([[toolN+1: ...]]) when the script has one, else the reply.
        rounds = _tool_rounds(messages)
        later = directives.get(f"tool{rounds + 1}", [])
        if not later:
            script.content = _after_tools_text(messages, directives)
            return script
        results = _trailing_results(messages)
        script.tool_calls = [_tool_call(_fill(a, results), conv, i) for i, a in enumerate(later)]
        return script
    script.tool_calls = [_tool_call(a, conv, i) for i, a in enumerate(directives.get("tool", []))]
    script.content = _content(user_text, directives, bool(script.tool_calls))
    return script


def _is_title_request(messages: list[dict[str, Any]]) -> bool:
    return _has_marker(messages, TITLE_MARKER)


def _has_marker(messages: list[dict[str, Any]], marker: str) -> bool:
    """A system or developer message, or the first message, contains ``marker``."""
    candidates = [m for m in messages if m.get("role") in ("system", "developer")] + messages[:1]
    return any(marker in message_text(m) for m in candidates)


def _summary(user_text: str, directives: dict[str, list[str]]) -> Script:
    """A conversation-summary request: only the ``summary*`` directives apply."""
    if directives.get("summary"):
        script = Script(content=directives["summary"][-1])
    else:
        script = Script(content="Summary: " + " ".join(strip_directives(user_text).split())[:200])
    if "summary_fail" in directives:
        script.fail_status = _first_number(directives, "summary_fail")
        if not 400 <= script.fail_status <= 599:
            raise DirectiveError(f"[[summary_fail]]: status {script.fail_status} is not 4xx/5xx")
        script.fail_times = _numbers(directives, "summary_fail")[1].get("times", 1)
    if "summary_stall_ms" in directives:
        script.stall_s = _first_number(directives, "summary_stall_ms") / 1000
    return script


def _title(user_text: str, directives: dict[str, list[str]]) -> str:
    if directives.get("title"):
        return directives["title"][-1]
    words = strip_directives(user_text).split()[:5]
    title = " ".join(w[:1].upper() + w[1:] for w in words).rstrip(".,;:!?")
    return title or "New Chat"


def _apply_timing(script: Script, directives: dict[str, list[str]]) -> None:
    if "tokens" in directives:
        script.delay_s = _numbers(directives, "tokens")[1].get("delay_ms", 0) / 1000
    if "delay_ms" in directives:
        script.delay_s = _first_number(directives, "delay_ms") / 1000
    if "stall_ms" in directives:
        script.stall_s = _first_number(directives, "stall_ms") / 1000
    if "fail" in directives:
        script.fail_status = _first_number(directives, "fail")
        if not 400 <= script.fail_status <= 599:
            raise DirectiveError(f"[[fail]]: status {script.fail_status} is not 4xx/5xx")
        script.fail_times = _numbers(directives, "fail")[1].get("times", 1)
    if "usage" in directives:
        keywords = _numbers(directives, "usage")[1]
        script.usage_override = {k: v for k, v in keywords.items() if k in ("prompt", "completion")}


def _after_tools_text(messages: list[dict[str, Any]], directives: dict[str, list[str]]) -> str:
    if directives.get("after_tools"):
        return "\n".join(directives["after_tools"])
    trailing: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.insert(0, message)
    results = [f"{m.get('tool_call_id', '?')}={message_text(m)[:80]}" for m in trailing]
    return "Tool results received: " + "; ".join(results)


def _tool_rounds(messages: list[dict[str, Any]]) -> int:
    """Assistant messages with tool calls since the latest user message."""
    rounds = 0
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        if message.get("role") == "assistant" and message.get("tool_calls"):
            rounds += 1
    return rounds


def _trailing_results(messages: list[dict[str, Any]]) -> list[Any]:
    """The trailing tool messages' contents, JSON-decoded where possible, in order."""
    trailing: list[Any] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        text = message_text(message)
        try:
            trailing.insert(0, json.loads(text))
        except ValueError:
            trailing.insert(0, text)
    return trailing


def _fill(args: str, results: list[Any]) -> str:
    """Replace ``{{N.key}}`` with field ``key`` of the N-th trailing tool result."""

    def value(match: re.Match[str]) -> str:
        index, key = int(match.group(1)), match.group(2)
        result = results[index] if index < len(results) else None
        if isinstance(result, dict) and key in result:
            return str(result[key])
        return ""

    return _PLACEHOLDER_RE.sub(value, args)


def _tool_call(args: str, conv: str, index: int) -> ToolCall:
    match = _TOOL_RE.fullmatch(args)
    if match is None:
        raise DirectiveError(f"[[tool: {args}]]: expected 'NAME {{json args}}'")
    # \[ and \] let arguments carry directives for another chat (a subagent's prompt).
    arguments = match.group(2).strip().replace("\\[", "[").replace("\\]", "]")
    name, arguments = match.group(1), arguments or "{}"
    digest = hashlib.sha256(f"{conv}:{index}:{name}:{arguments}".encode()).hexdigest()
    return ToolCall(id=f"call_{digest[:24]}", name=name, arguments=arguments)


def _content(user_text: str, directives: dict[str, list[str]], has_tools: bool) -> str:
    if "reply" in directives:
        return "\n".join(directives["reply"])
    if "tokens" in directives:
        count = _first_number(directives, "tokens")
        return " ".join(f"tok{i}" for i in range(count))
    if has_tools:
        return ""
    return "You said: " + strip_directives(user_text)[:200]


def build_usage(script: Script, body: dict[str, Any]) -> dict[str, Any]:
    """The usage object for a scripted reply (deterministic token accounting)."""
    reasoning_tokens = len(split_pieces(script.reasoning))
    completion = len(split_pieces(script.content)) + reasoning_tokens + len(script.tool_calls)
    prompt = script.usage_override.get("prompt", count_prompt_tokens(body.get("messages") or []))
    completion = script.usage_override.get("completion", max(completion, 1))
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return usage


def error_body(status: int, message: str) -> dict[str, Any]:
    """An OpenAI-style error object for ``status``."""
    kind, code = _ERROR_KINDS.get(status, ("api_error", f"http_{status}"))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def completion_body(script: Script, body: dict[str, Any], chat_id: str) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": script.content}
    if script.tool_calls:
        message["content"] = script.content or None
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in script.tool_calls
        ]
    if script.reasoning:
        message["reasoning_content"] = script.reasoning
    return {
        "id": chat_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or MODEL_ID,
        "choices": [{"index": 0, "message": message, "finish_reason": script.finish_reason}],
        "usage": build_usage(script, body),
    }


def stream_chunks(script: Script, body: dict[str, Any], chat_id: str) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed reply, usage chunk included."""
    base = {"id": chat_id, "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = body.get("model") or MODEL_ID

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in split_pieces(script.reasoning):
        yield chunk({"reasoning_content": piece})
    for piece in split_pieces(script.content):
        yield chunk({"content": piece})
    for index, call in enumerate(script.tool_calls):
        head = {"index": index, "id": call.id, "type": "function"}
        yield chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
        size = max(1, math.ceil(len(call.arguments) / 3))
        for start in range(0, len(call.arguments), size):
            fragment = call.arguments[start : start + size]
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    yield chunk({}, script.finish_reason)
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": build_usage(script, body)}
