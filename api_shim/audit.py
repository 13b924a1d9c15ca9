"""Audit middleware: records each successful admin change and chat create/patch.

A pure ASGI middleware so that no route has to remember to audit itself: after routing it
knows the route template, and :func:`models.site.audit.classify` decides whether the request is
audited. Only those requests have their (small, JSON) request and response bodies kept, to
take the changed fields and a created resource's id. The entry is written in its own
transaction, in a worker thread (never on the event loop), before the response is complete
(its headers are held until then): a client that has its answer can already read the entry.
A failure to write it is logged, never turned into an error for a change that already
happened.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool

from models import db
from models.site import audit

log = logging.getLogger("agentfarm.audit")
MAX_BODY = 256 * 1024


class AuditTrail:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in audit.ACTIONS:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        request_body = bytearray()
        response_body = bytearray()
        status = {"code": 0, "audited": None}

        async def receive_and_keep() -> Any:
            message = await receive()
            if message.get("type") == "http.request" and len(request_body) < MAX_BODY:
                request_body.extend(message.get("body", b""))
            return message

        held_start: list[dict[str, Any]] = []

        async def send_and_keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = getattr(scope.get("route"), "path", "")
                if status["code"] < 400:  # type: ignore[operator]
                    status["audited"] = audit.classify(scope["method"], route)  # type: ignore[assignment]
                if status["audited"]:
                    # Held back: the server writes the headers at once, and with an empty
                    # body (204, Content-Length: 0) they are the whole response to a client.
                    held_start.append(message)
                    return
            elif message["type"] == "http.response.body" and status["audited"]:
                if len(response_body) < MAX_BODY:
                    response_body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    args = (scope, status, bytes(request_body), bytes(response_body))
                    await run_in_threadpool(self._write, *args)
                if held_start:
                    await send(held_start.pop())
            await send(message)

        await self.app(scope, receive_and_keep, send_and_keep)

    def _write(
        self, scope: dict[str, Any], status: dict[str, Any], request: bytes, response: bytes
    ) -> None:
        resource_type, action = status["audited"]
        user_id, username = scope["state"].get("audit_user", (None, ""))
        headers = dict(scope.get("headers", []))
        client = scope.get("client") or ("", 0)
        try:
            with db.session_scope() as session:
                audit.record(
                    session,
                    user_id=user_id,
                    username=username,
                    action=action,
                    resource_type=resource_type,
                    resource_id=audit.resource_id(scope.get("path_params") or {}, _json(response)),
                    request_path=scope.get("path", ""),
                    status_code=status["code"],
                    ip=str(client[0] or ""),
                    user_agent=headers.get(b"user-agent", b"").decode("latin-1")[:512],
                    diff=_diff(_json(request)),
                )
        except Exception:
            log.exception("audit entry not written", extra={"path": scope.get("path")})


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _diff(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        return audit.redact(body)
    return {} if body is None else {"body": audit.redact(body)}
