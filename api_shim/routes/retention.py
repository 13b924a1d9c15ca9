"""Chat retention setting (reference §1.10, §5.5): how long archived chats are kept.

Any authenticated user may read it; changing it needs the owner role. 0 turns retention
off; the purge itself is the ``retention.purge`` actor, sent by the scheduler.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api_shim.deps import CurrentUser, DbSession, require_owner
from models import retention

router = APIRouter(prefix="/api/experimental/chats/config", tags=["config"])


class RetentionDays(BaseModel):
    retention_days: int


@router.get("/retention-days", summary="Days archived chats are kept (0 = forever)")
def get_retention_days(user: CurrentUser, session: DbSession) -> RetentionDays:
    return RetentionDays(retention_days=retention.retention_days(session))


@router.put(
    "/retention-days",
    status_code=204,
    summary="Set the retention window in days, 0–3650 (owner role; 0 disables retention)",
)
def put_retention_days(body: RetentionDays, user: CurrentUser, session: DbSession) -> Response:
    require_owner(user)
    retention.set_retention_days(session, body.retention_days)
    session.commit()
    return Response(status_code=204)
