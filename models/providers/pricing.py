"""Default model prices from litellm's bundled price map, and the unpriced-model count.

Coder's experimental era has no price table (reference §5.1): admins type prices per model.
agentfarm fills prices the admin left blank from the price map litellm ships in its wheel
(``LITELLM_LOCAL_MODEL_COST_MAP=True`` keeps litellm from fetching it from the network). A
model litellm does not price stays unpriced: its messages cost NULL, not zero.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.enums import LITELLM_PREFIX
from models.providers.tables import ChatModelConfig

COST_KEYS = (
    "input_price_per_million_tokens",
    "output_price_per_million_tokens",
    "cache_read_price_per_million_tokens",
    "cache_write_price_per_million_tokens",
)
# litellm's per-token fields for each of our per-million-token prices.
_LITELLM_FIELDS = {
    "input_price_per_million_tokens": "input_cost_per_token",
    "output_price_per_million_tokens": "output_cost_per_token",
    "cache_read_price_per_million_tokens": "cache_read_input_token_cost",
    "cache_write_price_per_million_tokens": "cache_creation_input_token_cost",
}
# An openai-compat endpoint serves whatever its operator runs behind it (vLLM, a proxy, a
# local model): OpenAI's list prices for a model of the same name would be a guess, so such
# models get no default price.
NO_DEFAULT_PRICES = frozenset({"openai-compat"})


def cost_is_blank(cost: dict[str, Any] | None) -> bool:
    """True when no price is set at all (the admin left ``cost`` blank)."""
    return not cost or all(cost.get(k) in (None, "") for k in COST_KEYS)


def is_priced(options: dict[str, Any] | None) -> bool:
    """Whether messages on a model get a cost: an input or an output price is set."""
    cost = (options or {}).get("cost") or {}
    return any(cost.get(k) not in (None, "") for k in COST_KEYS[:2])


def litellm_default_cost(provider: str, model: str) -> dict[str, float] | None:
    """USD per 1M tokens for ``model`` on ``provider`` from litellm's price map, or None."""
    if provider in NO_DEFAULT_PRICES or provider not in LITELLM_PREFIX:
        return None
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before the first import
    import litellm

    try:
        info = litellm.get_model_info(model=model, custom_llm_provider=LITELLM_PREFIX[provider])
    except Exception:  # noqa: BLE001 - litellm raises several types for "not in the map"
        return None
    cost: dict[str, float] = {}
    for ours, theirs in _LITELLM_FIELDS.items():
        per_token = info.get(theirs)
        if isinstance(per_token, int | float) and per_token >= 0:
            # Decimal keeps 2.5e-06 × 1e6 an exact 2.5.
            cost[ours] = float((Decimal(str(per_token)) * 1_000_000).normalize())
    if (
        "input_price_per_million_tokens" not in cost
        and "output_price_per_million_tokens" not in cost
    ):
        return None
    return cost


def with_default_cost(
    provider: str, model: str, options: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """``options`` with litellm's prices filled in when ``cost`` is blank.

    Returns the options to store and whether the prices are defaults. Prices are stored with
    the model config (not looked up per step) so a litellm upgrade never silently reprices a
    configured model; re-saving the model without prices picks up the new defaults.
    """
    if not cost_is_blank(options.get("cost")):
        return options, False
    default = litellm_default_cost(provider, model)
    stripped = {k: v for k, v in options.items() if k != "cost"}
    if default is None:
        return stripped, False
    return {**stripped, "cost": default}, True


def pricing_source(config: ChatModelConfig) -> str:
    """agentfarm extension on the wire: ``admin``, ``litellm_default`` or ``unpriced``."""
    if not is_priced(config.options):
        return "unpriced"
    return "litellm_default" if config.cost_is_default else "admin"


def unpriced_model_count(session: Session) -> int:
    """Enabled, live model configs whose messages go unpriced (reference §5.1), for
    ``GET /usage-limits``: ``cost`` missing or both its input and output prices null."""
    price = ChatModelConfig.options["cost"]

    def missing(key: str) -> Any:
        # ->> yields SQL NULL for an absent key, a JSON null and a missing ``cost`` alike.
        return sa.func.coalesce(price[key].astext, "") == ""

    return session.exec(
        select(sa.func.count())
        .select_from(ChatModelConfig)
        .where(
            ChatModelConfig.enabled,
            ChatModelConfig.deleted.is_(False),  # type: ignore[attr-defined]
            missing("input_price_per_million_tokens"),
            missing("output_price_per_million_tokens"),
        )
    ).one()
