"""Workspace tools: plain functions that act on a chat's workspace directory on this host.

Nothing here touches the broker or the database. Each tool takes a :class:`WorkspaceContext`
and the model's JSON arguments and returns a JSON-serialisable result; :func:`run_tool` wraps
validation and error handling so a caller gets ``(result, is_error)`` and never an exception.
"""

from workers.tools.base import ToolError, ToolResult, WorkspaceContext
from workers.tools.registry import WORKSPACE_TOOLS, ToolSpec, openai_tools, run_tool

__all__ = [
    "WORKSPACE_TOOLS",
    "ToolError",
    "ToolResult",
    "ToolSpec",
    "WorkspaceContext",
    "openai_tools",
    "run_tool",
]
