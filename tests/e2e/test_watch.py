"""``GET /api/experimental/chats/watch``: one owner's chat list changes over a WebSocket."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.fixtures.farm import Caller, Farm, sse_events

PARTIAL_KEYS = {"id", "owner_id", "title", "status", "created_at", "updated_at", "root_chat_id"}


def watch_url(farm: Farm) -> str:
    return farm.base_url.replace("http://", "ws://") + "/api/experimental/chats/watch"


def watch(farm: Farm, caller: Caller) -> Any:
    return connect(watch_url(farm), additional_headers={"Coder-Session-Token": caller.token})


def read_until(ws: Any, predicate: Any, timeout: float = 15) -> list[dict[str, Any]]:
    """Collect watch events (one bare object a frame) until ``predicate(event)`` is true."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        events.append(event)
        if predicate(event):
            return events
    raise AssertionError(f"predicate never matched; got {summary(events)}")


def drain(ws: Any, quiet: float = 0.4) -> list[dict[str, Any]]:
    """Everything that arrives until the socket stays quiet for ``quiet`` seconds."""
    events = []
    while True:
        try:
            events.append(json.loads(ws.recv(timeout=quiet)))
        except TimeoutError:
            return events


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["kind"], e["chat"]["status"]) for e in events]


def is_status(status: str) -> Any:
    return lambda e: e["kind"] == "status_change" and e["chat"]["status"] == status


def test_watch_follows_create_run_title_and_archive(
    farm: Farm, caller: Caller, other_caller: Caller
) -> None:
    with watch(farm, caller) as ws, watch(farm, other_caller) as other:
        chat = caller.create_chat("[[reply: watched]] [[title: Watched chat]]")
        events = read_until(ws, is_status("waiting"))
        mine = [e for e in events if e["chat"]["id"] == chat["id"]]
        assert mine == events
        changes = [e for e in events if e["kind"] != "title_change"]
        assert summary(changes) == [
            ("created", "pending"),
            ("status_change", "running"),
            ("status_change", "waiting"),
        ]
        created = events[0]
        assert set(created) == {"kind", "chat"}
        assert set(created["chat"]) == PARTIAL_KEYS  # no parent, no workspace: left out
        assert created["chat"]["root_chat_id"] == chat["id"]
        assert created["chat"]["owner_id"] == str(caller.user_id)
        assert created["chat"]["created_at"] == chat["created_at"]

        if not any(e["kind"] == "title_change" for e in events):
            events += read_until(ws, lambda e: e["kind"] == "title_change")
        (titled,) = [e for e in events if e["kind"] == "title_change"]
        assert titled["chat"]["title"] == "Watched chat"
        assert drain(ws) == []  # exactly one event per change

        resp = caller.http.patch(f"/api/experimental/chats/{chat['id']}", json={"title": "Mine"})
        assert resp.status_code == 204, resp.text
        (renamed,) = drain(ws)
        assert renamed["kind"] == "title_change" and renamed["chat"]["title"] == "Mine"

        resp = caller.http.post(f"/api/experimental/chats/{chat['id']}/archive")
        assert resp.status_code == 204, resp.text
        (deleted,) = drain(ws)
        assert deleted["kind"] == "deleted" and deleted["chat"]["id"] == chat["id"]

        resp = caller.http.post(f"/api/experimental/chats/{chat['id']}/unarchive")
        assert resp.status_code == 204, resp.text
        (restored,) = drain(ws)
        assert restored["kind"] == "created" and restored["chat"]["status"] == "waiting"

        assert drain(other, quiet=0.1) == []  # another owner's channel: nothing of it


