"""PR insights actors: ``insights.refresh`` (sent by the scheduler, every 10 s by default)
claims stale diff statuses and sends one ``insights.ingest_pr`` per chat; each ingests that
chat's pull request from its git provider (``workers/integrations/insights.py``)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from agentfarm import external_auth
from agentfarm.tasks import catalog
from models import db
from models.base import utcnow
from workers.integrations import insights
from workers.runtime import get_runtime

log = logging.getLogger("agentfarm.insights")


@catalog.actor(
    catalog.INSIGHTS_REFRESH,
    max_retries=0,  # the scheduler sends it again next interval
    time_limit=60 * 1000,
)
def insights_refresh() -> None:
    """Claim stale diff statuses; one ``insights.ingest_pr`` each after the commit."""
    settings = get_runtime().settings
    with db.session_scope() as session:
        claimed = insights.refresh(session, now=utcnow(), limit=settings.insights_batch_size)
    if claimed:
        log.info("pull requests to refresh", extra={"chats": len(claimed)})


@catalog.actor(
    catalog.INSIGHTS_INGEST_PR,
    # A lost or failed ingestion is claimed again when its 5-minute claim window ends.
    max_retries=0,
    # Three REST calls, each with its own timeout (insights_http_timeout_s).
    time_limit=5 * 60 * 1000,
)
def insights_ingest_pr(chat_id: str) -> None:
    """Look up and store one chat's pull request."""
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
