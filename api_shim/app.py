"""FastAPI app factory for the API shim."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from agentfarm import logs, metrics
from agentfarm.chat_stream.writer import ChatEventWriter
from agentfarm.integrations import webpush as web_push
from agentfarm.settings import Settings, get_settings
from agentfarm.tasks.broker import get_broker
from agentfarm.tasks.farm_state import FarmCollector
from api_shim.audit import AuditTrail
from api_shim.errors import install_error_handlers
from api_shim.experiments import ExperimentGate
from api_shim.routes import (
    audit,
    authcheck,
    chats,
    config,
    costs,
    external_auth,
    farm,
    files,
    groups,
    insights,
    mcp,
    mcp_oauth,
    messages,
    model_configs,
    ops,
    organizations,
    providers,
    push,
    queue,
    retention,
    stream,
    titles,
    tool_results,
    usage_limits,
    user_keys,
    users,
    watch,
    workspaces,
)
from api_shim.storable_text import StorableText
from models import db
from models.crypto import SecretBox


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; connections are opened in the lifespan, not here."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError("AGENTFARM_DATABASE_URL and AGENTFARM_REDIS_URL must be set")
        db.init_engine(settings.database_url, pool_size=20, max_overflow=40)
        get_broker()
        web_push.ensure_keys(app.state.secrets)  # VAPID keys, generated on first start

        sync_redis = Redis.from_url(settings.redis_url)
        # No socket timeout: relays block in XREAD for up to the ping interval and watchers in
        # pub/sub reads indefinitely (redis-py 8 defaults to 5 s, which cut idle streams);
        # TCP keepalive still detects a dead Redis connection.
        app.state.redis = AsyncRedis.from_url(
            settings.redis_url, max_connections=2000, socket_timeout=None, socket_keepalive=True
        )
        app.state.events = ChatEventWriter(
            sync_redis, maxlen=settings.stream_maxlen, ttl_s=settings.stream_ttl_s
        )
        # Farm-wide gauges (queue depth and age, chats by status, live workers) on /metrics.
        app.state.farm_collector = FarmCollector(
            sync_redis, settings.broker_namespace, settings.host_ttl_s
        )
        try:
            yield
        finally:
            await app.state.redis.aclose()
            sync_redis.close()

    app = FastAPI(
        title="agentfarm",
        version="0.1.0",
        summary="Coding-agent chats on a farm of workers; Coder Chats API compatible.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.state.settings = settings
    # Provider and user API keys are encrypted with these (Fernet keys, newest first).
    app.state.secrets = SecretBox(settings.encryption_key_list)
    # watch (and providers, model-configs, user-provider-configs) before chats:
    # GET /chats/watch must not be read as GET /chats/{chat}.
    for module in (
        ops,
        farm,
        audit,
        users,
        organizations,
        groups,
        authcheck,
        config,
        retention,
        workspaces,
        files,
        watch,
        providers,
        model_configs,
        user_keys,
        usage_limits,
        costs,
        insights,
        external_auth,
        push,
        mcp,
        mcp_oauth,
        chats,
        messages,
        queue,
        tool_results,
        titles,
        stream,
    ):
        app.include_router(module.router)

    # Innermost: JSON text Postgres cannot store is refused (400), then the agents experiment
    # gate (HttpMetrics still counts what they refuse).
    app.add_middleware(StorableText)
    app.add_middleware(ExperimentGate, settings=settings)
    app.add_middleware(AuditTrail)
    app.add_middleware(JsonBodies)
    app.add_middleware(HttpMetrics)
    app.add_middleware(RequestContext)  # outermost: every log line of the request has its id
    return app


class RequestContext:
    """Bind a request id (the client's ``X-Request-Id`` if it is a sane token, else a new one)
    to every log line of the request, and return it in the ``X-Request-Id`` response header."""

    HEADER = b"x-request-id"
    _SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(self.HEADER, b"")
        request_id = given.decode() if self._SANE.match(given) else uuid.uuid4().hex
        tokens = logs.bind(request_id=request_id)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != self.HEADER]
                message["headers"] = [*headers, (self.HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.restore(tokens)


class HttpMetrics:
    """Pure ASGI middleware (no per-chunk overhead on streams): requests and latency by route."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "GET")
            metrics.HTTP_REQUESTS.labels(method, route, str(status["code"])).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)


class JsonBodies:
    """Treat API request bodies as JSON whatever their Content-Type, as Coder's server does.

    ``curl -d`` sends ``application/x-www-form-urlencoded`` by default; Coder decodes such a
    body as JSON anyway, so a walk-through that works against Coder works here too. Bodies
    that are meant to be raw bytes (file uploads) are left alone.
    """

    LENIENT = (b"", b"application/x-www-form-urlencoded", b"text/plain")
    RAW_PATHS = ("/api/experimental/chats/files",)

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") in ("POST", "PUT", "PATCH")
            and scope.get("path", "").startswith("/api/")
            and not scope["path"].startswith(self.RAW_PATHS)
        ):
            headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-type"]
            declared = dict(scope.get("headers", [])).get(b"content-type", b"")
            if declared.split(b";")[0].strip().lower() in self.LENIENT:
                # In place: the middlewares outside read the route the router sets on scope.
                scope["headers"] = [*headers, (b"content-type", b"application/json")]
        await self.app(scope, receive, send)
