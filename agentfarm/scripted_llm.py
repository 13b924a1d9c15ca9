"""A deterministic, scripted OpenAI-compatible chat-completions server.

The dev farm and the test-suite point litellm at this server (model ``openai/scripted``,
``api_base`` = :attr:`ScriptedLLMServer.base_url`) instead of a real LLM. What it answers is
driven by ``[[name: args]]`` directives in the latest user message; see ``docs/scripted-llm.md``.
Standard library only, so it starts instantly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "scripted"
TITLE_MARKER = "Generate a short title"
SUMMARY_MARKER = "Summarize the conversation so far"
REJECTED_API_KEY = "reject-me"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

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
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ScriptedLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], _DISCONNECTS):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/healthz":
            self._send(200, b"ok")
        elif self.path.rstrip("/") == "/v1/models":
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "agentfarm"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._send(404, error_body(404, f"no route for GET {self.path}"))

    def do_POST(self) -> None:
        try:
            self._handle_post()
        except _DISCONNECTS:
            self.close_connection = True

    def _handle_post(self) -> None:
        raw = self._read_body()
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, error_body(404, f"no route for POST {self.path}"))
            return
        try:
            body = json.loads(raw or b"null")
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
        except ValueError as exc:
            self._send(400, error_body(400, f"invalid JSON body: {exc}"))
            return
        self.server.owner.record(body)
        if self.headers.get("Authorization", "").strip() == f"Bearer {REJECTED_API_KEY}":
            self._send(401, error_body(401, "invalid api key"))
            return
        try:
            script = plan_response(body)
        except DirectiveError as exc:
            self._send(400, error_body(400, str(exc)))
            return
        time.sleep(script.stall_s)
        if not self._maybe_fail(script, body):
            self._respond(script, body)

    def _maybe_fail(self, script: Script, body: dict[str, Any]) -> bool:
        if script.fail_status is None:
            return False
        conv = conversation_hash(body.get("messages") or [])
        attempt = self.server.owner.next_failure(conv, script.fail_times)
        if attempt is None:
            return False
        status, times = script.fail_status, script.fail_times
        headers = {"Retry-After": "0"} if status == 429 else {}
        message = f"scripted failure {status} (attempt {attempt} of {times})"
        self._send(status, error_body(status, message), headers)
        return True

    def _respond(self, script: Script, body: dict[str, Any]) -> None:
        chat_id = "chatcmpl-" + conversation_hash(body.get("messages") or [])[:24]
        if not body.get("stream"):
            self._send(200, completion_body(script, body, chat_id))
            return
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for index, chunk in enumerate(stream_chunks(script, body, chat_id)):
            if index and script.delay_s:
                time.sleep(script.delay_s)
            self._write_event(json.dumps(chunk, separators=(",", ":")))
        self._write_event("[DONE]")

    def _write_event(self, data: str) -> None:
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()

    def _read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Send a complete response: ``bytes`` as text/plain, anything else as JSON."""
        plain = isinstance(payload, bytes)
        data = payload if plain else json.dumps(payload).encode()
        headers = {"Content-Type": "text/plain" if plain else "application/json", **(headers or {})}
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class ScriptedLLMServer:
    """The scripted model server; serve with :meth:`start` or as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (only known once started)."""
        if self._httpd is None:
            raise RuntimeError("ScriptedLLMServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI ``api_base``, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ScriptedLLMServer:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._requested_port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() returns within ~50 ms
            name=f"scripted-llm:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (safe to call twice)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset(self) -> None:
        """Forget recorded requests and ``[[fail]]`` counters."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    def record(self, body: dict[str, Any]) -> None:
        """Remember a received chat-completions request body."""
        with self._lock:
            self.requests.append(body)

    def next_failure(self, conversation: str, times: int) -> int | None:
        """The failing attempt number (1-based) for this conversation, or None once exhausted."""
        with self._lock:
            done = self._failures.get(conversation, 0)
            if done >= times:
                return None
            self._failures[conversation] = done + 1
            return done + 1

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT: ``python -m agentfarm.scripted_llm --host H --port P``."""
    parser = argparse.ArgumentParser(
        prog="python -m agentfarm.scripted_llm", description="Scripted OpenAI-compatible LLM."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in _STOP_SIGNALS}
    try:
        with ScriptedLLMServer(args.host, args.port) as server:
            print(f"scripted-llm listening on {server.base_url}", flush=True)
            while not stopping.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
