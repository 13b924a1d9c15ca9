"""Enqueue after commit: messages buffered on a session are sent only once it commits.

A rollback drops them, so a queue message never points at rows that do not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
import dramatiq.errors
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

from agentfarm import metrics

log = logging.getLogger("agentfarm.enqueue")
_OUTBOX = "agentfarm_outbox"


def defer(session: OrmSession, message: dramatiq.Message[Any]) -> None:
    """Send ``message`` when ``session`` commits; forget it if the session rolls back."""
    session.info.setdefault(_OUTBOX, []).append(message)


def defer_send(session: OrmSession, actor: dramatiq.Actor[Any, Any], *args: Any) -> None:
    """Shorthand: defer ``actor.send(*args)`` until commit."""
    defer(session, actor.message(*args))


def defer_call(session: OrmSession, fn: Callable[[], Any]) -> None:
    """Call ``fn`` when ``session`` commits, in order with the deferred messages: it runs
    before any message deferred after it is sent (e.g. a watch ``created`` before the step
    that makes the chat ``running``). ``fn`` must not raise."""
    session.info.setdefault(_OUTBOX, []).append(fn)


@event.listens_for(OrmSession, "after_commit")
def _flush_outbox(session: OrmSession) -> None:
    pending = session.info.pop(_OUTBOX, None)
    if not pending:
        return
    broker = dramatiq.get_broker()
    for message in pending:
        if not isinstance(message, dramatiq.Message):
            message()
            continue
        try:
            broker.enqueue(message)
        except (RedisError, dramatiq.errors.BrokerConnectionError) as exc:
            # The transaction is committed: raising here would fail a change that happened.
            # A chat's lost wake-up is re-sent by chat.recover_stale (from the database).
            metrics.WAKEUPS_UNSENT.labels(message.actor_name).inc()
            log.warning("queue message not sent: Redis unavailable: %s", exc,
                        extra={"actor": message.actor_name})  # fmt: skip


@event.listens_for(OrmSession, "after_soft_rollback")
def _drop_outbox(session: OrmSession, previous_transaction: Any) -> None:
    session.info.pop(_OUTBOX, None)
