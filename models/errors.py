"""Expected failures, each mapped by the API shim to a 4xx in Coder's error envelope."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of every expected failure: carries Coder's ``{message, detail, validations}``."""

    status_code = 400

    def __init__(
        self,
        message: str,
        detail: str | None = None,
        validations: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.validations = validations
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON error envelope."""
        out: dict[str, Any] = {"message": self.message}
        if self.detail:
            out["detail"] = self.detail
        if self.validations:
            out["validations"] = self.validations
        out.update(self.extra)
        return out


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class TooManyRequests(ApiError):
    status_code = 429


class PayloadTooLarge(ApiError):
    status_code = 413


class ServiceUnavailable(ApiError):
    """The server cannot do this as configured (e.g. no encryption key for secrets)."""

    status_code = 503


def chat_not_found() -> NotFound:
    """The 404 for a chat that does not exist or that the caller may not see."""
    return NotFound("Resource not found or you do not have access to this resource")
