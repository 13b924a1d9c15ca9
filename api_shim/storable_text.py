"""Refuse JSON request bodies whose text Postgres cannot store, with a 400.

JSON can escape any code point, so ``\\u0000`` (NUL) and unpaired UTF-16 surrogates such as
``\\udc32`` are valid JSON. They decode to Python strings that no PostgreSQL text or jsonb
value can hold (psycopg refuses NUL, and a lone surrogate has no UTF-8 encoding), so any
route writing one failed with a 500 (found by schemathesis, tests/fault/test_api_fuzz.py).
Only bodies that contain such an escape are parsed here; everything else passes untouched.
"""

from __future__ import annotations

import json
import re
from typing import Any

from api_shim.errors import envelope

_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # surrogates left after decoding are unpaired


def has_unstorable_text(value: Any) -> bool:
    """Whether any string (or key) in a decoded JSON value holds NUL or a lone surrogate."""
    stack = [value]
    while stack:  # iterative: a deeply nested body must not exhaust the recursion limit
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class StorableText:
    """Pure ASGI middleware: checks POST/PUT/PATCH JSON bodies under ``/api/``."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"")
        if not (
            scope["type"] == "http"
            and scope.get("method") in ("POST", "PUT", "PATCH")
            and scope.get("path", "").startswith("/api/")
            and content_type.split(b";")[0].strip().lower() == b"application/json"
        ):
            await self.app(scope, receive, send)
            return
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if _SUSPECT.search(body) and _unstorable(body):
            response = envelope(
                400,
                "Request body contains text that cannot be stored.",
                detail="Strings must not contain NUL (\\u0000) or unpaired surrogate escapes.",
            )
            await response(scope, receive, send)
            return
        pending = iter(messages)

        async def replay() -> Any:
            return next(pending, None) or await receive()

        await self.app(scope, replay, send)


def _unstorable(body: bytes) -> bool:
    try:
        return has_unstorable_text(json.loads(body))
    except (ValueError, RecursionError):
        return False  # not JSON (or too deep to decode): the route answers its own 400
