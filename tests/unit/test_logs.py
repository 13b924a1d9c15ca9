"""Log rendering: tracebacks are plain text in both formats, with no local variables."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

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
