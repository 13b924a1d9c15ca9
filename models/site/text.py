"""Deployment texts set by admins (system prompt, plan-mode instructions): sanitised and capped
like Coder does before storing them."""

from __future__ import annotations

import re
import unicodedata

from models.errors import BadRequest

MAX_PROMPT_BYTES = 128 * 1024
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
# Format characters (zero-width spaces and joiners, bidi controls, BOM) render as nothing.
_KEEP = {"\n", "\t"}


def sanitize(text: str) -> str:
    """Drop invisible Unicode and collapse runs of blank lines into one blank line."""
    visible = "".join(
        ch for ch in text if ch in _KEEP or unicodedata.category(ch) not in ("Cf", "Cc", "Co")
    )
    return _BLANK_RUNS.sub("\n\n", visible.replace("\r\n", "\n")).strip()


def checked(text: str, too_long: str) -> str:
    """``sanitize``d text, or 400 ``too_long`` when it is over 128 KiB."""
    clean = sanitize(text)
    if len(clean.encode("utf-8")) > MAX_PROMPT_BYTES:
        raise BadRequest(too_long)
    return clean
