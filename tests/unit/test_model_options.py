"""Model call options and default prices: validation per provider, litellm's vocabulary."""

from __future__ import annotations

import typing
from typing import Any

import litellm
import pytest
from litellm.llms.anthropic.chat.transformation import REASONING_EFFORT_TO_OUTPUT_CONFIG_EFFORT
from litellm.types.llms.openai import REASONING_EFFORT

from models.enums import LITELLM_PREFIX, PROVIDERS
from models.errors import BadRequest
from models.providers import pricing
from models.providers.model_options import (
    ANTHROPIC_EFFORTS,
    OPENAI_EFFORTS,
    ChatModelCallConfig,
    allowed_reasoning_efforts,
    normalize_call_config,
    reasoning_effort_for,
)
from workers.turn.llm import ResolvedModel, completion_kwargs

# Where each provider's reasoning effort goes in provider_options.
EFFORT_AT = {
    "openai": lambda v: {"openai": {"reasoning_effort": v}},
    "azure": lambda v: {"openai": {"reasoning_effort": v}},
    "openai-compat": lambda v: {"openaicompat": {"reasoning_effort": v}},
    "anthropic": lambda v: {"anthropic": {"effort": v}},
    "bedrock": lambda v: {"anthropic": {"effort": v}},
    "openrouter": lambda v: {"openrouter": {"reasoning": {"effort": v}}},
    "vercel": lambda v: {"vercel": {"reasoning": {"effort": v}}},
}
ALL_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max", "extreme")


def normalized(raw: dict[str, Any]) -> dict[str, Any]:
    return normalize_call_config(ChatModelCallConfig.model_validate(raw))


def rejected(raw: dict[str, Any]) -> str:
    with pytest.raises(BadRequest) as info:
        normalized(raw)
    return info.value.message


def test_every_provider_routes_to_a_litellm_provider() -> None:
    assert set(LITELLM_PREFIX) == set(PROVIDERS)
    known = {p.value for p in litellm.provider_list}
    assert {prefix for prefix in LITELLM_PREFIX.values()} <= known


def test_allowed_efforts_are_in_litellms_vocabulary() -> None:
    assert set(OPENAI_EFFORTS) <= set(typing.get_args(REASONING_EFFORT))
    # litellm's Anthropic translation must know every effort we let through for Anthropic.
    assert set(ANTHROPIC_EFFORTS) <= set(REASONING_EFFORT_TO_OUTPUT_CONFIG_EFFORT)
    assert allowed_reasoning_efforts("google") == ()


@pytest.mark.parametrize("provider", sorted(EFFORT_AT))
@pytest.mark.parametrize("effort", ALL_EFFORTS)
def test_reasoning_effort_is_validated_per_provider(provider: str, effort: str) -> None:
    raw = {"provider_options": EFFORT_AT[provider](effort)}
    allowed = allowed_reasoning_efforts(provider)
    if effort in allowed:
        stored = normalized(raw)
        assert reasoning_effort_for(provider, stored) == effort
    else:
        message = rejected(raw)
        assert message.endswith("must be one of: " + ", ".join(allowed)), message


def test_effort_sets_follow_the_reference() -> None:
    assert allowed_reasoning_efforts("openai") == OPENAI_EFFORTS
    assert allowed_reasoning_efforts("anthropic") == ("low", "medium", "high", "max")
    assert allowed_reasoning_efforts("bedrock") == allowed_reasoning_efforts("anthropic")
    assert allowed_reasoning_efforts("azure") == allowed_reasoning_efforts("openai")
    assert "max" not in allowed_reasoning_efforts("openrouter")


def test_only_the_providers_own_block_sets_its_effort() -> None:
    stored = normalized({"provider_options": {"anthropic": {"effort": "max"}}})
    assert reasoning_effort_for("openai", stored) is None
    assert reasoning_effort_for("anthropic", stored) == "max"


