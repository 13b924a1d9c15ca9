"""Streams and run control: SSE resume, interrupt, queued follow-ups, retries, redelivery."""

from __future__ import annotations

import time
from typing import Any

from tests.fixtures.farm import Caller, Farm, sse_events


def is_part(text: str) -> Any:
    return lambda e: e["type"] == "message_part" and e["message_part"]["part"].get("text") == text


def is_status(value: str) -> Any:
    return lambda e: e["type"] == "status" and e["status"]["status"] == value


def part_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(
        e["message_part"]["part"].get("text", "")
        for _, e in events
        if e["type"] == "message_part" and e["message_part"]["part"]["type"] == "text"
    )


def assistant_texts(caller: Caller, chat_id: str) -> list[str]:
    msgs = caller.messages(chat_id)["messages"]
    return [
        "".join(p.get("text", "") for p in m.get("content", []) if p["type"] == "text")
        for m in reversed(msgs)
        if m["role"] == "assistant"
    ]


def test_sse_resumes_mid_step_without_gap_or_duplicate(farm: Farm, caller: Caller) -> None:
    expected = " ".join(f"tok{i}" for i in range(40))
    chat = caller.create_chat("[[tokens: 40 delay_ms=25]]")
    first = sse_events(
        farm.base_url,
        caller.token,
        chat["id"],
        until=lambda e: (
            e["type"] == "message_part" and e["message_part"]["part"]["text"] == "tok7 "
        ),
    )
    resume_from = first[-1][0]
    second = sse_events(
        farm.base_url,
        caller.token,
        chat["id"],
        last_event_id=resume_from,
        until=is_status("waiting"),
    )
    assert all(entry_id > resume_from for entry_id, _ in second if "-" in entry_id)
    assert part_text(first) + part_text(second) == expected
    final = [e for _, e in second if e["type"] == "message"]
    assert final and final[-1]["message"]["role"] == "assistant"
    assert assistant_texts(caller, chat["id"]) == [expected]


def test_sse_without_last_event_id_starts_with_a_snapshot(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: snapshot me]]")
    caller.wait_status(chat["id"], "waiting")
    events = sse_events(farm.base_url, caller.token, chat["id"], limit=3)
    assert [e["type"] for _, e in events] == ["status", "message", "message"]
    assert events[0][1]["status"] == {"status": "waiting"}
    assert [e["message"]["role"] for _, e in events[1:]] == ["user", "assistant"]


