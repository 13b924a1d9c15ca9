"""After a commit, a Redis outage costs events and wake-ups, never the committed change: the
writer and the outbox log and count what they could not send instead of raising."""

from __future__ import annotations

import logging
import uuid

import dramatiq
import pytest
import sqlalchemy as sa
from redis import Redis

from agentfarm.chat_stream import events as ev
from agentfarm.chat_stream.writer import ChatEventWriter
from agentfarm.dev import free_port
from agentfarm.tasks.outbox import defer
from agentfarm.tasks.wakeable import WakeableRedisBroker
from models import db


def _unreachable_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def test_publishing_to_an_unreachable_redis_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = ChatEventWriter(Redis.from_url(_unreachable_url(), socket_connect_timeout=1))
    event = ev.status_event("c1", "pending")
    with caplog.at_level(logging.WARNING, logger="agentfarm.events"):
        assert writer.publish("c1", event) == []
    assert any("not published" in r.getMessage() for r in caplog.records)


def test_a_commit_stands_when_its_queue_message_cannot_be_sent(
    farm_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    previous = dramatiq.get_broker()
    dead = WakeableRedisBroker(url=_unreachable_url(), socket_connect_timeout=1)
    message = dramatiq.Message(
        queue_name="test-outage", actor_name="noop", args=(), kwargs={}, options={}
    )
    table = f"outage_probe_{uuid.uuid4().hex[:8]}"  # a real table: the commit must stick
    session = db.new_session()
    try:
        dramatiq.set_broker(dead)
        session.execute(sa.text(f"CREATE TABLE {table} (x int)"))
        session.execute(sa.text(f"INSERT INTO {table} VALUES (1)"))
        defer(session, message)
        with caplog.at_level(logging.WARNING, logger="agentfarm.enqueue"):
            session.commit()  # does not raise
        assert session.execute(sa.text(f"SELECT x FROM {table}")).scalar() == 1
        assert any("not sent" in r.getMessage() for r in caplog.records)
    finally:
        dramatiq.set_broker(previous)
        session.rollback()
        session.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        session.commit()
        session.close()
        dead.client.close()