def test_effort_reaches_litellm_with_the_sampling_options() -> None:
    options = normalized(
        {"temperature": 0.5, "top_k": 40, "provider_options": EFFORT_AT["openai"]("high")}
    )
    model = ResolvedModel("openai", "o3", "k", None, 1000, options)
    kwargs = completion_kwargs(model, first_chunk_timeout=5)
    assert (kwargs["reasoning_effort"], kwargs["temperature"], kwargs["top_k"]) == ("high", 0.5, 40)
    plain = completion_kwargs(
        ResolvedModel("openai", "o3", "k", None, 1000, {}), first_chunk_timeout=5
    )
    assert "reasoning_effort" not in plain


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"cost": {"input_price_per_million_tokens": -1}},
            "cost.input_price_per_million_tokens must be greater than or equal to zero",
        ),
        (
            {"cost": {"cache_write_price_per_million_tokens": -0.01}},
            "cost.cache_write_price_per_million_tokens must be greater than or equal to zero",
        ),
        ({"max_output_tokens": 0}, "max_output_tokens must be greater than zero"),
        ({"temperature": 2.5}, "temperature must be between 0 and 2"),
        ({"top_p": -0.1}, "top_p must be between 0 and 1"),
        (
            {"provider_options": {"gpt": {}}},
            "provider_options.gpt is not a known provider options key",
        ),
        (
            {"provider_options": {"openai": {"text_verbosity": "loud"}}},
            "provider_options.openai.text_verbosity must be one of: low, medium, high",
        ),
        (
            {
                "provider_options": {
                    "anthropic": {"allowed_domains": ["a"], "blocked_domains": ["b"]}
                }
            },
            "provider_options.anthropic.allowed_domains cannot be combined with blocked_domains",
        ),
        (
            {"provider_options": {"google": {"thinking_config": {"thinking_budget": "lots"}}}},
            "provider_options.google.thinking_config.thinking_budget must be an integer",
        ),
    ],
)
def test_invalid_call_configs(raw: dict[str, Any], message: str) -> None:
    assert rejected(raw) == message


def test_call_config_is_stored_compactly() -> None:
    assert normalize_call_config(None) == {}
    stored = normalized(
        {
            "max_output_tokens": 8000,
            "cost": {"input_price_per_million_tokens": "3", "output_price_per_million_tokens": 15},
            "provider_options": {"anthropic": {"effort": "high", "send_reasoning": True}},
        }
    )
    assert stored == {
        "max_output_tokens": 8000,
        "cost": {"input_price_per_million_tokens": 3.0, "output_price_per_million_tokens": 15.0},
        "provider_options": {"anthropic": {"effort": "high", "send_reasoning": True}},
    }


def test_legacy_top_level_prices_move_into_cost() -> None:
    stored = normalized(
        {"input_price_per_million_tokens": 2, "output_price_per_million_tokens": "4"}
    )
    assert stored == {
        "cost": {"input_price_per_million_tokens": 2.0, "output_price_per_million_tokens": 4.0}
    }
    assert rejected({"input_price_per_million_tokens": "cheap"}) == (
        "input_price_per_million_tokens must be a number"
    )


# ---------------------------------------------------------------- default prices


def per_million(key: str, field: str) -> float:
    return round(litellm.model_cost[key][field] * 1_000_000, 9)


def test_default_prices_come_from_litellms_bundled_map() -> None:
    cost = pricing.litellm_default_cost("openai", "gpt-4o")
    assert cost == {
        "input_price_per_million_tokens": per_million("gpt-4o", "input_cost_per_token"),
        "output_price_per_million_tokens": per_million("gpt-4o", "output_cost_per_token"),
        "cache_read_price_per_million_tokens": per_million("gpt-4o", "cache_read_input_token_cost"),
    }
    # litellm 1.106.2's list prices for gpt-4o: $2.50 in, $10 out, $1.25 cached.
    assert cost["input_price_per_million_tokens"] == 2.5
    assert cost["output_price_per_million_tokens"] == 10.0
    anthropic = pricing.litellm_default_cost("anthropic", "claude-sonnet-4-5")
    assert anthropic is not None and anthropic["cache_write_price_per_million_tokens"] == 3.75
    assert pricing.litellm_default_cost("google", "gemini-2.5-pro") is not None


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "agentfarm-unknown-model"),
        ("anthropic", "gpt-4o"),  # a price belongs to its provider
        ("openai-compat", "gpt-4o"),  # whatever runs behind a compatible endpoint
    ],
)
def test_models_litellm_does_not_price_get_no_default(provider: str, model: str) -> None:
    assert pricing.litellm_default_cost(provider, model) is None


def test_blank_cost_gets_the_default_and_says_so() -> None:
    options, is_default = pricing.with_default_cost("openai", "gpt-4o", {"max_output_tokens": 10})
    assert is_default and options["max_output_tokens"] == 10
    assert options["cost"]["input_price_per_million_tokens"] == 2.5
    mine = {"cost": {"input_price_per_million_tokens": 1.0}}
    assert pricing.with_default_cost("openai", "gpt-4o", mine) == (mine, False)
    blank = {"cost": {"input_price_per_million_tokens": None}, "top_p": 1}
    assert pricing.with_default_cost("openai", "agentfarm-unknown", blank) == ({"top_p": 1}, False)
