"""PR insights actors: ``insights.refresh`` (sent by the scheduler, every 10 s by default)
claims stale diff statuses and sends one ``insights.ingest_pr`` per chat; each ingests that
chat's pull request from its git provider (``workers/insights.py``)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import dramatiq

from agentfarm import external_auth
from agentfarm.tasks.broker import get_broker
from agentfarm.tasks.periodic import periodic
from agentfarm.tasks.queues import Queue
from models import db
from models.base import utcnow
from workers.runtime import get_runtime

log = logging.getLogger("agentfarm.insights")
get_broker()


@periodic(every="insights_refresh_every_s")
@dramatiq.actor(
    actor_name="insights.refresh",
    queue_name=Queue.SCHEDULED,
    max_retries=0,  # the scheduler sends it again next interval
    time_limit=60 * 1000,
)
def insights_refresh() -> None:
    """Claim stale diff statuses; one ``insights.ingest_pr`` each after the commit."""
    from workers.integrations import insights

    settings = get_runtime().settings
    with db.session_scope() as session:
        claimed = insights.refresh(session, now=utcnow(), limit=settings.insights_batch_size)
    if claimed:
        log.info("pull requests to refresh", extra={"chats": len(claimed)})


@dramatiq.actor(
    actor_name="insights.ingest_pr",
    queue_name=Queue.DEFAULT,
    # A lost or failed ingestion is claimed again when its 5-minute claim window ends.
    max_retries=0,
    # Three REST calls, each with its own timeout (insights_http_timeout_s).
    time_limit=5 * 60 * 1000,
)
def insights_ingest_pr(chat_id: str) -> None:
    """Look up and store one chat's pull request."""
    from workers.integrations import insights

    rt = get_runtime()
    outcome = insights.ingest_pr(
        uuid.UUID(chat_id),
        providers=external_auth.configured(),
        box=rt.secrets,
        stale_after=timedelta(seconds=rt.settings.insights_stale_after_s),
        timeout=rt.settings.insights_http_timeout_s,
        watch=rt.events.watch,
    )
    log.info("pull request refresh %s", outcome, extra={"chat_id": chat_id})
