"""Operational endpoints: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agentfarm import metrics
from models import db

router = APIRouter(tags=["operations"])


def _db_ok() -> bool:
    with db.get_engine().connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return True


@router.get("/healthz", summary="Postgres and Redis reachability")
async def healthz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(_db_ok)
        checks["postgres"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, don't raise
        checks["postgres"] = f"error: {type(exc).__name__}"
    try:
        await request.app.state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def prometheus_metrics(request: Request) -> Response:
    farm = getattr(request.app.state, "farm_collector", None)
    body = metrics.render(farm) if farm is not None else metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
