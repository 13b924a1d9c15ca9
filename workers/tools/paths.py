"""Resolving the model's paths inside the workspace, symlinks included."""

from __future__ import annotations

import os
from pathlib import Path

from workers.tools.base import ToolError, WorkspaceContext


def workspace_root(ctx: WorkspaceContext) -> Path:
    """The workspace directory with every symlink resolved."""
    return Path(os.path.realpath(ctx.root))


def resolve_path(ctx: WorkspaceContext, raw: object, *, name: str = "path") -> Path:
    """Resolve a relative or absolute path to a real path inside the workspace.

    Relative paths are taken from the workspace root. Existing prefixes are resolved like
    ``realpath`` (symlinks followed, ``..`` applied afterwards), so a symlink that points out of
    the workspace cannot be used to escape it. Raises :class:`ToolError` for anything outside.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ToolError(f"{name} is required")
    if "\x00" in raw:
        raise ToolError(f"{name} must not contain NUL bytes")
    root = workspace_root(ctx)
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = root / candidate
    real = Path(os.path.realpath(candidate))
    if real != root and root not in real.parents:
        raise ToolError(f'{name} "{raw}" is outside the workspace')
    return real


def display_path(ctx: WorkspaceContext, path: Path) -> str:
    """The path relative to the workspace root (``.`` for the root itself)."""
    return os.path.relpath(path, workspace_root(ctx))
