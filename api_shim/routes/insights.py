"""PR insights (reference §7) and a chat's diff (§1.5 ``GET /chats/{chat}/diff``).

``GET /chats/insights/pull-requests?start_date&end_date`` (admins; else 403) reports the pull
requests found for chats (``models.insights.pr_insights``). ``GET /chats/{chat}/diff`` returns
ChatDiffContents: the branch and origin the workspace reported, the provider whose regex
matches the origin, and the diff of the branch's PR (else of the branch against the default
branch), fetched with the chat owner's linked token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from agentfarm import external_auth
from agentfarm.integrations.github import GitHubClient, ProviderError, RateLimited, TokenRejected
from api_shim.deps import CurrentUser, DbSession, OwnerUser, Secrets, parse_uuid
from api_shim.report_query import date_window, strict_params
from models.chat import rules as chat_rules
from models.crypto import SecretsUnavailable
from models.errors import ApiError
from models.insights import git_links, pr_insights
from models.insights.diff_statuses import ChatDiffStatus

router = APIRouter(prefix="/api/experimental/chats", tags=["insights"])


class BadGateway(ApiError):
    """The git provider failed while answering for the caller."""

    status_code = 502


@router.get("/insights/pull-requests", summary="PR insights: pull requests made by chats")
def pull_request_insights(request: Request, user: OwnerUser, session: DbSession) -> dict[str, Any]:
    start, end = date_window(strict_params(request, ("start_date", "end_date")))
    return pr_insights.pull_request_insights(session, start, end)


@router.get("/{chat}/diff", summary="The diff of a chat's branch or pull request")
def chat_diff(
    chat: str, request: Request, user: CurrentUser, session: DbSession, box: Secrets
) -> dict[str, Any]:
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"))
    status = session.get(ChatDiffStatus, row.id)
    body: dict[str, Any] = {"chat_id": str(row.id)}
    if status is None or not status.git_remote_origin:
        return body
    body["remote_origin"] = status.git_remote_origin
    if status.git_branch:
        body["branch"] = status.git_branch
    if status.url:
        body["pull_request_url"] = status.url
    provider = external_auth.provider_for_origin(
        external_auth.configured(), status.git_remote_origin
    )
    repo = external_auth.repo_of(status.git_remote_origin)
    if provider is None or repo is None:
        return body
    body["provider"] = provider.type
    try:
        token = git_links.user_token(session, box, provider_id=provider.id, user_id=row.owner_id)
    except SecretsUnavailable:
        token = None
    if not token or provider.type != "github" or not (status.pr_number or status.git_branch):
        # [inferred] without a linked token (or for a provider type without diff support)
        # the contents come back without ``diff``.
        return body
    settings = request.app.state.settings
    try:
        with GitHubClient(
            provider.api_base_url, token, timeout=settings.insights_http_timeout_s
        ) as gh:
            if status.pr_number:
                body["diff"] = gh.pull_diff(*repo, status.pr_number)
            else:
                body["diff"] = gh.branch_diff(*repo, status.git_branch)
    except RateLimited as exc:
        raise BadGateway(
            f"{provider.display_name} rate limit reached.",
            detail=f"Try again after {exc.retry_at.isoformat()}.",
        ) from None
    except TokenRejected:
        raise BadGateway(
            f"{provider.display_name} rejected your linked token.",
            detail=f"Link a new token with PUT /api/v2/external-auth/{provider.id}/token.",
        ) from None
    except ProviderError as exc:
        raise BadGateway(
            f"Failed to fetch the diff from {provider.display_name}.", detail=str(exc)
        ) from None
    return body
