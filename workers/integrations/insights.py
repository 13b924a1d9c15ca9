"""PR insights ingestion (reference §7 "Data ingestion"): what ``insights.refresh`` and
``insights.ingest_pr`` do, as plain functions over the database.

:func:`refresh` claims stale diff statuses (their ``stale_at`` moves past a 5-minute claim
window, so a lost ``ingest_pr`` is retried after it) and defers one ``insights.ingest_pr`` per
chat. :func:`ingest_pr` reads the status and the chat owner's token in one short
transaction, asks the provider with no transaction open, and stores the result on the locked
row in another — unless the branch or origin changed meanwhile (then the row is made stale
again and the next refresh looks up the new branch). How long until the next look:

- stored (a PR, or none for the branch): ``insights_stale_after_s``; ten times that for a
  merged or closed PR ([inferred]: final states change rarely, and rate limits are per token);
- rate limited (403/429 with reset headers): until the time the provider names;
- token failure (none linked, rejected, cannot be decrypted): 10 minutes (Coder's backoff);
- no provider matches the origin, or the provider type is not GitHub: 10 minutes;
- any other provider failure: 1 minute.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlmodel import Session, select

from agentfarm import metrics
from agentfarm.external_auth import ExternalAuthConfig, provider_for_origin, repo_of
from agentfarm.integrations.github import (
    GitHubClient,
    ProviderError,
    RateLimited,
    TokenRejected,
    pull_fields,
)
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer, defer_call
from models import db
from models.base import utcnow
from models.chat.tables import Chat
from models.crypto import SecretBox, SecretsUnavailable
from models.insights import diff_statuses, git_links
from models.insights.diff_statuses import ChatDiffStatus

log = logging.getLogger("agentfarm.insights")

CLAIM_WINDOW = timedelta(minutes=5)
TOKEN_BACKOFF = timedelta(minutes=10)
ERROR_BACKOFF = timedelta(minutes=1)
FINAL_STATES = ("merged", "closed")


def refresh(session: Session, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Claim stale statuses and defer one ``insights.ingest_pr`` each (sent on commit)."""
    claimed = diff_statuses.claim_stale(session, now=now, limit=limit, claim_for=CLAIM_WINDOW)
    for chat_id in claimed:
        defer(session, catalog.INSIGHTS_INGEST_PR.message(str(chat_id)))
    return claimed


@dataclass(frozen=True)
class Target:
    """What one ingestion works on, read before any network call."""

    chat_id: uuid.UUID
    owner_id: uuid.UUID
    branch: str
    origin: str


@dataclass
class Outcome:
    name: str  # stored, no_pull, rate_limited, token, no_provider, error, moved
    fields: dict[str, Any] | None = None
    retry_at: datetime | None = None


def ingest_pr(
    chat_id: uuid.UUID,
    *,
    providers: list[ExternalAuthConfig],
    box: SecretBox,
    stale_after: timedelta,
    timeout: float = 10.0,
    watch: Callable[[str, Any], object] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """Refresh one chat's pull request; returns the outcome name. ``watch(kind, chat)`` is
    told ``diff_status_change`` after the commit when what clients see changed."""
    with db.session_scope() as session:
        loaded = _load(session, chat_id, providers, box)
    if isinstance(loaded, Outcome):
        outcome = loaded
        target = None
    else:
        target, provider, token = loaded
        outcome = _ask(provider, token, target, timeout=timeout, transport=transport)
    with db.session_scope() as session:
        _apply(session, chat_id, target, outcome, stale_after=stale_after, watch=watch)
    metrics.PR_REFRESHES.labels(outcome.name).inc()
    return outcome.name


def _load(
    session: Session, chat_id: uuid.UUID, providers: list[ExternalAuthConfig], box: SecretBox
) -> Outcome | tuple[Target, ExternalAuthConfig, str]:
    row = session.get(ChatDiffStatus, chat_id)
    chat = session.get(Chat, chat_id)
    if row is None or chat is None or not row.git_branch or not row.git_remote_origin:
        return Outcome("moved")
    provider = provider_for_origin(providers, row.git_remote_origin)
    if provider is None or provider.type != "github" or repo_of(row.git_remote_origin) is None:
        log.warning(
            "no provider for origin",
            extra={
                "chat_id": str(chat_id),
                "origin": row.git_remote_origin,
                "provider": provider.id if provider else None,
            },
        )
        return Outcome("no_provider")
    try:
        token = git_links.user_token(session, box, provider_id=provider.id, user_id=chat.owner_id)
    except SecretsUnavailable as exc:
        token, reason = None, str(exc)
    else:
        reason = "no token linked"
    if not token:
        log.warning(
            "resolve token: %s", reason, extra={"chat_id": str(chat_id), "provider": provider.id}
        )
        return Outcome("token")
    target = Target(chat_id, chat.owner_id, row.git_branch, row.git_remote_origin)
    return target, provider, token


def _ask(
    provider: ExternalAuthConfig,
    token: str,
    target: Target,
    *,
    timeout: float,
    transport: httpx.BaseTransport | None,
) -> Outcome:
    owner, repo = repo_of(target.origin) or ("", "")
    try:
        with GitHubClient(provider.api_base_url, token, timeout=timeout, transport=transport) as gh:
            found = gh.find_pull(owner, repo, target.branch)
            if found is None:
                return Outcome("no_pull", fields={})
            number = int(found["number"])
            fields = pull_fields(gh.pull(owner, repo, number), gh.reviews(owner, repo, number))
    except RateLimited as exc:
        log.warning("rate limited: %s", exc, extra={"chat_id": str(target.chat_id)})
        return Outcome("rate_limited", retry_at=exc.retry_at)
    except TokenRejected as exc:
        log.warning("resolve token: %s", exc, extra={"chat_id": str(target.chat_id)})
        return Outcome("token")
    except ProviderError as exc:
        log.warning("pull request lookup failed: %s", exc, extra={"chat_id": str(target.chat_id)})
        return Outcome("error")
    return Outcome("stored", fields=fields)


def _apply(
    session: Session,
    chat_id: uuid.UUID,
    target: Target | None,
    outcome: Outcome,
    *,
    stale_after: timedelta,
    watch: Callable[[str, Any], object] | None,
) -> None:
    now = utcnow()
    row = session.exec(
        select(ChatDiffStatus).where(ChatDiffStatus.chat_id == chat_id).with_for_update()
    ).first()
    if row is None:
        return
    if target is not None and (row.git_branch, row.git_remote_origin) != (
        target.branch,
        target.origin,
    ):
        outcome.name = "moved"  # reported again meanwhile: look up the new branch soon
        diff_statuses.back_off(session, chat_id, now)
        return
    if outcome.fields is not None:
        final = outcome.fields.get("pull_request_state") in FINAL_STATES
        changed = diff_statuses.store_pull(
            session,
            row,
            outcome.fields,
            now=now,
            next_refresh=now + stale_after * (10 if final else 1),
        )
        chat = session.get(Chat, chat_id)
        if changed and watch is not None and chat is not None:
            defer_call(session, lambda: _tell(watch, chat))
        return
    if outcome.name == "moved":
        return
    if outcome.name == "rate_limited" and outcome.retry_at is not None:
        until = outcome.retry_at
    elif outcome.name in ("token", "no_provider"):
        until = now + TOKEN_BACKOFF
    else:
        until = now + ERROR_BACKOFF
    diff_statuses.back_off(session, chat_id, until)


def _tell(watch: Callable[[str, Any], object], chat: Chat) -> None:
    try:
        watch("diff_status_change", chat)
    except Exception:
        log.warning("diff status watch failed", exc_info=True)