def test_interrupt_mid_stream_persists_partial_step(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[tokens: 400 delay_ms=20]]")
    sse_events(
        farm.base_url,
        caller.token,
        chat["id"],
        until=lambda e: (
            e["type"] == "message_part" and e["message_part"]["part"]["text"] == "tok5 "
        ),
    )
    resp = caller.http.post(f"/api/experimental/chats/{chat['id']}/interrupt")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "waiting"
    deadline = time.monotonic() + 20
    while not assistant_texts(caller, chat["id"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    (partial,) = assistant_texts(caller, chat["id"])
    full = " ".join(f"tok{i}" for i in range(400))
    assert full.startswith(partial) and "tok5" in partial and len(partial) < len(full)
    time.sleep(0.5)  # nothing else may happen to an interrupted chat
    after = caller.chat(chat["id"])
    assert after["status"] == "waiting" and after["last_error"] is None
    assert len(assistant_texts(caller, chat["id"])) == 1


def test_follow_up_while_running_is_queued_then_promoted(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[tokens: 30 delay_ms=30]]")
    sent = caller.send(chat["id"], "[[reply: after the queue]]")
    assert sent["queued"] is True
    queued = sent["queued_message"]
    assert queued["chat_id"] == chat["id"] and queued["content"][0]["type"] == "text"
    listing = caller.messages(chat["id"])
    assert [q["id"] for q in listing["queued_messages"]] == [queued["id"]]
    deadline = time.monotonic() + 30
    while len(assistant_texts(caller, chat["id"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    caller.wait_status(chat["id"], "waiting")
    msgs = list(reversed(caller.messages(chat["id"])["messages"]))
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert assistant_texts(caller, chat["id"])[1] == "after the queue"
    assert caller.messages(chat["id"])["queued_messages"] == []


def test_queue_full_is_429(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[tokens: 400 delay_ms=20]]")
    for i in range(20):
        assert caller.send(chat["id"], f"queued {i}")["queued"] is True
    resp = caller.http.post(
        f"/api/experimental/chats/{chat['id']}/messages",
        json={"content": [{"type": "text", "text": "one too many"}]},
    )
    assert resp.status_code == 429
    assert resp.json() == {
        "message": "Message queue is full.",
        "detail": "Maximum 20 messages can be queued.",
    }
    caller.http.post(f"/api/experimental/chats/{chat['id']}/interrupt")


def test_rate_limited_twice_then_success(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[fail: 429 times=2]] [[reply: made it]]")
    events = sse_events(
        farm.base_url, caller.token, chat["id"], last_event_id="0-0", until=is_status("waiting")
    )
    retries = [e["retry"] for _, e in events if e["type"] == "retry"]
    raw = farm.redis.xrange(f"chat:{chat['id']}:events")
    assert [r["attempt"] for r in retries] == [1, 2], ([i for i, _ in events], [i for i, _ in raw])
    assert all(r["kind"] == "rate_limit" and r["status_code"] == 429 for r in retries)
    assert all(r["delay_ms"] > 0 and r["retrying_at"] and r["error"] for r in retries)
    assert assistant_texts(caller, chat["id"]) == ["made it"]


def test_non_retryable_error_ends_in_error(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[fail: 400 times=1]]")
    # Error events are not durable state; replaying the stream from its start shows them.
    events = sse_events(
        farm.base_url, caller.token, chat["id"], last_event_id="0-0", until=is_status("error")
    )
    errors = [e["error"] for _, e in events if e["type"] == "error"]
    assert len(errors) == 1, events
    (error,) = errors
    assert error["retryable"] is False and error["kind"] == "config"
    assert caller.chat(chat["id"])["last_error"]
    # The chat is usable again: a follow-up runs normally.
    caller.send(chat["id"], "[[reply: fine now]]")
    caller.wait_status(chat["id"], "waiting")
    assert assistant_texts(caller, chat["id"]) == ["fine now"]


def test_unknown_tool_gets_error_result_and_loop_continues(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat(
        '[[tool: execute {"command": "ls"}]] [[tool: read_file {"path": "a"}]] '
        "[[after_tools: handled the errors]]"
    )
    caller.wait_status(chat["id"], "waiting")
    msgs = list(reversed(caller.messages(chat["id"])["messages"]))
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool", "assistant"]
    calls = [p for p in msgs[1]["content"] if p["type"] == "tool-call"]
    assert [c["tool_name"] for c in calls] == ["execute", "read_file"]
    assert calls[0]["args"] == {"command": "ls"}
    results = [m["content"][0] for m in msgs[2:4]]
    assert all(r["type"] == "tool-result" and r["is_error"] for r in results)
    assert [r["tool_call_id"] for r in results] == [c["tool_call_id"] for c in calls]
    assert assistant_texts(caller, chat["id"])[-1] == "handled the errors"


def test_redelivered_step_writes_nothing_twice(farm: Farm, caller: Caller) -> None:
    from agentfarm.tasks import catalog
    from agentfarm.tasks.broker import get_broker

    chat = caller.create_chat("[[tokens: 10 delay_ms=10]]")
    # The shim already sent generation 1; deliver the same message three more times, some
    # while the step runs and one after it finished.
    message = catalog.CHAT_STEP.message(chat["id"], 1, 1)
    broker = get_broker()
    broker.enqueue(message)
    broker.enqueue(message)
    caller.wait_status(chat["id"], "waiting")
    broker.enqueue(message)
    time.sleep(0.5)
    assert caller.chat(chat["id"])["status"] == "waiting"
    msgs = caller.messages(chat["id"])["messages"]
    assert [m["role"] for m in reversed(msgs)] == ["user", "assistant"]


def test_title_is_generated_after_fallback(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("please refactor the billing module into smaller services now")
    assert chat["title"] == "please refactor the billing module into…"
    deadline = time.monotonic() + 20
    while caller.chat(chat["id"])["title"] == chat["title"] and time.monotonic() < deadline:
        time.sleep(0.05)
    title = caller.chat(chat["id"])["title"]
    assert title != chat["title"] and 0 < len(title) <= 80


def test_busy_behavior_interrupt_stops_the_run_and_sends_next(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[tokens: 400 delay_ms=20]]")
    sse_events(
        farm.base_url,
        caller.token,
        chat["id"],
        until=lambda e: (
            e["type"] == "message_part" and e["message_part"]["part"]["text"] == "tok3 "
        ),
    )
    sent = caller.send(chat["id"], "[[reply: switched]]", busy_behavior="interrupt")
    assert sent["queued"] is True
    deadline = time.monotonic() + 30
    while len(assistant_texts(caller, chat["id"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    caller.wait_status(chat["id"], "waiting")
    msgs = list(reversed(caller.messages(chat["id"])["messages"]))
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    partial, switched = assistant_texts(caller, chat["id"])
    assert partial.startswith("tok0 tok1 tok2 tok3") and len(partial) < 400 * 5
    assert switched == "switched"
    assert caller.messages(chat["id"])["queued_messages"] == []


def test_an_idle_stream_stays_open_and_delivers_later_events(farm: Farm, caller: Caller) -> None:
    import threading

    chat = caller.create_chat("[[reply: first]]")
    caller.wait_status(chat["id"], "waiting")
    # Idle longer than redis-py's default 5 s socket timeout, then send a follow-up: the same
    # SSE connection must deliver it (a socket timeout used to kill idle relays).
    timer = threading.Timer(6.5, lambda: caller.send(chat["id"], "[[reply: much later]]"))
    timer.start()
    try:
        events = sse_events(farm.base_url, caller.token, chat["id"], timeout=30,
                            until=lambda e: e["type"] == "message"
                            and e["message"]["role"] == "assistant"
                            and e["message"]["content"][0]["text"] == "much later")  # fmt: skip
    finally:
        timer.cancel()
    assert events[-1][1]["message"]["content"][0]["text"] == "much later"
