"""Turning a spooled output file into what the model sees: at most 32 KB, cut on UTF-8 bounds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workers.tools.base import OUTPUT_LIMIT, cut_utf8, cut_utf8_start


@dataclass(frozen=True)
class Output:
    """Process output prepared for the model."""

    text: str
    truncated: bool
    total_bytes: int


def _marker(omitted: int) -> bytes:
    return f"\n\n... [{omitted} bytes of output omitted] ...\n\n".encode()


def read_output(path: Path, limit: int = OUTPUT_LIMIT) -> Output:
    """Read a spooled output file, keeping its head and its tail when it exceeds ``limit`` bytes.

    The result never exceeds ``limit`` bytes of valid UTF-8 (a marker in the middle says how
    much was left out); invalid bytes from the process are replaced with U+FFFD.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return Output("", False, 0)
    with handle:
        data = handle.read(limit + 1)
        if len(data) <= limit:
            return Output(data.decode("utf-8", errors="replace"), False, len(data))
        size = max(handle.seek(0, 2), len(data))
        room = limit - len(_marker(size))
        head = cut_utf8(data, room // 2)
        tail_room = room - room // 2
        handle.seek(size - tail_room)
        tail = cut_utf8_start(handle.read(tail_room), tail_room)
    middle = _marker(size - len(head) - len(tail))
    text = (head + middle + tail).decode("utf-8", errors="replace")
    return Output(text, True, size)
