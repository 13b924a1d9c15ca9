"""A small GitHub REST client for PR insights (github.com and GitHub Enterprise alike).

Only what the insights need: the newest pull request of a branch, its reviews, and diffs.
Every call carries the timeout it was built with. Failures are named:
- :class:`RateLimited`: 429, or 403 with ``x-ratelimit-remaining: 0`` or ``retry-after``
  (primary and secondary limits), with the time GitHub says to come back;
- :class:`TokenRejected`: 401, any other 403, and 404 on the repository (GitHub answers 404
  for a private repository the token cannot see);
- :class:`ProviderError`: anything else (5xx, transport errors, unreadable bodies).
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

JSON = "application/vnd.github+json"
DIFF = "application/vnd.github.diff"
REVIEW_PAGES = 5  # at most 500 reviews per pull request are read
MAX_RATE_LIMIT_WAIT = timedelta(hours=1)


class ProviderError(Exception):
    """The git provider failed in a way that may pass (5xx, network)."""


class TokenRejected(ProviderError):
    """The token is missing, invalid, or cannot see the repository."""


class RateLimited(ProviderError):
    """The provider asks us to wait until ``retry_at``."""

    def __init__(self, message: str, retry_at: datetime):
        super().__init__(message)
        self.retry_at = retry_at


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def rate_limit_until(response: httpx.Response, now: datetime) -> datetime | None:
    """When a rate-limited response says to come back (None: not a rate limit)."""
    headers = response.headers
    limited = response.status_code == 429 or (
        response.status_code == 403
        and (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers)
    )
    if not limited:
        return None
    until = now + timedelta(seconds=60)  # GitHub's advice when no header says more
    retry_after = headers.get("retry-after", "")
    if retry_after.isdigit():
        until = now + timedelta(seconds=int(retry_after))
    elif retry_after:
        parsed = email.utils.parsedate_to_datetime(retry_after)
        until = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    elif headers.get("x-ratelimit-reset", "").isdigit():
        until = datetime.fromtimestamp(int(headers["x-ratelimit-reset"]), UTC)
    return min(max(until, now + timedelta(seconds=1)), now + MAX_RATE_LIMIT_WAIT)


class GitHubClient:
    """REST calls with one token against one API root (``https://api.github.com`` or a GitHub
    Enterprise ``https://<host>/api/v3``)."""

    def __init__(
        self,
        api_base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.http = httpx.Client(
            base_url=api_base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "agentfarm-pr-insights",
            },
        )

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _get(self, path: str, *, params: dict[str, Any] | None = None, accept: str = JSON) -> Any:
        try:
            response = self.http.get(path, params=params, headers={"Accept": accept})
        except httpx.HTTPError as exc:
            raise ProviderError(f"GET {path}: {type(exc).__name__}") from exc
        until = rate_limit_until(response, datetime.now(UTC))
        if until is not None:
            raise RateLimited(f"GET {path}: rate limited ({response.status_code})", until)
        if response.status_code in (401, 403, 404):
            raise TokenRejected(f"GET {path}: {response.status_code}")
        if response.status_code != 200:
            raise ProviderError(f"GET {path}: {response.status_code}")
        if accept == DIFF:
            return response.text
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(f"GET {path}: unreadable body") from exc

    @staticmethod
    def _repo(owner: str, repo: str) -> str:
        return f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"

    def find_pull(self, owner: str, repo: str, branch: str) -> dict[str, Any] | None:
        """The newest pull request (any state) whose head is ``owner:branch``."""
        pulls = self._get(
            f"{self._repo(owner, repo)}/pulls",
            params={
                "head": f"{owner}:{branch}",
                "state": "all",
                "sort": "created",
                "direction": "desc",
                "per_page": 1,
            },
        )
        return pulls[0] if isinstance(pulls, list) and pulls else None

    def pull(self, owner: str, repo: str, number: int) -> dict[str, Any]:
        """The full pull request (the list endpoint lacks additions, commits …)."""
        return self._get(f"{self._repo(owner, repo)}/pulls/{number}")

    def reviews(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        """Reviews in submission order (up to ``REVIEW_PAGES`` pages of 100)."""
        out: list[dict[str, Any]] = []
        for page in range(1, REVIEW_PAGES + 1):
            batch = self._get(
                f"{self._repo(owner, repo)}/pulls/{number}/reviews",
                params={"per_page": 100, "page": page},
            )
            out += batch
            if len(batch) < 100:
                break
        return out

    def pull_diff(self, owner: str, repo: str, number: int) -> str:
        return self._get(f"{self._repo(owner, repo)}/pulls/{number}", accept=DIFF)

    def branch_diff(self, owner: str, repo: str, branch: str) -> str:
        """The diff of ``branch`` against the repository's default branch."""
        base = self._get(self._repo(owner, repo)).get("default_branch") or "main"
        spec = f"{quote(base, safe='')}...{quote(branch, safe='')}"
        return self._get(f"{self._repo(owner, repo)}/compare/{spec}", accept=DIFF)


def review_summary(reviews: list[dict[str, Any]], author: str | None) -> dict[str, Any]:
    """approved / changes_requested / reviewer_count from the reviews, each reviewer's latest
    decisive review counting (a later comment does not undo an approval; a dismissal does).
    [inferred] Coder's exact rule is not in the reference: approved means at least one
    approval and no outstanding change request; reviewer_count counts every distinct reviewer
    other than the author who submitted a review."""
    latest: dict[str, str] = {}
    reviewers: set[str] = set()
    for review in reviews:
        login = (review.get("user") or {}).get("login")
        state = str(review.get("state") or "").upper()
        if not login or login == author or state == "PENDING":
            continue
        reviewers.add(login)
        if state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login] = state
    changes = any(s == "CHANGES_REQUESTED" for s in latest.values())
    return {
        "approved": any(s == "APPROVED" for s in latest.values()) and not changes,
        "changes_requested": changes,
        "reviewer_count": len(reviewers),
    }


def pull_fields(pull: dict[str, Any], reviews: list[dict[str, Any]]) -> dict[str, Any]:
    """Every ChatDiffStatus field of one pull request
    (``models.insights.diff_statuses.PR_FIELDS``)."""
    user = pull.get("user") or {}
    merged = bool(pull.get("merged") or pull.get("merged_at"))
    return {
        "url": pull.get("html_url"),
        "pull_request_state": "merged" if merged else pull.get("state"),
        "pull_request_title": pull.get("title") or "",
        "pull_request_draft": bool(pull.get("draft")),
        "additions": int(pull.get("additions") or 0),
        "deletions": int(pull.get("deletions") or 0),
        "changed_files": int(pull.get("changed_files") or 0),
        "author_login": user.get("login"),
        "author_avatar_url": user.get("avatar_url"),
        "base_branch": (pull.get("base") or {}).get("ref"),
        "head_branch": (pull.get("head") or {}).get("ref"),
        "pr_number": pull.get("number"),
        "commits": pull.get("commits"),
        "pr_created_at": _parse_time(pull.get("created_at")),
        "pr_merged_at": _parse_time(pull.get("merged_at")),
        "pr_closed_at": _parse_time(pull.get("closed_at")),
        **review_summary(reviews, user.get("login")),
    }
