"""A chat end to end over HTTP and WebSocket: create → stream → follow-up."""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.sync.client import connect

from tests.fixtures.farm import Caller, Farm


def ws_url(farm: Farm, chat_id: str, after_id: int | None = None) -> str:
    url = farm.base_url.replace("http://", "ws://") + f"/api/experimental/chats/{chat_id}/stream"
    return url + (f"?after_id={after_id}" if after_id is not None else "")


def read_ws_until(ws: Any, predicate: Any, timeout: float = 30) -> list[dict[str, Any]]:
    """Collect events from data frames until ``predicate(event)`` is true."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if frame["type"] != "data":
            continue
        for event in frame["data"]:
            events.append(event)
            if predicate(event):
                return events
    raise AssertionError(f"predicate never matched; got {[e['type'] for e in events]}")


def test_create_stream_and_follow_up(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[tokens: 5 delay_ms=20]] count for me")
    assert chat["status"] == "pending"
    assert chat["client_type"] == "api"
    with connect(
        ws_url(farm, chat["id"]), additional_headers={"Coder-Session-Token": caller.token}
    ) as ws:
        events = read_ws_until(
            ws, lambda e: e["type"] == "status" and e["status"]["status"] == "waiting"
        )
    kinds = [e["type"] for e in events]
    assert kinds[0] == "status"
    assert "message_part" in kinds or "message" in kinds
    assistant = [
        e for e in events if e["type"] == "message" and e["message"]["role"] == "assistant"
    ]
    assert assistant, kinds
    text = "".join(p["text"] for p in assistant[-1]["message"]["content"] if p["type"] == "text")
    assert text == "tok0 tok1 tok2 tok3 tok4"
    usage = assistant[-1]["message"]["usage"]
    assert usage["output_tokens"] >= 5 and usage["context_limit"] == 128_000

    sent = caller.send(chat["id"], "[[reply: second answer]]")
    assert sent["queued"] is False
    caller.wait_status(chat["id"], "waiting")
    msgs = caller.messages(chat["id"])["messages"]
    roles = [m["role"] for m in reversed(msgs)]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert msgs[0]["content"][0]["text"] == "second answer"
