"""Retention actor: ``retention.purge``, sent by the scheduler (every 10 minutes by default).

Each message deletes one batch (at most ``AGENTFARM_RETENTION_BATCH_SIZE`` rows, one
transaction) and, when the batch came back full, sends itself again after the commit: a
backlog is worked off as a chain of short transactions, and a crash loses only the batch in
flight (the next scheduled send picks the chain up again). A message that finds another
batch running ends its chain; the running chain carries on.
"""

from __future__ import annotations

import logging

from agentfarm import metrics
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer
from models import db, retention
from workers.runtime import get_runtime

log = logging.getLogger("agentfarm.retention")


@catalog.actor(
    catalog.RETENTION_PURGE,
    max_retries=0,  # the scheduler sends it again next interval
    time_limit=60 * 1000,  # one batch: well under a second (bench/purge.py)
)
def retention_purge() -> None:
    """Delete one batch of expired chats (with everything that cascades) and files."""
    settings = get_runtime().settings
    with db.session_scope() as session:
        batch = retention.purge_batch(session, batch_size=settings.retention_batch_size)
        if batch.full:
            defer(session, catalog.RETENTION_PURGE.message())
    for table, rows in batch.deleted.items():
        metrics.PURGED_ROWS.labels(table).inc(rows)
    if batch.busy:
        log.info("retention purge already running elsewhere")
    elif batch.total:
        log.info(
            "retention purge batch",
            extra={"rows": batch.total, "by_table": batch.deleted, "more": batch.full},
        )
