"""The ``agents`` experiment gate in front of the chat routes (reference §1.1, §5.9).

Coder mounts ``/api/experimental/chats`` (and the admin MCP servers) behind
``RequireExperiment(agents)``. When ``AGENTFARM_EXPERIMENTS`` does not name ``agents`` (the
``*`` wildcard does not count) every request under those prefixes, HTTP or WebSocket, is
refused with Coder's experiment-required error. [inferred] The status is 403, with the message
Coder's middleware writes (``"<display name> functionality requires enabling the '<name>'
experiment."``; the display name "Agents" is itself inferred). [inferred] The gate answers
before authentication, so a disabled feature gives the same answer to everyone; Coder checks
the session token first.
"""

from __future__ import annotations

import json
from typing import Any

from agentfarm.settings import Settings, experiment_enabled

AGENTS = "agents"
GATED_PREFIXES = ("/api/experimental/chats", "/api/experimental/mcp")
EXPERIMENT_REQUIRED = f"Agents functionality requires enabling the '{AGENTS}' experiment."


def _gated(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in GATED_PREFIXES)


class ExperimentGate:
    """Pure ASGI middleware: refuses the gated routes while the experiment is off."""

    def __init__(self, app: Any, settings: Settings):
        self.app = app
        self.enabled = experiment_enabled(settings, AGENTS)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.enabled or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not _gated(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"message": EXPERIMENT_REQUIRED}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if scope["type"] == "websocket":
            await receive()  # the client's websocket.connect
            # Refuse the handshake with an HTTP response where the server supports it
            # (uvicorn does), else close before accepting (clients see a 403).
            if "websocket.http.response" in scope.get("extensions", {}):
                start = {"type": "websocket.http.response.start", "status": 403}
                await send({**start, "headers": headers})
                await send({"type": "websocket.http.response.body", "body": body})
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})
