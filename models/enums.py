"""Enumerations shared by the tables and the API (values as on Coder's wire, reference §1.2)."""

from __future__ import annotations

from enum import StrEnum


class ChatStatus(StrEnum):
    WAITING = "waiting"
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ERROR = "error"
    REQUIRES_ACTION = "requires_action"


BUSY_STATUSES = (ChatStatus.PENDING, ChatStatus.RUNNING)


class MessageRole(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class MessageVisibility(StrEnum):
    USER = "user"
    MODEL = "model"
    BOTH = "both"


class ClientType(StrEnum):
    UI = "ui"
    API = "api"


class PlanMode(StrEnum):
    PLAN = "plan"


class ChatMode(StrEnum):
    COMPUTER_USE = "computer_use"
    EXPLORE = "explore"


class BusyBehavior(StrEnum):
    QUEUE = "queue"
    INTERRUPT = "interrupt"


# Supported providers, in Coder's supported-provider order (used for /chats/models ordering).
PROVIDERS: tuple[str, ...] = (
    "anthropic",
    "azure",
    "bedrock",
    "google",
    "openai",
    "openai-compat",
    "openrouter",
    "vercel",
)


class SiteRole(StrEnum):
    OWNER = "owner"
    USER_ADMIN = "user-admin"
    MEMBER = "member"
    AGENTS_ACCESS = "agents-access"


class ErrorKind(StrEnum):
    """Classification of LLM failures (reference §1.2 / §3.3)."""

    OVERLOADED = "overloaded"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    STARTUP_TIMEOUT = "startup_timeout"
    AUTH = "auth"
    CONFIG = "config"
    GENERIC = "generic"
