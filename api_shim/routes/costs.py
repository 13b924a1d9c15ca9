"""``/api/experimental/chats/cost``: spend reports (reference §1.10 "Cost", §5.4).

``/cost/users`` lists every user's spend (owner role); ``/cost/{user}/summary`` drills one
user's spend down by model and by root chat — anybody for themselves, admins for everyone.
Windows are [start_date, end_date), RFC 3339, the last 30 days by default.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api_shim.deps import ADMIN_ROLES, CurrentUser, DbSession, OwnerUser
from api_shim.report_query import date_window, int_param, strict_params
from models.chat.wire import ts
from models.errors import NotFound
from models.identity.user_refs import InvalidUserRef, find_user
from models.usage import cost_reports
from models.usage import limits as usage_limits

router = APIRouter(prefix="/api/experimental/chats/cost", tags=["cost"])

MAX_PAGE = 1000  # [inferred] a bound on ``limit``; Coder's default page is 10


@router.get("/users", summary="Spend per user with token totals (owner role)")
def cost_per_user(request: Request, user: OwnerUser, session: DbSession) -> dict[str, Any]:
    params = strict_params(request, ("start_date", "end_date", "username", "limit", "offset"))
    start, end = date_window(params)
    count, users = cost_reports.users_rollup(
        session,
        start,
        end,
        username=params.get("username", "").strip(),
        limit=int_param(params, "limit", 10, 1, MAX_PAGE),
        offset=int_param(params, "offset", 0, 0, 2**31 - 1),
    )
    return {"start_date": ts(start), "end_date": ts(end), "count": count, "users": users}


@router.get("/{user}/summary", summary="One user's spend by model and by chat")
def cost_summary(
    user: str, request: Request, caller: CurrentUser, session: DbSession
) -> dict[str, Any]:
    params = strict_params(request, ("start_date", "end_date"))
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
    start, end = date_window(params)
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
