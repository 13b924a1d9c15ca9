"""A model config's call options (``model_config``, ChatModelCallConfig, reference §1.10).

Validated on write so the worker can pass them to litellm as they are: sampling options,
``max_output_tokens``, ``cost`` (USD per 1M tokens) and per-provider ``provider_options``,
whose reasoning effort must be one of the values the provider accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.errors import BadRequest
from models.providers.pricing import COST_KEYS

# Reasoning efforts per provider_options block, as §1.10 lists them for each field. Every value
# is also in litellm's ``reasoning_effort`` vocabulary (tests/unit/test_model_options.py).
OPENAI_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
ANTHROPIC_EFFORTS = ("low", "medium", "high", "max")
LEVELS = ("low", "medium", "high")

# The provider_options block each provider reads: Azure uses the openai shape, Bedrock the
# anthropic one (§1.10).
OPTIONS_BLOCK = {
    "anthropic": "anthropic",
    "azure": "openai",
    "bedrock": "anthropic",
    "google": "google",
    "openai": "openai",
    "openai-compat": "openaicompat",
    "openrouter": "openrouter",
    "vercel": "vercel",
}
# Where each block keeps its reasoning effort, and the values it accepts. Google has no effort
# field (it takes a thinking budget). [inferred] vercel's ``reasoning`` object carries
# ``effort`` like openrouter's, with the OpenAI scale §1.10 gives for Vercel.
EFFORT_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "openai": (("reasoning_effort",), OPENAI_EFFORTS),
    "openaicompat": (("reasoning_effort",), OPENAI_EFFORTS),
    "anthropic": (("effort",), ANTHROPIC_EFFORTS),
    "openrouter": (("reasoning", "effort"), OPENAI_EFFORTS),
    "vercel": (("reasoning", "effort"), OPENAI_EFFORTS),
}
_ENUM_FIELDS = {
    "openai": {("text_verbosity",): LEVELS, ("search_context_size",): LEVELS},
}


class ModelCostConfig(BaseModel):
    """Prices in USD per 1M tokens; all optional."""

    input_price_per_million_tokens: float | None = None
    output_price_per_million_tokens: float | None = None
    cache_read_price_per_million_tokens: float | None = None
    cache_write_price_per_million_tokens: float | None = None


class ChatModelCallConfig(BaseModel):
    """How the model is called. Extra keys are kept (legacy top-level prices are moved into
    ``cost``)."""

    model_config = ConfigDict(extra="allow")

    max_output_tokens: int | None = Field(default=None, description="Default 32,000 when unset.")
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    cost: ModelCostConfig | None = None
    provider_options: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="Keys: " + ", ".join(sorted(set(OPTIONS_BLOCK.values()))) + ".",
    )


def allowed_reasoning_efforts(provider: str) -> tuple[str, ...]:
    """The reasoning efforts a provider's options accept (empty: no effort setting)."""
    field = EFFORT_FIELDS.get(OPTIONS_BLOCK.get(provider, ""))
    return field[1] if field else ()


def _invalid(field: str, text: str) -> BadRequest:
    # [inferred] The reference quotes the cost rule's text only; the field's sentence is the
    # message, and the field is named in ``validations`` too.
    message = f"{field} {text}"
    return BadRequest(message, validations=[{"field": f"model_config.{field}", "detail": message}])


def _dig(block: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = block
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _check_range(data: dict[str, Any], key: str, low: float | None, high: float | None) -> None:
    value = data.get(key)
    if value is None:
        return
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            raise _invalid(key, f"must be greater than or equal to {low:g}")
        raise _invalid(key, f"must be between {low:g} and {high:g}")


def _check_provider_options(options: dict[str, dict[str, Any]]) -> None:
    known = set(OPTIONS_BLOCK.values())
    for name, block in options.items():
        if name not in known:
            raise _invalid(f"provider_options.{name}", "is not a known provider options key")
        checks = dict(_ENUM_FIELDS.get(name, {}))
        if name in EFFORT_FIELDS:
            path, allowed = EFFORT_FIELDS[name]
            checks[path] = allowed  # type: ignore[assignment, index]
        for path, allowed in checks.items():
            value = _dig(block, path)
            if value is not None and value not in allowed:
                field = ".".join(("provider_options", name, *path))
                raise _invalid(field, "must be one of: " + ", ".join(allowed))
    anthropic = options.get("anthropic") or {}
    if anthropic.get("allowed_domains") and anthropic.get("blocked_domains"):
        raise _invalid(
            "provider_options.anthropic.allowed_domains", "cannot be combined with blocked_domains"
        )
    budget = _dig(options.get("google") or {}, ("thinking_config", "thinking_budget"))
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
        raise _invalid(
            "provider_options.google.thinking_config.thinking_budget", "must be an integer"
        )


def normalize_call_config(config: ChatModelCallConfig | None) -> dict[str, Any]:
    """Validate ``model_config`` and return what is stored (``{}`` when null)."""
    if config is None:
        return {}
    data = config.model_dump(exclude_none=True)
    cost = dict(data.pop("cost", None) or {})
    for key in COST_KEYS:  # legacy top-level price keys (§1.10)
        legacy = data.pop(key, None)
        if legacy is not None and cost.get(key) is None:
            try:
                cost[key] = float(legacy)
            except (TypeError, ValueError):
                raise _invalid(key, "must be a number") from None
    for key in COST_KEYS:
        if cost.get(key) is not None and cost[key] < 0:
            raise _invalid(f"cost.{key}", "must be greater than or equal to zero")
    if data.get("max_output_tokens") is not None and data["max_output_tokens"] <= 0:
        raise _invalid("max_output_tokens", "must be greater than zero")
    # [inferred] Ranges are the widest any supported provider accepts (OpenAI's).
    _check_range(data, "temperature", 0, 2)
    _check_range(data, "top_p", 0, 1)
    _check_range(data, "top_k", 0, None)
    _check_range(data, "presence_penalty", -2, 2)
    _check_range(data, "frequency_penalty", -2, 2)
    _check_provider_options(data.get("provider_options") or {})
    if cost:
        data["cost"] = cost
    return data


def reasoning_effort_for(provider: str, options: dict[str, Any] | None) -> str | None:
    """The reasoning effort to send for a model (litellm's ``reasoning_effort``), if set."""
    block_name = OPTIONS_BLOCK.get(provider, "")
    field = EFFORT_FIELDS.get(block_name)
    block = ((options or {}).get("provider_options") or {}).get(block_name)
    if field is None or not isinstance(block, dict):
        return None
    value = _dig(block, field[0])
    return value if isinstance(value, str) and value else None
