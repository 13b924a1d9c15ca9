"""Model-call failures classified as Coder's chatd does: error kind, user-facing message,
and whether a retry can help (a 429 for an exhausted quota cannot; an overload can)."""

from __future__ import annotations

import sys
from typing import Any

import httpx

from models.enums import ErrorKind

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504, 529}
_NON_RETRYABLE_PATTERNS = (
    "invalid api key",
    "unauthorized",
    "forbidden",
    "authentication",
    "model not found",
    "context length exceeded",
    "context_length_exceeded",
    "quota",
    "billing",
    "canceled",
    "deadline",
)
_RETRYABLE_PATTERNS = (
    "overloaded",
    "rate limit",
    "too many requests",
    "server error",
    "connection reset",
    "connection refused",
    "eof",
    "broken pipe",
    "timeout",
    "timed out",
    "unavailable",
)
KIND_MESSAGES = {
    ErrorKind.OVERLOADED: "The model provider is overloaded.",
    ErrorKind.RATE_LIMIT: "The model provider is rate limiting requests.",
    ErrorKind.TIMEOUT: "The request to the model provider timed out.",
    ErrorKind.STARTUP_TIMEOUT: "The model provider did not start responding in time.",
    ErrorKind.AUTH: "The model provider rejected the credentials.",
    ErrorKind.CONFIG: "The model is not configured correctly.",
    ErrorKind.GENERIC: "The model provider returned an error.",
}


class LLMError(Exception):
    """A classified model-call failure."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        provider: str | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.provider = provider

    def event_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message": self.message,
            "kind": str(self.kind),
            "retryable": self.retryable,
        }
        if self.provider:
            out["provider"] = self.provider
        if self.status_code:
            out["status_code"] = self.status_code
        return out


def classify(exc: BaseException, *, provider: str | None = None) -> LLMError:
    """Map any exception from a model call to Coder's error kinds and retryability."""
    if isinstance(exc, LLMError):
        return exc
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    text = str(exc).lower()
    detail = _short(str(exc))

    def err(kind: ErrorKind, retryable: bool) -> LLMError:
        return LLMError(
            kind,
            f"{KIND_MESSAGES[kind]} {detail}".strip(),
            retryable=retryable,
            status_code=status,
            provider=provider,
        )

    lt = sys.modules.get("litellm")
    timeouts: tuple[type[BaseException], ...] = (httpx.TimeoutException, TimeoutError)
    if lt is not None:
        timeouts += (lt.Timeout,)
    if isinstance(exc, timeouts):
        return err(ErrorKind.TIMEOUT, True)
    # Non-retryable text wins over the status (Coder checks these first): OpenAI answers an
    # exhausted quota or billing problem with a 429 that no amount of waiting fixes.
    if any(p in text for p in _NON_RETRYABLE_PATTERNS):
        auth = status in (401, 403) or "key" in text or "auth" in text
        return err(ErrorKind.AUTH if auth else ErrorKind.CONFIG, False)
    if status in (401, 403):
        return err(ErrorKind.AUTH, False)
    if status == 429:
        return err(ErrorKind.RATE_LIMIT, True)
    # litellm reports Anthropic's 529 as a 500 whose text names the overload.
    if status in (503, 529) or (status in RETRYABLE_STATUS and "overloaded" in text):
        return err(ErrorKind.OVERLOADED, True)
    if status in RETRYABLE_STATUS:
        return err(ErrorKind.GENERIC, True)
    if status is not None and 400 <= status < 500:
        return err(ErrorKind.CONFIG, False)
    if "overloaded" in text:
        return err(ErrorKind.OVERLOADED, True)
    if "rate limit" in text or "too many requests" in text:
        return err(ErrorKind.RATE_LIMIT, True)
    if any(p in text for p in _RETRYABLE_PATTERNS):
        return err(ErrorKind.TIMEOUT if "time" in text else ErrorKind.GENERIC, True)
    return err(ErrorKind.GENERIC, False)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
