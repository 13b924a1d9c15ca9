"""``GET /api/v2/audit``: the audit log, newest first (owner role)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from api_shim.deps import DbSession, OwnerUser
from models.site import audit

router = APIRouter(prefix="/api/v2", tags=["audit"])


@router.get("/audit", summary="Audit log of admin changes and chat create/patch (owner role)")
def list_audit_logs(
    user: OwnerUser,
    session: DbSession,
    q: str = Query(default="", description="resource_type:… action:… username:… resource_id:…"),
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=50, ge=1, le=1000),
) -> dict[str, Any]:
    entries, count = audit.list_entries(session, q=q, offset=offset, limit=limit)
    return {"audit_logs": [audit.entry_json(e) for e in entries], "count": count}
