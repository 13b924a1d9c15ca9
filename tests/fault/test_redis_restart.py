"""Redis restarts in the middle of a turn (fault farm: its own Redis, append-only with fsync on
every write, so the queues and the event streams survive the restart).

The step that was streaming when Redis went away cannot write its parts; the turn either
completes after recovery (the stale sweeper hands the chat to a new step) or ends in
``error`` after ``retry`` events. SSE clients reconnect with the id of the last event they
got and receive every event of the stream exactly once, in order, across the restart; a
WebSocket client (Coder's protocol: no event ids) reconnects with the id of the last message
it got and receives every message exactly once.
"""

from __future__ import annotations

import time

from tests.fault.support import (
    ResumingSocket,
    ResumingStream,
    check_transcript,
    tool_turn,
    transcripts,
)
from tests.fixtures.fault_farm import FaultFarm

DOWN_S = 3.0  # longer than redis-py's own reconnect retries (about 1 s)


def _is_text_part(event: dict) -> bool:  # type: ignore[type-arg]
    return event["type"] == "message_part" and event["message_part"]["part"]["type"] == "text"


def test_redis_restart_mid_turn(fault_farm: FaultFarm) -> None:
    caller = fault_farm.caller()
    final = " ".join(f"word{i}" for i in range(60))
    text = tool_turn(final, rounds=2, delay_ms=60)  # the final reply streams for ~3.6 s
    chat_id = caller.create_chat(text)["id"]
    cutting, holding = (
        ResumingStream(fault_farm.base_url, caller.token, chat_id).start() for _ in range(2)
    )
    socket = ResumingSocket(fault_farm.base_url, caller.token, chat_id).start()
    deadline = time.monotonic() + 60
    while cutting.count(_is_text_part) < 5:  # in the middle of the final reply
        assert time.monotonic() < deadline, f"reply never streamed: {cutting.events[-3:]}"
        assert cutting.failure is None and not cutting.done, cutting.events[-3:]
        time.sleep(0.02)
    run_id = fault_farm.redis.info("server")["run_id"]
    # One client loses its connection just before the outage and reconnects during it; the
    # others keep their connections until the restart breaks them.
    cutting.hang_up()
    fault_farm.stop_redis()
    stopped = time.monotonic()
    try:
        (status_at_stop,) = fault_farm.rows("SELECT status::text FROM chats WHERE id = :id",
                                            id=chat_id)  # fmt: skip
        cutting.come_back()
        time.sleep(DOWN_S)
    finally:
        fault_farm.start_redis()
    restarted = time.monotonic()
    assert status_at_stop[0] == "running", "Redis did not go away in the middle of the turn"
    assert fault_farm.redis.info("server")["run_id"] != run_id, "Redis was not restarted"
    assert fault_farm.redis.info("persistence")["aof_enabled"] == 1

    chat = caller.wait_status(chat_id, "waiting", "error", timeout=90)
    finished = time.monotonic()
    for client in (cutting, holding, socket):
        client.join(timeout=60)
    joined = time.monotonic()

    # SSE: every event exactly once, in order, with no gap: each client's ids are the
    # stream's ids up to the final status event it stopped at.
    stream = [
        (entry_id.decode(), fields)
        for entry_id, fields in fault_farm.redis.xrange(f"chat:{chat_id}:events", "-", "+")
    ]
    stream_ids = [entry_id for entry_id, _ in stream]
    for client in (cutting, holding):
        got = [entry_id for entry_id, _ in client.events]
        assert got == stream_ids[: len(got)], "an SSE client missed or repeated events"
        assert client.connects >= 2, "an SSE client never reconnected"
    # Every message the chat shows was delivered to every client, once (over SSE, all but
    # the first user message: the create answer carries it, the stream does not).
    shown = sorted(m["id"] for m in caller.messages(chat_id)["messages"])
    for client in (cutting, holding):
        delivered = [e["message"]["id"] for _, e in client.events if e["type"] == "message"]
        assert sorted(delivered) == shown[1:], f"SSE got messages {delivered} of {shown}"
    delivered = [m["id"] for m in socket.messages]
    assert sorted(delivered) == shown, f"the WebSocket got messages {delivered} of {shown}"
    assert socket.connects >= 2, "the WebSocket client never reconnected"

    kinds = [e["type"] for _, e in holding.events]
    with fault_farm.engine.connect() as conn:
        rows = transcripts(conn, [chat_id])[chat_id]
    if chat["status"] == "waiting":
        check_transcript(rows, [(text, final)], rounds=2)
    else:
        assert "retry" in kinds, f"the turn failed without a retry event: {chat}"
        assert chat["last_error"], chat
    fault_farm.services_alive()
    print(
        f"\nredis restart: down {restarted - stopped:.1f}s, turn ended {chat['status']} "
        f"{finished - restarted:.1f}s after the restart, its stream clients done "
        f"{joined - restarted:.1f}s after it; SSE clients reconnected "
        f"{cutting.connects - 1} and {holding.connects - 1} times, the WebSocket client "
        f"{socket.connects - 1} times ({socket.error_frames} error frames); events "
        f"{kinds.count('retry')} retry, {kinds.count('message_part')} parts, {len(stream)} in "
        f"the stream; {len(shown)} messages"
    )


def test_a_message_sent_while_redis_is_down_is_accepted_and_answered(
    fault_farm: FaultFarm,
) -> None:
    """Postgres holds the truth: with Redis down, sending still commits the message and
    answers 200 (no event stream, no wake-up); once Redis is back the stale-chat sweeper
    sends the lost wake-up and the turn runs."""
    caller = fault_farm.caller()
    chat_id = caller.create_chat("[[reply: first]]")["id"]
    caller.wait_status(chat_id, "waiting")
    answered: list[bool] = []

    def after_the_dark_reply(event: dict) -> bool:  # type: ignore[type-arg]
        if event["type"] == "message" and any(
            p.get("text") == "sent in the dark" for p in event["message"]["content"]
        ):
            answered.append(True)
        return (
            bool(answered) and event["type"] == "status" and event["status"]["status"] == "waiting"
        )

    # Connected before the outage; it resumes by Last-Event-ID after it, and must still get
    # the message whose event could not be written while Redis was down.
    sse = ResumingStream(
        fault_farm.base_url, caller.token, chat_id, until=after_the_dark_reply
    ).start()
    deadline = time.monotonic() + 30
    while not sse.count(lambda e: e["type"] == "status"):
        assert time.monotonic() < deadline, sse.events
        time.sleep(0.02)
    fault_farm.stop_redis()
    try:
        resp = caller.http.post(
            f"/api/experimental/chats/{chat_id}/messages",
            json={"content": [{"type": "text", "text": "[[reply: sent in the dark]]"}]},
        )
    finally:
        fault_farm.start_redis()
    assert resp.status_code == 200, resp.text
    assert resp.json()["queued"] is False
    chat = caller.wait_status(chat_id, "waiting", "error", timeout=90)
    assert chat["status"] == "waiting", chat
    texts = [
        part.get("text")
        for m in caller.messages(chat_id)["messages"]
        for part in m["content"]
        if m["role"] == "assistant"
    ]
    assert "sent in the dark" in texts, texts
    sse.join(timeout=60)
    shown = sorted(m["id"] for m in caller.messages(chat_id)["messages"])
    delivered = [e["message"]["id"] for _, e in sse.events if e["type"] == "message"]
    assert sorted(delivered) == shown[1:], f"SSE got messages {delivered} of {shown}"
    assert sse.connects >= 2, "the SSE client never reconnected"
    fault_farm.services_alive()
