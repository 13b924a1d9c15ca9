"""Structured logging for every process: stdlib loggers rendered by structlog.

Log calls use the stdlib API with ``extra={...}``; the fields (chat_id, message_id, actor …)
become key=value pairs, or JSON with ``AGENTFARM_LOG_JSON=true``. Secrets never go in extras.

Context bound once per unit of work is on every line of that work, without passing it down:
the API binds ``request_id`` per request (and ``chat_id`` once a route parses one), the
worker binds ``message_id`` and ``actor`` per message, and an actor binds its ``chat_id``
(and the turn its ``generation`` and ``step``) with :func:`bind`. The context lives in
contextvars, so concurrent requests and worker threads never see each other's.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import Token
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, reset_contextvars


def bind(**fields: Any) -> Mapping[str, Token[Any]]:
    """Add fields to every later log line of the current request, message or thread; the
    tokens let :func:`restore` take them off again."""
    return bind_contextvars(**{k: str(v) for k, v in fields.items() if v is not None})


def restore(tokens: Mapping[str, Token[Any]]) -> None:
    """Undo a :func:`bind` (the fields it set go back to what they were)."""
    reset_contextvars(**tokens)


def clear() -> None:
    """Start a new unit of work with no bound fields."""
    clear_contextvars()


def configure_logging(level: str = "INFO", *, json: bool = False, process: str = "") -> None:
    """Route all stdlib logging through one structlog formatter on stderr."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if process:
        shared.append(_add_process(process))
    # Tracebacks as plain text, never rich's: rich renders each frame's local variables
    # (secrets among them) and took 1.4-2.2 s per exception, holding the logging lock and,
    # in the API, the event loop.
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    steps: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta
    ]
    if json:
        steps.append(structlog.processors.format_exc_info)  # the traceback as a string field
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[*steps, renderer])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("LiteLLM", "litellm", "httpx", "httpcore", "openai", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _add_process(name: str) -> structlog.types.Processor:
    def add(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        event.setdefault("process", name)
        return event

    return add
