"""Every error leaves the shim in Coder's envelope: ``{message, detail?, validations?}``."""

from __future__ import annotations

import logging

import sqlalchemy.exc as sa_exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis import exceptions as redis_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import ApiError

log = logging.getLogger("agentfarm.api")
RETRY_AFTER_S = 5


def envelope(
    status: int, message: str, detail: str | None = None, validations=None
) -> JSONResponse:
    body: dict[str, object] = {"message": message}
    if detail:
        body["detail"] = detail
    if validations:
        body["validations"] = validations
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Map expected failures, FastAPI's validation errors and HTTP errors to the envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        validations = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            validations.append({"field": ".".join(loc) or "body", "detail": err.get("msg", "")})
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            return envelope(400, "Request body must be valid JSON.", validations=validations)
        return envelope(400, "Validation failed.", validations=validations)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "Route not found."
        if exc.status_code == 405:
            message = "Method not allowed."
        return envelope(exc.status_code, message)

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    @app.exception_handler(sa_exc.TimeoutError)
    @app.exception_handler(redis_exc.ConnectionError)
    @app.exception_handler(redis_exc.TimeoutError)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Postgres or Redis is down or unreachable: the request's transaction rolled back (or,
        # if only the wake-up could not be sent after commit, the stale sweeper re-sends it),
        # so the client may simply try again.
        log.warning(
            "dependency unavailable: %s", type(exc).__name__, extra={"path": request.url.path}
        )
        response = envelope(
            503,
            "Service temporarily unavailable.",
            detail="The database or the queue cannot be reached; retry shortly.",
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.exception_handler(sa_exc.DataError)
    async def _unstorable(request: Request, exc: sa_exc.DataError) -> JSONResponse:
        # The database refused a value of the request (SQLSTATE class 22: a number out of
        # range, text it cannot hold …) and the transaction rolled back. Routes validate what
        # they can name; this is the net for the rest, logged so a route can be tightened.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else ""
        log.warning("value refused by the database: %s", reason, extra={"path": request.url.path})
        return envelope(400, "Invalid value in the request.", detail=reason or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A 500 is always a bug: log it with the route, never with request bodies.
        log.exception("unhandled error", extra={"path": request.url.path})
        return envelope(500, "An internal error occurred.", detail=type(exc).__name__)
