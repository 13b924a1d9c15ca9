"""Log rendering: tracebacks are plain text in both formats, with no local variables."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from agentfarm import logs
from agentfarm.logs import configure_logging


def _fail_holding_a_secret() -> None:
    api_key = "sk-should-never-be-logged"
    raise ConnectionError(f"refused ({len(api_key)})")


@pytest.mark.parametrize("as_json", [False, True])
def test_an_exception_is_logged_as_a_plain_traceback_without_locals(
    as_json: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(json=as_json)
        try:
            _fail_holding_a_secret()
        except ConnectionError:
            logging.getLogger("agentfarm.test").exception("call failed", extra={"chat_id": "c1"})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert "sk-should-never-be-logged" not in text  # a frame local: rich would show it
    if as_json:
        record = json.loads(text)
        assert record["event"] == "call failed" and record["chat_id"] == "c1"
        assert record["exception"].startswith("Traceback (most recent call last):")
        assert record["exception"].endswith("ConnectionError: refused (25)")
    else:
        assert "Traceback (most recent call last):" in text
        assert "ConnectionError: refused (25)" in text
        assert "chat_id=c1" in text


def _capture_json(
    monkeypatch: pytest.MonkeyPatch, work: Callable[[], None]
) -> list[dict[str, Any]]:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(json=True)
        work()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logs.clear()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_bound_context_is_on_every_line_of_that_work_and_only_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = logging.getLogger("agentfarm.test")

    def work() -> None:
        logs.clear()
        tokens = logs.bind(request_id="r1", chat_id="c1", unset=None)
        log.info("first")
        log.warning("second", extra={"detail": "x"})
        # Another thread (a worker thread, a concurrent request) has its own context.
        other = threading.Thread(target=lambda: log.info("elsewhere"))
        other.start()
        other.join()
        logs.restore(tokens)
        log.info("after")

    lines = {r["event"]: r for r in _capture_json(monkeypatch, work)}
    assert lines["first"]["request_id"] == "r1" and lines["first"]["chat_id"] == "c1"
    assert lines["second"]["chat_id"] == "c1" and lines["second"]["detail"] == "x"
    assert "unset" not in lines["first"]
    assert "chat_id" not in lines["elsewhere"] and "chat_id" not in lines["after"]
