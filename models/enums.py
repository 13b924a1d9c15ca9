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

# Each provider's routing prefix in litellm (``<prefix>/<model>``). openai-compat endpoints
# speak OpenAI's protocol at their own base URL, so litellm's ``openai`` client serves them.
LITELLM_PREFIX: dict[str, str] = {
    "anthropic": "anthropic",
    "azure": "azure",
    "bedrock": "bedrock",
    "google": "gemini",
    "openai": "openai",
    "openai-compat": "openai",
    "openrouter": "openrouter",
    "vercel": "vercel_ai_gateway",
}

# Names shown for providers that have no row yet (reference §5.1's list).
PROVIDER_DISPLAY_NAMES: dict[str, str] = {
    "anthropic": "Anthropic",
    "azure": "Azure OpenAI",
    "bedrock": "AWS Bedrock",
    "google": "Google",
    "openai": "OpenAI",
    "openai-compat": "OpenAI Compatible",
    "openrouter": "OpenRouter",
    "vercel": "Vercel AI Gateway",
}


class UnavailableReason(StrEnum):
    """Why a provider cannot serve a user (reference §1.2, §5.2)."""

    MISSING_API_KEY = "missing_api_key"
    FETCH_FAILED = "fetch_failed"
    USER_API_KEY_REQUIRED = "user_api_key_required"


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
