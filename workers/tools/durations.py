"""Go duration strings (``500ms``, ``10s``, ``1m30s``, ``2h``) as the model writes them."""

from __future__ import annotations

import re

from workers.tools.base import ToolError

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str, *, name: str = "duration") -> float:
    """Parse a Go duration string into seconds; raise :class:`ToolError` if it does not parse.

    Like Go's ``time.ParseDuration``: an optional sign, then one or more ``<number><unit>``
    parts; the bare string ``"0"`` is zero.
    """
    if not isinstance(text, str):
        raise ToolError(f'{name} must be a duration string such as "10s"')
    raw = text.strip()
    body = raw.lstrip("+-")
    sign = -1.0 if raw.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise ToolError(f'invalid {name} "{text}": expected a duration such as "10s"')
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            hint = "missing unit" if body[pos:].replace(".", "").isdigit() else "unknown format"
            raise ToolError(f'invalid {name} "{text}" ({hint}); use e.g. "500ms", "30s", "1m30s"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Format seconds roughly the way Go's ``Duration.String`` does (``1s``, ``1m30s``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms" if ms >= 1 else f"{seconds * 1e6:g}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{round(secs, 3):g}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text
