"""The file tools ``read_file`` and ``write_file``, and the atomic write they share."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from workers.tools.base import ToolError, ToolResult, WorkspaceContext, cut_utf8
from workers.tools.paths import resolve_path

DEFAULT_READ_LIMIT = 2000
"""Lines returned by ``read_file`` when the model gives no ``limit``."""
READ_BYTES_LIMIT = 256 * 1024
"""Most bytes of file content ``read_file`` returns in one call."""
BINARY_SNIFF = 8192


def _int_arg(args: dict[str, Any], name: str, default: int, minimum: int) -> int:
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ToolError(f"{name} must be an integer")
    if int(value) < minimum:
        raise ToolError(f"{name} must be at least {minimum}")
    return int(value)


def _lines(handle: BinaryIO) -> Iterator[bytes]:
    """The file's lines, each cut to ``READ_BYTES_LIMIT + 1`` bytes so none is held whole."""
    while True:
        line = handle.readline(READ_BYTES_LIMIT + 1)
        if not line:
            return
        if not line.endswith(b"\n"):
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = handle.readline(READ_BYTES_LIMIT)
        yield line


def existing_file(ctx: WorkspaceContext, raw: object) -> Path:
    """Resolve ``raw`` inside the workspace and require a regular file there."""
    path = resolve_path(ctx, raw)
    if path.is_dir():
        raise ToolError(f'"{raw}" is a directory, not a file')
    if not path.exists():
        raise ToolError(f'file "{raw}" does not exist')
    if not path.is_file():
        raise ToolError(f'"{raw}" is not a regular file')
    return path


def read_file(ctx: WorkspaceContext, args: dict[str, Any]) -> ToolResult:
    """Return lines ``offset..offset+limit-1`` of a text file, numbered like ``cat -n``.

    Result: ``{content, path, total_lines, start_line, end_line, has_more, truncated?, note?}``.
    """
    raw = args.get("path")
    path = existing_file(ctx, raw)
    offset = max(1, _int_arg(args, "offset", 1, 0))
    limit = _int_arg(args, "limit", DEFAULT_READ_LIMIT, 1)
    parts: list[str] = []
    used = 0
    truncated = False
    cut_line = 0
    total = 0
    end_line = offset - 1
    try:
        with path.open("rb") as handle:
            if b"\0" in handle.read(BINARY_SNIFF):
                raise ToolError(f'"{raw}" is a binary file; read_file only reads text files')
            handle.seek(0)
            for total, line in enumerate(_lines(handle), 1):
                if total < offset or total >= offset + limit or truncated:
                    continue
                if b"\0" in line:
                    raise ToolError(f'"{raw}" is a binary file; read_file only reads text files')
                body = line.rstrip(b"\n").rstrip(b"\r")
                room = READ_BYTES_LIMIT - used - 8
                if len(body) > room:
                    truncated = True
                    if parts:
                        continue
                    body = cut_utf8(body, max(room, 0))
                    cut_line = total
                text = f"{total:>6}\t{body.decode('utf-8', errors='replace')}"
                parts.append(text)
                used += len(body) + 8
                end_line = total
    except OSError as exc:
        raise ToolError(f'cannot read "{raw}": {exc.strerror}') from None
    result: ToolResult = {
        "content": "\n".join(parts),
        "path": str(path),
        "total_lines": total,
        "start_line": offset,
        "end_line": end_line,
        "has_more": end_line < total,
    }
    if truncated:
        result["truncated"] = True
        cap = f"{READ_BYTES_LIMIT // 1024} KB"
        notes = [f"line {cut_line} is longer than {cap} and was cut"] if cut_line else []
        if end_line < total:
            notes.append(f"output capped at {cap}; continue with offset={end_line + 1}")
        result["note"] = "; ".join(notes)
    elif offset > total and total > 0:
        result["note"] = f"offset {offset} is past the end of the file ({total} lines)"
    elif end_line < total:
        result["note"] = (
            f"showing lines {offset}-{end_line} of {total}; use offset={end_line + 1} for more"
        )
    return result


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same directory, then rename).

    An existing file keeps its permission bits; a new one gets the default ``0666 & ~umask``.
    """
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    tmp = stage(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stage(path: Path, data: bytes, mode: int | None) -> Path:
    """Write ``data`` to a new temporary file next to ``path`` and return its path."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_file(ctx: WorkspaceContext, args: dict[str, Any]) -> ToolResult:
    """Write ``content`` to ``path`` (creating parent directories inside the workspace)."""
    raw = args.get("path")
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolError("content must be a string")
    path = resolve_path(ctx, raw)
    if path.is_dir():
        raise ToolError(f'"{raw}" is a directory')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, content.encode("utf-8"))
    except OSError as exc:
        raise ToolError(f'cannot write "{raw}": {exc.strerror or exc}') from None
    return {"ok": True}
