"""A chat end to end over HTTP and WebSocket: create → stream → follow-up."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
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


def test_websocket_is_read_only_and_replays_after_id(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: replay me]]")
    caller.wait_status(chat["id"], "waiting")
    first_id = caller.messages(chat["id"])["messages"][-1]["id"]
    headers = {"Coder-Session-Token": caller.token}
    with connect(ws_url(farm, chat["id"], after_id=first_id), additional_headers=headers) as ws:
        frame = json.loads(ws.recv(timeout=10))
        assert frame["type"] == "data"
        kinds = [(e["type"], e.get("message", {}).get("role")) for e in frame["data"]]
        # status first, then only messages after after_id: the assistant reply.
        assert kinds == [("status", None), ("message", "assistant")]
        ws.send("hello?")
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)
    assert ws.close_code == 1003


def test_websocket_rejects_bad_after_id_and_foreign_chat(
    farm: Farm, caller: Caller, other_caller: Caller
) -> None:
    chat = caller.create_chat("[[reply: private]]")
    with pytest.raises(InvalidStatus) as bad:
        connect(ws_url(farm, chat["id"]) + "?after_id=x",
                additional_headers={"Coder-Session-Token": caller.token})  # fmt: skip
    assert bad.value.response.status_code == 400
    with pytest.raises(InvalidStatus) as foreign:
        connect(ws_url(farm, chat["id"]),
                additional_headers={"Coder-Session-Token": other_caller.token})  # fmt: skip
    assert foreign.value.response.status_code == 404


def test_step_cost_is_priced_from_the_model_config(farm: Farm, caller: Caller) -> None:
    import sqlalchemy as sa

    from models import db

    chat = caller.create_chat("[[reply: priced]] [[usage: prompt=1000 completion=500]]")
    caller.wait_status(chat["id"], "waiting")
    with db.session_scope() as session:
        row = session.execute(
            sa.text(
                "SELECT input_tokens, output_tokens, total_cost_micros, context_limit, runtime_ms"
                " FROM chat_messages WHERE chat_id = :id AND role = 'assistant'"
            ),
            {"id": chat["id"]},
        ).one()
    # The scripted model is priced at $1 / 1M input and $2 / 1M output tokens.
    assert (row.input_tokens, row.output_tokens) == (1000, 500)
    assert row.total_cost_micros == 1000 * 1 + 500 * 2
    assert row.context_limit == 128_000 and row.runtime_ms is not None
