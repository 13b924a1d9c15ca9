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
from agentfarm.tasks.broker import current_broker

log = logging.getLogger("agentfarm.enqueue")
_OUTBOX = "agentfarm_outbox"


def defer(
    session: OrmSession, message: dramatiq.Message[Any], *, delay_ms: int | None = None
) -> None:
    """Send ``message`` (``delay_ms`` later) when ``session`` commits; forget it if the
    session rolls back."""
    session.info.setdefault(_OUTBOX, []).append((message, delay_ms))


def defer_call(session: OrmSession, fn: Callable[[], Any]) -> None:
    """Call ``fn`` when ``session`` commits, in order with the deferred messages: it runs
    before any message deferred after it is sent (e.g. a watch ``created`` before the step
    that makes the chat ``running``). ``fn`` must not raise."""
    session.info.setdefault(_OUTBOX, []).append(fn)


def deferred_messages(session: OrmSession) -> list[dramatiq.Message[Any]]:
    """The messages ``session`` will send on commit, in order (not the deferred calls)."""
    return [item[0] for item in session.info.get(_OUTBOX, []) if not callable(item)]


@event.listens_for(OrmSession, "after_commit")
def _flush_outbox(session: OrmSession) -> None:
    pending = session.info.pop(_OUTBOX, None)
    if not pending:
        return
    broker = current_broker()
    for item in pending:
        if callable(item):
            item()
            continue
        message, delay_ms = item
        try:
            broker.enqueue(message, delay=delay_ms)
        except (RedisError, dramatiq.errors.BrokerConnectionError) as exc:
            # The transaction is committed: raising here would fail a change that happened.
            # A chat's lost wake-up is re-sent by chat.recover_stale (from the database).
            metrics.WAKEUPS_UNSENT.labels(message.actor_name).inc()
            log.warning("queue message not sent: Redis unavailable: %s", exc,
                        extra={"actor": message.actor_name})  # fmt: skip


@event.listens_for(OrmSession, "after_soft_rollback")
def _drop_outbox(session: OrmSession, previous_transaction: Any) -> None:
    session.info.pop(_OUTBOX, None)
