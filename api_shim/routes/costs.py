"""``/api/experimental/chats/cost``: spend reports (reference §1.10 "Cost", §5.4).

``/cost/users`` lists every user's spend (owner role); ``/cost/{user}/summary`` drills one
user's spend down by model and by root chat — anybody for themselves, admins for everyone.
Windows are [start_date, end_date), RFC 3339, the last 30 days by default.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request

from api_shim.deps import ADMIN_ROLES, CurrentUser, DbSession, OwnerUser
from models import cost_reports, usage_limits
from models.base import utcnow
from models.errors import BadRequest, NotFound
from models.user_refs import InvalidUserRef, find_user
from models.wire import ts

router = APIRouter(prefix="/api/experimental/chats/cost", tags=["cost"])

DEFAULT_WINDOW = timedelta(days=30)
MAX_PAGE = 1000  # [inferred] a bound on ``limit``; Coder's default page is 10


def _invalid(field: str, detail: str) -> BadRequest:
    return BadRequest(
        "Query parameters have invalid values.", validations=[{"field": field, "detail": detail}]
    )


def _query(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, refusing any Coder does not take (reference: 400)."""
    params = dict(request.query_params)
    for name in params:
        if name not in allowed:
            raise _invalid(name, f'Query param "{name}" is not a valid query param.')
    return params


def _date(params: dict[str, str], name: str, default: datetime) -> datetime:
    raw = params.get(name)
    if not raw:
        return default
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise _invalid(name, f"Query param {name!r} must be a valid RFC 3339 date.")
    return value


def _window(params: dict[str, str]) -> tuple[datetime, datetime]:
    end = _date(params, "end_date", utcnow())
    start = _date(params, "start_date", end - DEFAULT_WINDOW)
    if start > end:
        raise _invalid("start_date", "start_date must not be after end_date.")
    return start, end


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)  # type: ignore[arg-type]
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _invalid(name, f"Query param {name!r} must be an integer from {low} to {high}.")
    return value


@router.get("/users", summary="Spend per user with token totals (owner role)")
def cost_per_user(request: Request, user: OwnerUser, session: DbSession) -> dict[str, Any]:
    params = _query(request, ("start_date", "end_date", "username", "limit", "offset"))
    start, end = _window(params)
    count, users = cost_reports.users_rollup(
        session,
        start,
        end,
        username=params.get("username", "").strip(),
        limit=_int(params, "limit", 10, 1, MAX_PAGE),
        offset=_int(params, "offset", 0, 0, 2**31 - 1),
    )
    return {"start_date": ts(start), "end_date": ts(end), "count": count, "users": users}


@router.get("/{user}/summary", summary="One user's spend by model and by chat")
def cost_summary(
    user: str, request: Request, caller: CurrentUser, session: DbSession
) -> dict[str, Any]:
    params = _query(request, ("start_date", "end_date"))
    admin = bool(set(caller.rbac_roles or []) & ADMIN_ROLES)
    try:
        target = find_user(session, caller, user)
    except InvalidUserRef:
        target = None
    if target is None or (target.id != caller.id and not admin):
        # [inferred] Non-admins get the same 404 whether or not the user exists, so the
        # route cannot be used to discover usernames.
        raise NotFound("User not found." if admin else "Resource not found or you do not "
                       "have access to this resource")  # fmt: skip
    start, end = _window(params)
    body: dict[str, Any] = {
        "start_date": ts(start),
        "end_date": ts(end),
        **cost_reports.user_totals(session, target.id, start, end),
        "by_model": cost_reports.user_by_model(session, target.id, start, end),
        "by_chat": cost_reports.user_by_chat(session, target.id, start, end),
    }
    status = usage_limits.limit_status(session, target.id)
    if status is not None:
        # [inferred] the target's current-period status, as GET /usage-limits/status shows it.
        body["usage_limit"] = status.json()
    return body
