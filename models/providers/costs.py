"""Cost arithmetic: model-config prices (USD per 1M tokens) to integer micro-dollars."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def _price(cost: dict[str, Any], key: str) -> Decimal | None:
    value = cost.get(key)
    if value is None or value == "":
        return None
    return Decimal(str(value))


def cost_micros(options: dict[str, Any] | None, usage: dict[str, int]) -> int | None:
    """Total cost of one step in micro-dollars, or None when the model is unpriced.

    USD per 1M tokens × tokens = micro-dollars exactly, so no scaling is needed. Cached input
    tokens are billed at the cache-read price when one is set (else as ordinary input).
    """
    cost = (options or {}).get("cost") or {}
    input_price = _price(cost, "input_price_per_million_tokens")
    output_price = _price(cost, "output_price_per_million_tokens")
    if input_price is None and output_price is None:
        return None
    cache_read_price = _price(cost, "cache_read_price_per_million_tokens")
    cache_write_price = _price(cost, "cache_write_price_per_million_tokens")
    input_tokens = usage.get("input_tokens", 0)
    cache_read = usage.get("cache_read_tokens", 0)
    cache_write = usage.get("cache_creation_tokens", 0)
    total = Decimal(0)
    if cache_read_price is not None:
        total += cache_read * cache_read_price
        input_tokens = max(0, input_tokens - cache_read)
    total += input_tokens * (input_price or Decimal(0))
    total += usage.get("output_tokens", 0) * (output_price or Decimal(0))
    if cache_write_price is not None:
        total += cache_write * cache_write_price
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))
