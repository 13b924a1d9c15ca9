"""Tools of a step: the fan-out and fan-in of its calls (``calls``), which implementation
runs a call (``dispatch``), the tool set offered to the model (``toolset``), platform and
plan-mode tools, workspace lifecycle on its host (``workspaces``), and the workspace tools.

The workspace tools themselves (``registry``, ``files``, ``edits``, ``processes`` ...) are plain
functions on a directory that touch neither the broker nor the database: each takes a
:class:`WorkspaceContext` and the model's JSON arguments and returns a JSON-serialisable
result; :func:`run_tool` wraps validation and errors into ``(result, is_error)``.

May import: ``workers.subagents.specs``, ``workers.integrations``, ``workers.runtime``,
``agentfarm.tasks``/``chat_stream``/``integrations``, ``models``.
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
