"""Crash safety: stale chats and lost wake-ups are repaired; one scheduler leads at a time."""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa

from agentfarm.settings import get_settings
from models import db
from scheduler.main import LeaderScheduler
from tests.fixtures.farm import Caller, Farm


def _assistant_count(caller: Caller, chat_id: str) -> int:
    return sum(m["role"] == "assistant" for m in caller.messages(chat_id)["messages"])


def _recover_now() -> None:
    from agentfarm.tasks import catalog

    catalog.RECOVER_STALE.send()


def test_chat_of_a_dead_worker_is_resumed(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: first]]")
    caller.wait_status(chat["id"], "waiting")
    caller.send(chat["id"], "[[reply: resumed after a crash]]")
    # Make it look as if a worker took the step and died ten minutes ago.
    with db.session_scope() as session:
        session.execute(
            sa.text(
                "UPDATE chats SET status = 'running', worker_id = :w, generation = generation + 1,"
                " heartbeat_at = now() - interval '10 minutes' WHERE id = :id"
            ),
            {"w": uuid.uuid4(), "id": chat["id"]},
        )
    deadline = time.monotonic() + 30
    while _assistant_count(caller, chat["id"]) < 2 and time.monotonic() < deadline:
        _recover_now()
        time.sleep(0.3)
    caller.wait_status(chat["id"], "waiting")
    texts = [
        m["content"][0]["text"]
        for m in caller.messages(chat["id"])["messages"]
        if m["role"] == "assistant"
    ]
    assert texts == ["resumed after a crash", "first"]


def test_lost_wake_up_is_resent(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: first]]")
    caller.wait_status(chat["id"], "waiting")
    # A pending chat whose queue message was lost (e.g. a Redis failover): bump the
    # generation so the real message is stale, and age the row.
    with db.session_scope() as session:
        session.execute(
            sa.text(
                "INSERT INTO chat_messages (chat_id, role, content) VALUES "
                '(:id, \'user\', \'[{"type":"text","text":"[[reply: woke up]]"}]\')'
            ),
            {"id": chat["id"]},
        )
        session.execute(
            sa.text(
                "UPDATE chats SET status = 'pending', generation = generation + 5,"
                " updated_at = now() - interval '10 minutes' WHERE id = :id"
            ),
            {"id": chat["id"]},
        )
    deadline = time.monotonic() + 30
    while _assistant_count(caller, chat["id"]) < 2 and time.monotonic() < deadline:
        _recover_now()
        time.sleep(0.3)
    caller.wait_status(chat["id"], "waiting")
    assert _assistant_count(caller, chat["id"]) == 2


def test_only_one_scheduler_leads_and_a_standby_takes_over(farm: Farm) -> None:
    settings = get_settings().model_copy(
        update={"scheduler_poll_s": 0.1, "scheduler_lock_key": 0x5EED0001}
    )
    first, second = LeaderScheduler(settings), LeaderScheduler(settings)
    import threading

    threads = [threading.Thread(target=s.run, daemon=True) for s in (first, second)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 10
        while not (first.is_leader or second.is_leader) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert first.is_leader != second.is_leader
        leader, standby = (first, second) if first.is_leader else (second, first)
        leader.stop.set()
        deadline = time.monotonic() + 10
        while not standby.is_leader and time.monotonic() < deadline:
            time.sleep(0.05)
        assert standby.is_leader and not leader.is_leader
    finally:
        for s in (first, second):
            s.stop.set()
        for t in threads:
            t.join(timeout=10)
