"""Cost rollups: ``usage.rollup``, sent by the scheduler (every minute by default).

Each message rolls up one batch of pending messages (``AGENTFARM_USAGE_ROLLUP_BATCH_SIZE``, one
transaction, see ``models.usage.rollups``) and, when the batch came back full, sends itself
again after the commit, so a backlog (the first run after the migration, or after an outage)
is worked off as a chain of short transactions. A message that finds another batch running
ends its chain; the running chain carries on.
"""

from __future__ import annotations

import logging

from agentfarm import metrics
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer
from models import db
from models.usage import rollups as usage_rollups
from workers.runtime import get_runtime

log = logging.getLogger("agentfarm.usage")


@catalog.actor(
    catalog.USAGE_ROLLUP,
    max_retries=0,  # the scheduler sends it again next interval
    time_limit=120 * 1000,
)
def usage_rollup() -> None:
    """Add one batch of not-yet-rolled messages to the day rollups."""
    settings = get_runtime().settings
    with db.session_scope() as session:
        batch = usage_rollups.rollup_batch(session, batch_size=settings.usage_rollup_batch_size)
        if batch.full:
            defer(session, catalog.USAGE_ROLLUP.message())
    metrics.ROLLUP_ROWS.inc(batch.consumed)
    if batch.busy:
        log.info("usage rollup already running elsewhere")
    elif batch.consumed:
        log.info(
            "usage rollup batch",
            extra={"rows": batch.consumed, "counted": batch.counted, "more": batch.full},
        )
