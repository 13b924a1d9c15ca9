"""Query parameters of the report routes (cost, PR insights), parsed as Coder parses them.

Unknown parameters are refused rather than ignored, and every refusal is a 400 with the
offending field in ``validations``. A window is [start_date, end_date), RFC 3339 with an
offset, the last 30 days by default.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import Request

from models.base import utcnow
from models.errors import BadRequest

DEFAULT_WINDOW = timedelta(days=30)


def _invalid(field: str, detail: str) -> BadRequest:
    return BadRequest(
        "Query parameters have invalid values.", validations=[{"field": field, "detail": detail}]
    )


def strict_params(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, refusing any Coder does not take (reference: 400)."""
    params = dict(request.query_params)
    for name in params:
        if name not in allowed:
            raise _invalid(name, f'Query param "{name}" is not a valid query param.')
    return params


def _date(params: dict[str, str], name: str, default: datetime) -> datetime:
    raw = params.get(name)
    if not raw:
        return default
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise _invalid(name, f"Query param {name!r} must be a valid RFC 3339 date.")
    return value


def date_window(params: dict[str, str]) -> tuple[datetime, datetime]:
    """(start_date, end_date) from ``params``: ending now and 30 days long by default."""
    end = _date(params, "end_date", utcnow())
    start = _date(params, "start_date", end - DEFAULT_WINDOW)
    if start > end:
        raise _invalid("start_date", "start_date must not be after end_date.")
    return start, end


def int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    """The integer parameter ``name`` (``default`` when absent or empty), within [low, high]."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _invalid(name, f"Query param {name!r} must be an integer from {low} to {high}.")
    return value
