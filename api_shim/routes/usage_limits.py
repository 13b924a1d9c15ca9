"""``/api/experimental/chats/usage-limits``: spend caps (reference §1.10 "Usage limits", §5.3).

Reading and changing the configuration and its overrides needs the owner role; every user may
read their own status. Enforcement lives in ``models.usage.limits``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from api_shim.deps import CurrentUser, DbSession, OwnerUser
from models.errors import ApiError, BadRequest, NotFound
from models.identity.tables import User
from models.identity.user_refs import InvalidUserRef, find_user
from models.providers.pricing import unpriced_model_count
from models.usage import limit_config as config
from models.usage import limits as usage_limits

router = APIRouter(prefix="/api/experimental/chats/usage-limits", tags=["usage-limits"])


# Limits are stored in bigint columns: a larger number is a 400, not a database error.
Micros = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class UsageLimitConfigRequest(BaseModel):
    spend_limit_micros: Micros | None = None
    period: str | None = None


class OverrideRequest(BaseModel):
    spend_limit_micros: Micros | None = None


def _config_response(session: DbSession) -> dict[str, Any]:
    return {
        **config.config_json(config.config_row(session)),
        "unpriced_model_count": unpriced_model_count(session),
        "overrides": config.user_overrides(session),
        "group_overrides": config.group_overrides(session),
    }


@router.get("", summary="The spend-limit configuration and its overrides (owner role)")
def get_usage_limits(user: OwnerUser, session: DbSession) -> dict[str, Any]:
    return _config_response(session)


@router.put("", summary="Set the default spend limit and period; null turns limits off")
def put_usage_limits(
    body: UsageLimitConfigRequest, user: OwnerUser, session: DbSession
) -> dict[str, Any]:
    config.set_config(session, body.spend_limit_micros, body.period)
    session.commit()
    # [inferred] The full GET body (a superset of Coder's config object).
    return _config_response(session)


@router.get("/status", summary="Your own spend against your limit in the current period")
def get_usage_status(user: CurrentUser, session: DbSession) -> dict[str, Any]:
    return usage_limits.status_json(session, user.id)


def _target_user(session: DbSession, caller: User, ref: str, *, missing: type[ApiError]) -> User:
    try:
        target = find_user(session, caller, ref)
    except InvalidUserRef:
        raise BadRequest("Invalid chat usage limit user ID.") from None
    if target is None:
        raise missing("User not found.")
    return target


@router.put("/overrides/{user}", summary="Set one user's spend limit (overrides groups)")
def put_user_override(
    user: str, body: OverrideRequest, caller: OwnerUser, session: DbSession
) -> dict[str, Any]:
    target = _target_user(session, caller, user, missing=NotFound)
    config.set_user_override(session, target, body.spend_limit_micros or 0)
    session.commit()
    return config.user_override_json(target)


@router.delete("/overrides/{user}", status_code=204, summary="Remove one user's spend limit")
def delete_user_override(user: str, caller: OwnerUser, session: DbSession) -> Response:
    target = _target_user(session, caller, user, missing=BadRequest)
    config.clear_user_override(session, target)
    session.commit()
    return Response(status_code=204)


def _group_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRequest("Invalid group ID.") from None


@router.put("/group-overrides/{group}", summary="Set a group's spend limit")
def put_group_override(
    group: str, body: OverrideRequest, caller: OwnerUser, session: DbSession
) -> dict[str, Any]:
    group_id = _group_id(group)
    if body.spend_limit_micros is None or body.spend_limit_micros <= 0:
        raise BadRequest("Spend limit (in microdollars) must be greater than 0.")
    entry = config.set_group_override(session, group_id, body.spend_limit_micros)
    if entry is None:
        raise NotFound("Group not found.")
    session.commit()
    return entry


@router.delete("/group-overrides/{group}", status_code=204, summary="Remove a group's limit")
def delete_group_override(group: str, caller: OwnerUser, session: DbSession) -> Response:
    config.clear_group_override(session, _group_id(group))
    session.commit()
    return Response(status_code=204)
