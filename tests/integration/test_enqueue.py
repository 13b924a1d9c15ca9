"""Enqueue after commit: a rollback sends nothing, a commit sends exactly once."""

from __future__ import annotations

import dramatiq
import redis as redis_lib
import sqlalchemy as sa

from agentfarm.tasks.outbox import defer
from models import db


def queued(client: redis_lib.Redis, queue: str) -> int:
    return int(client.llen(f"dramatiq:{queue}"))


def test_messages_are_sent_only_after_commit(farm_env: dict[str, str], redis_url: str) -> None:
    from agentfarm.tasks.broker import get_broker

    broker = get_broker()
    client = redis_lib.Redis.from_url(redis_url)
    queue = "test-outbox"
    msg = dramatiq.Message(queue_name=queue, actor_name="noop", args=(), kwargs={}, options={})
    client.delete(f"dramatiq:{queue}")
    session = db.new_session()
    try:
        session.execute(sa.text("SELECT 1"))
        defer(session, msg)
        assert queued(client, queue) == 0
        session.rollback()
        session.execute(sa.text("SELECT 1"))
        session.commit()
        assert queued(client, queue) == 0  # dropped with the rollback
        session.execute(sa.text("SELECT 1"))
        defer(session, msg)
        session.commit()
        assert queued(client, queue) == 1
        session.commit()
        assert queued(client, queue) == 1  # flushed once, not on every later commit
    finally:
        session.close()
        client.delete(f"dramatiq:{queue}", f"dramatiq:{queue}.msgs")
        broker.queues.discard(queue)
        client.close()
