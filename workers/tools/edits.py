"""The ``edit_files`` tool: search-and-replace edits applied atomically across files.

Matching: ``old_text`` is first looked for exactly. If it is not found, it is matched line by
line ignoring whitespace at the start and end of each line (and blank lines around it); the
matched lines are then replaced by ``new_text`` re-indented so that its first non-blank line
gets the indentation of the matched file line (``old_text``'s own base indentation is swapped
for the file's on every line), with the file's line endings. A match must be unique unless
``replace_all`` is set.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from workers.tools.base import OUTPUT_LIMIT, ToolError, ToolResult, WorkspaceContext, cut_utf8
from workers.tools.files import existing_file, stage
from workers.tools.paths import display_path


class EditFailure(Exception):
    """One edit does not apply; the message says why."""


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _trim_blank(lines: list[str]) -> tuple[list[str], int, int]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end], start, len(lines) - end


def _fuzzy_spans(content: str, old_lines: list[str]) -> list[tuple[int, int, int]]:
    """Non-overlapping ``(start, end, first line index)`` of whitespace-tolerant matches."""
    lines = content.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    wanted = [line.strip() for line in old_lines]
    size = len(wanted)
    spans = []
    i = 0
    while i + size <= len(lines):
        if all(lines[i + k].strip() == wanted[k] for k in range(size)):
            last = lines[i + size - 1]
            end = offsets[i + size] - (len(last) - len(last.rstrip("\r\n")))
            spans.append((offsets[i], end, i))
            i += size
        else:
            i += 1
    return spans


def _reindent(new_lines: list[str], old_base: str, file_base: str, newline: str) -> str:
    out = []
    for line in new_lines:
        if not line.strip():
            out.append("")
            continue
        own = _indent(line)
        common = os.path.commonprefix([own, old_base])
        out.append(file_base + line[len(common) :].rstrip("\r"))
    return newline.join(out)


def apply_edit(content: str, old: str, new: str, replace_all: bool) -> str:
    """Apply one edit to ``content``; raise :class:`EditFailure` if it does not apply."""
    count = content.count(old)
    if count == 1 or (count > 1 and replace_all):
        return content.replace(old, new)
    if count > 1:
        raise EditFailure(
            f"old_text was found {count} times; include more surrounding lines to make it "
            "unique, or set replace_all"
        )
    old_lines, _, _ = _trim_blank(old.splitlines())
    if not old_lines:
        raise EditFailure("old_text was not found")
    spans = _fuzzy_spans(content, old_lines)
    if not spans:
        raise EditFailure("old_text was not found (even ignoring indentation and blank lines)")
    if len(spans) > 1 and not replace_all:
        raise EditFailure(
            f"old_text was found {len(spans)} times (ignoring indentation); include more "
            "surrounding lines to make it unique, or set replace_all"
        )
    new_lines, _, _ = _trim_blank(new.splitlines())
    lines = content.splitlines(keepends=True)
    for start, end, first in reversed(spans):
        newline = "\r\n" if lines[first].endswith("\r\n") else "\n"
        text = _reindent(new_lines, _indent(old_lines[0]), _indent(lines[first]), newline)
        if not new_lines:
            end = start + len("".join(lines[first : first + len(old_lines)]))
        content = content[:start] + text + content[end:]
    return content


def _diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{name}",
        tofile=f"b/{name}",
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    data = text.encode("utf-8")
    if len(data) > OUTPUT_LIMIT:
        text = cut_utf8(data, OUTPUT_LIMIT).decode("utf-8") + "\n... (diff truncated)\n"
    return text


def _read_text(path: Path, raw: object) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ToolError(f'cannot read "{raw}": {exc.strerror}') from None
    if b"\0" in data:
        raise ToolError(f'"{raw}" is a binary file; edit_files only edits text files')
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f'"{raw}" is not UTF-8 text; edit_files only edits text files') from None


def _checked_edit(index: int, edit: object) -> tuple[object, str, str, bool]:
    where = f"edit {index}"
    if not isinstance(edit, dict):
        raise ToolError(f"{where}: must be an object with path, old_text and new_text")
    old, new = edit.get("old_text"), edit.get("new_text")
    if not isinstance(old, str) or not old:
        raise ToolError(f"{where}: old_text must be a non-empty string")
    if not isinstance(new, str):
        raise ToolError(f"{where}: new_text must be a string")
    if old == new:
        raise ToolError(f"{where}: new_text must differ from old_text")
    return edit.get("path"), old, new, bool(edit.get("replace_all", False))


def edit_files(ctx: WorkspaceContext, args: dict[str, Any]) -> ToolResult:
    """Apply every edit in memory, then write all changed files; on any failure change none.

    Result: ``{ok: true, files: [{path, diff}]}`` with one unified diff per edited file.
    """
    edits = args.get("edits")
    if not isinstance(edits, list) or not edits:
        raise ToolError("edits must be a non-empty list")
    originals: dict[Path, str] = {}
    contents: dict[Path, str] = {}
    for index, edit in enumerate(edits, 1):
        raw, old, new, replace_all = _checked_edit(index, edit)
        try:
            path = existing_file(ctx, raw)
        except ToolError as exc:
            raise ToolError(f"edit {index}: {exc}; no files were changed") from None
        if path not in contents:
            originals[path] = contents[path] = _read_text(path, raw)
        try:
            contents[path] = apply_edit(contents[path], old, new, replace_all)
        except EditFailure as exc:
            raise ToolError(f'edit {index} ("{raw}"): {exc}; no files were changed') from None
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in contents.items():
            mode = path.stat().st_mode & 0o7777
            staged.append((stage(path, text.encode("utf-8"), mode), path))
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        msg = f"cannot write the edits: {exc.strerror or exc}; no files were changed"
        raise ToolError(msg) from None
    for tmp, path in staged:
        os.replace(tmp, path)
    files = [
        {"path": str(path), "diff": _diff(originals[path], contents[path], display_path(ctx, path))}
        for path in contents
    ]
    return {"ok": True, "files": files}
