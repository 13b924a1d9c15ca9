"""Postgres stops for 10 s (fault farm: its own embedded Postgres) and comes back.

While it is down the shim answers 503 with ``Retry-After`` on every route that needs the
database; a client creating chats the whole time gets either a whole chat (201: the chat and
its first message) or a 503 and nothing; afterwards the turn that was running when Postgres
stopped ends cleanly, new turns complete, and the workers and the scheduler are back.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from tests.fault.support import check_transcript, tool_turn, transcripts
from tests.fixtures.fault_farm import FaultFarm

DOWN_S = 10.0
CHATS = "/api/experimental/chats"


def _text(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}]}


class ChatCreator(threading.Thread):
    """Creates chats back to back (before, during and after the outage) and keeps every
    answer: (status, chat id or None, Retry-After)."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(name="chat-creator", daemon=True)
        self.http = httpx.Client(
            base_url=base_url, headers={"Coder-Session-Token": token}, timeout=30
        )
        self.answers: list[tuple[int, str | None, str | None, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            text = f"[[reply: created {n}]]"
            resp = self.http.post(CHATS, json=_text(text))
            chat_id = resp.json()["id"] if resp.status_code == 201 else None
            self.answers.append((resp.status_code, chat_id, resp.headers.get("retry-after"), text))
            n += 1
            time.sleep(0.05)
        self.http.close()


def _probe(caller: Any, idle_id: str) -> list[httpx.Response]:
    http = caller.http
    return [
        http.post(CHATS, json=_text("[[reply: never]]")),
        http.get(CHATS),
        http.post(f"{CHATS}/{idle_id}/messages", json=_text("[[reply: never]]")),
        http.get(f"{CHATS}/{idle_id}"),
        http.get(f"{CHATS}/{idle_id}/messages"),
    ]


def test_postgres_down_for_ten_seconds(fault_farm: FaultFarm) -> None:
    caller, creator_user = fault_farm.caller(), fault_farm.caller()
    idle_id = caller.create_chat("[[reply: ready]]")["id"]
    caller.wait_status(idle_id, "waiting", timeout=60)
    final = " ".join(f"word{i}" for i in range(80))
    running_text = tool_turn(final, rounds=1, delay_ms=60)
    running_id = caller.create_chat(running_text)["id"]
    deadline = time.monotonic() + 60
    while not _streaming_reply(fault_farm, running_id):
        assert time.monotonic() < deadline, "the turn never reached its final reply"
        time.sleep(0.05)
    leader_logs = fault_farm.scheduler.log_path.read_text().count("scheduler is leader")

    creator = ChatCreator(fault_farm.base_url, creator_user.token)
    creator.start()
    time.sleep(0.5)
    fault_farm.stop_postgres()
    stopped = time.monotonic()
    probes: list[httpx.Response] = []
    try:
        while time.monotonic() - stopped < DOWN_S:
            probes += _probe(caller, idle_id)
            time.sleep(0.5)
    finally:
        fault_farm.start_postgres()
    restarted = time.monotonic()
    time.sleep(1.0)
    creator.stop.set()
    creator.join(timeout=30)

    # While it was down: 503 in Coder's envelope, with Retry-After, on every route.
    assert probes and all(r.status_code == 503 for r in probes), [
        (r.request.method, r.request.url.path, r.status_code, r.text[:200]) for r in probes
    ]
    for r in probes:
        assert r.headers["retry-after"] == "5"
        assert r.json()["message"] == "Service temporarily unavailable."
    statuses = [status for status, *_ in creator.answers]
    assert set(statuses) <= {201, 503}, statuses
    assert 503 in statuses and statuses[0] == 201 and statuses[-1] == 201, statuses
    assert all(retry == "5" for status, _, retry, _ in creator.answers if status == 503)

    # Afterwards: the running turn ended cleanly, a new turn completes, nothing is stuck.
    running = caller.wait_status(running_id, "waiting", "error", timeout=90)
    recovered = time.monotonic()
    caller.send(idle_id, "[[reply: after the outage]]")
    caller.wait_status(idle_id, "waiting", timeout=60)
    created = {chat_id: text for status, chat_id, _, text in creator.answers if status == 201}
    for chat_id in created:
        creator_user.wait_status(chat_id, "waiting", timeout=60)

    with fault_farm.engine.connect() as conn:
        rows = transcripts(conn, [idle_id, running_id, *created])
    # The sends that got a 503 left nothing behind.
    check_transcript(
        rows[idle_id],
        [("[[reply: ready]]", "ready"), ("[[reply: after the outage]]", "after the outage")],
        rounds=0,
    )
    if running["status"] == "waiting":
        check_transcript(rows[running_id], [(running_text, final)], rounds=1)
    else:
        assert running["last_error"], running
    # Every chat created got whole (201) or not at all (503): no chat without its message.
    for chat_id, text in created.items():
        check_transcript(rows[chat_id], [(text, text[len("[[reply: ") : -2])], rounds=0)
    owned = fault_farm.rows(
        "SELECT c.id, count(m.id) FILTER (WHERE m.role = 'user') AS users FROM chats c "
        "LEFT JOIN chat_messages m ON m.chat_id = c.id WHERE c.owner_id = :owner GROUP BY c.id",
        owner=creator_user.user_id,
    )
    assert {str(r.id) for r in owned} == set(created)
    assert all(r.users == 1 for r in owned)
    assert (
        fault_farm.rows(
            "SELECT count(*) AS n FROM chats WHERE owner_id IN (:a, :b) AND status IN "
            "('pending', 'running')",
            a=caller.user_id,
            b=creator_user.user_id,
        )[0].n
        == 0
    )

    # The scheduler took its leader lock again (its connection died with the server).
    deadline = time.monotonic() + 30
    while fault_farm.scheduler.log_path.read_text().count("scheduler is leader") <= leader_logs:
        assert time.monotonic() < deadline, "the scheduler never led again"
        time.sleep(0.2)
    fault_farm.services_alive()
    print(
        f"\npostgres outage: down {restarted - stopped:.1f}s, {len(probes)} probes all 503; "
        f"chat creator got {statuses.count(201)}x201 {statuses.count(503)}x503; running turn "
        f"ended {running['status']} {recovered - restarted:.1f}s after the restart"
    )


def _streaming_reply(farm: FaultFarm, chat_id: str) -> bool:
    """Whether the final reply of the chat's turn has started streaming."""
    entries = farm.redis.xrange(f"chat:{chat_id}:events", "-", "+")
    events = [json.loads(fields[b"e"]) for _, fields in entries]
    tool_messages = [e for e in events if e["type"] == "message" and e["message"]["role"] == "tool"]
    parts = [e for e in events if e["type"] == "message_part"]
    return bool(tool_messages) and any(
        p["message_part"]["part"]["type"] == "text" for p in parts[-3:]
    )