def test_interrupt_and_error_are_one_status_change_each(farm: Farm, caller: Caller) -> None:
    with watch(farm, caller) as ws:
        chat = caller.create_chat("[[tokens: 400 delay_ms=20]] [[title: Slow]]")
        read_until(ws, is_status("running"))
        sse_events(  # interrupt once the step has output, so a partial step is persisted
            farm.base_url, caller.token, chat["id"], until=lambda e: e["type"] == "message_part"
        )
        resp = caller.http.post(f"/api/experimental/chats/{chat['id']}/interrupt")
        assert resp.status_code == 200, resp.text
        read_until(ws, is_status("waiting"))
        # The worker then persists the partial step; the stream repeats `waiting`, watch not.
        deadline = time.monotonic() + 10
        while len(caller.messages(chat["id"])["messages"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(caller.messages(chat["id"])["messages"]) == 2
        assert [e for e in drain(ws) if e["kind"] == "status_change"] == []

        failing = caller.create_chat("[[fail: 400 times=5]] [[title: Failing]]")
        events = read_until(
            ws, lambda e: e["chat"]["id"] == failing["id"] and is_status("error")(e)
        )
        statuses = [
            e["chat"]["status"]
            for e in events
            if e["chat"]["id"] == failing["id"] and e["kind"] != "title_change"
        ]
        assert statuses == ["pending", "running", "error"]


def test_watch_needs_a_token_and_accepts_the_query_token(farm: Farm, caller: Caller) -> None:
    with pytest.raises(InvalidStatus) as denied:
        connect(watch_url(farm))
    assert denied.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as bad:
        connect(watch_url(farm), additional_headers={"Authorization": "Bearer nope"})
    assert bad.value.response.status_code == 401
    with connect(watch_url(farm) + f"?coder_session_token={caller.token}") as ws:
        chat = caller.create_chat("[[reply: by query]]")
        first = read_until(ws, lambda e: True)[0]
        assert first["kind"] == "created" and first["chat"]["id"] == chat["id"]


def test_a_client_write_closes_the_watch(farm: Farm, caller: Caller) -> None:
    with watch(farm, caller) as ws:
        ws.send("hello?")
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)
    assert ws.close_code == 1003


def test_plain_get_on_watch_is_a_clear_400(farm: Farm, caller: Caller) -> None:
    resp = caller.http.get("/api/experimental/chats/watch")
    assert resp.status_code == 400
    assert "WebSocket" in resp.json()["message"]
    anonymous = httpx.get(farm.base_url + "/api/experimental/chats/watch")
    assert anonymous.status_code == 400


def test_a_failed_watch_publish_is_logged_not_raised() -> None:
    from agentfarm.chat_stream.writer import ChatEventWriter

    class DownRedis:
        def publish(self, channel: str, message: str) -> int:
            raise ConnectionError("redis is down")

    writer = ChatEventWriter(DownRedis())  # type: ignore[arg-type]
    assert writer.watch("created", {"id": "c", "owner_id": "o"}) is False
    assert writer.watch("created", object()) is False  # not a chat: still no exception


def test_watch_sees_action_required_and_spawned_subagents(farm: Farm, caller: Caller) -> None:
    weather = {"name": "get_weather", "description": "Weather", "input_schema": {}}
    with watch(farm, caller) as ws:
        chat = caller.create_chat(
            '[[tool: get_weather {"city": "Oslo"}]]', unsafe_dynamic_tools=[weather]
        )
        events = read_until(ws, lambda e: e["kind"] == "action_required")
        needed = events[-1]
        assert needed["chat"]["id"] == chat["id"]
        assert needed["chat"]["status"] == "requires_action"
        (call,) = needed["tool_calls"]
        assert call["tool_name"] == "get_weather"

        spawn = '[[tool: spawn_agent {"prompt": "hello", "title": "Watched kid"}]]'
        parent = caller.create_chat(spawn + " [[after_tools: ok]]")
        events = read_until(
            ws, lambda e: e["kind"] == "created" and e["chat"].get("parent_chat_id") is not None
        )
        kid = events[-1]["chat"]
        assert kid["parent_chat_id"] == parent["id"] and kid["root_chat_id"] == parent["id"]
        assert kid["title"] == "Watched kid" and kid["status"] == "pending"
