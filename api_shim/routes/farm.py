"""``GET /api/experimental/farm/status``: live workers, workspace hosts, queues and the runs
in flight, for operators (owner role)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from agentfarm.tasks import farm_state
from api_shim.deps import OwnerUser

router = APIRouter(prefix="/api/experimental/farm", tags=["operations"])


@router.get("/status", summary="Workers, hosts, queues and in-flight chats (owner role)")
async def farm_status(request: Request, user: OwnerUser) -> dict[str, Any]:
    settings = request.app.state.settings
    return await run_in_threadpool(
        farm_state.status_report,
        request.app.state.events.redis,
        settings.broker_namespace,
        settings.host_ttl_s,
    )
