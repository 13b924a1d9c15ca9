"""Structured logging for every process: stdlib loggers rendered by structlog.

Log calls use the stdlib API with ``extra={...}``; the fields (chat_id, message_id, actor …)
become key=value pairs, or JSON with ``AGENTFARM_LOG_JSON=true``. Secrets never go in extras.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", *, json: bool = False, process: str = "") -> None:
    """Route all stdlib logging through one structlog formatter on stderr."""
    shared: list[structlog.types.Processor] = [
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
    def add(_logger: object, _method: str, event: dict[str, object]) -> dict[str, object]:
        event.setdefault("process", name)
        return event

    return add
