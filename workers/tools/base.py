"""Shared types of the workspace tools: the context a tool runs in, its error and result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ToolResult = dict[str, Any]
"""A tool's JSON-serialisable result, sent to the model as the tool-result content."""

OUTPUT_LIMIT = 32 * 1024
"""Most bytes of process output returned to the model in one result."""


@dataclass(frozen=True)
class WorkspaceContext:
    """Where and for whom a workspace tool runs.

    ``root`` is the absolute workspace directory (it exists); every path a tool touches must
    resolve inside it, symlinks included. ``spool`` is the absolute per-host directory that
    holds tracked-process state, shared by every worker process on the host. With ``sandbox``
    processes run under bubblewrap, and ``network`` ("open" or "none") says whether they keep
    the host's network.
    """

    root: Path
    spool: Path
    chat_id: str
    sandbox: bool = False
    network: str = "open"
    extra_env: Mapping[str, str] = field(default_factory=dict)


class ToolError(Exception):
    """A failure the model should see: the message becomes an ``is_error`` tool result."""


def cut_utf8(data: bytes, limit: int) -> bytes:
    """The longest prefix of ``data`` of at most ``limit`` bytes that ends on a UTF-8 boundary."""
    if len(data) <= limit:
        return data
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end]


def cut_utf8_start(data: bytes, limit: int) -> bytes:
    """The longest suffix of ``data`` of at most ``limit`` bytes that starts on a boundary."""
    start = max(0, len(data) - limit)
    while start < len(data) and (data[start] & 0xC0) == 0x80:
        start += 1
    return data[start:]
