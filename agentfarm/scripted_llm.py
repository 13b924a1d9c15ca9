"""A deterministic, scripted OpenAI-compatible chat-completions server, which also answers
Anthropic's Messages API on ``/v1/messages`` (``agentfarm.scripted_anthropic``).

The dev farm and the test-suite point the worker at this server (model ``openai/scripted``,
``api_base`` = :attr:`ScriptedLLMServer.base_url`) instead of a real LLM. What it answers is
driven by ``[[name: args]]`` directives in the latest user message; see ``docs/scripted-llm.md``.
Standard library only, so it starts instantly.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentfarm import scripted_anthropic
from agentfarm.scripted_replies import (
    MODEL_ID,
    REJECTED_API_KEY,
    SUMMARY_MARKER,
    TITLE_MARKER,
    DirectiveError,
    Script,
    completion_body,
    conversation_hash,
    error_body,
    plan_response,
    stream_chunks,
)

__all__ = [
    "MODEL_ID",
    "REJECTED_API_KEY",
    "SUMMARY_MARKER",
    "TITLE_MARKER",
    "ScriptedLLMServer",
    "main",
]
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


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
        path = self.path.rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/messages"):
            self._send(404, error_body(404, f"no route for POST {self.path}"))
            return
        anthropic = path == "/v1/messages"
        errors = scripted_anthropic.error_body if anthropic else error_body
        try:
            body = json.loads(raw or b"null")
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
        except ValueError as exc:
            self._send(400, errors(400, f"invalid JSON body: {exc}"))
            return
        self.server.owner.record(body)
        if anthropic:
            key = self.headers.get("x-api-key", "")
        else:
            key = self.headers.get("Authorization", "").strip().removeprefix("Bearer ")
        if key.strip() == REJECTED_API_KEY:
            self._send(401, errors(401, "invalid api key"))
            return
        try:
            if anthropic and not self.headers.get("anthropic-version"):
                raise scripted_anthropic.InvalidRequest("anthropic-version: header is required")
            chat = scripted_anthropic.chat_request(body) if anthropic else body
            script = plan_response(chat)
        except (DirectiveError, scripted_anthropic.InvalidRequest) as exc:
            self._send(400, errors(400, str(exc)))
            return
        time.sleep(script.stall_s)
        if self._maybe_fail(script, chat, errors):
            return
        if anthropic:
            self._respond_anthropic(script, chat)
        else:
            self._respond(script, body)

    def _maybe_fail(
        self, script: Script, body: dict[str, Any], errors: Callable[[int, str], Any]
    ) -> bool:
        if script.fail_status is None:
            return False
        conv = conversation_hash(body.get("messages") or [])
        attempt = self.server.owner.next_failure(conv, script.fail_times)
        if attempt is None:
            return False
        status, times = script.fail_status, script.fail_times
        headers = {"Retry-After": "0"} if status == 429 else {}
        message = f"scripted failure {status} (attempt {attempt} of {times})"
        self._send(status, errors(status, message), headers)
        return True

    def _start_stream(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

    def _respond(self, script: Script, body: dict[str, Any]) -> None:
        chat_id = "chatcmpl-" + conversation_hash(body.get("messages") or [])[:24]
        if not body.get("stream"):
            self._send(200, completion_body(script, body, chat_id))
            return
        self._start_stream()
        for index, chunk in enumerate(stream_chunks(script, body, chat_id)):
            if index and script.delay_s:
                time.sleep(script.delay_s)
            self._write_event(json.dumps(chunk, separators=(",", ":")))
        self._write_event("[DONE]")

    def _respond_anthropic(self, script: Script, chat: dict[str, Any]) -> None:
        if not chat.get("stream"):
            self._send(200, scripted_anthropic.message_body(script, chat))
            return
        self._start_stream()
        for index, event in enumerate(scripted_anthropic.stream_events(script, chat)):
            if index > 1 and script.delay_s:
                time.sleep(script.delay_s)
            data = json.dumps(event, separators=(",", ":"))
            self.wfile.write(f"event: {event['type']}\ndata: {data}\n\n".encode())
            self.wfile.flush()

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
