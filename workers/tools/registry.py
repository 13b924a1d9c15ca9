"""The workspace tool registry: specs for the LLM and a never-raising dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from workers.tools import schemas
from workers.tools.base import ToolError, ToolResult, WorkspaceContext
from workers.tools.edits import edit_files
from workers.tools.files import read_file, write_file
from workers.tools.processes import execute, process_list, process_output, process_signal

log = logging.getLogger("agentfarm.tools.workspace")


@dataclass(frozen=True)
class ToolSpec:
    """A workspace tool: its name, description, JSON-schema parameters and implementation."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[WorkspaceContext, dict[str, Any]], ToolResult]


_SPECS = [
    ToolSpec(
        "execute",
        "Run a shell command (sh -c) in the workspace. Foreground commands wait up to timeout "
        "(default 10s) and keep running in the background if they take longer; use "
        "run_in_background or a trailing & for servers and long jobs. Output (stdout and stderr "
        "combined) is capped at 32 KB. Returns success, output, exit_code, wall_duration_ms and, "
        "for background or timed-out commands, background_process_id.",
        schemas.EXECUTE,
        execute,
    ),
    ToolSpec(
        "process_output",
        "Read the output of a tracked process, waiting up to wait_timeout (default 10s) for it "
        "to finish. Returns the same shape as execute; a running process gives success true "
        'with the note "process is still running".',
        schemas.PROCESS_OUTPUT,
        process_output,
    ),
    ToolSpec(
        "process_list",
        "List this chat's tracked processes with their id, command, status (running or exited) "
        "and exit code.",
        schemas.PROCESS_LIST,
        process_list,
    ),
    ToolSpec(
        "process_signal",
        'Send "terminate" (SIGTERM) or "kill" (SIGKILL) to a tracked process and its children.',
        schemas.PROCESS_SIGNAL,
        process_signal,
    ),
    ToolSpec(
        "read_file",
        "Read a text file in the workspace. Returns its lines numbered like cat -n, starting "
        "at offset (1-based line, default 1), at most limit lines (default 2000).",
        schemas.READ_FILE,
        read_file,
    ),
    ToolSpec(
        "write_file",
        "Create or overwrite a file in the workspace with the given content, creating parent "
        "directories as needed.",
        schemas.WRITE_FILE,
        write_file,
    ),
    ToolSpec(
        "edit_files",
        "Edit files by replacing old_text with new_text. Each old_text must match exactly once "
        "(unless replace_all); indentation differences are tolerated. Edits to one file apply "
        "in order, and if any edit fails no file is changed. Returns a unified diff per file.",
        schemas.EDIT_FILES,
        edit_files,
    ),
]

WORKSPACE_TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in _SPECS}


def run_tool(name: str, ctx: WorkspaceContext, args: dict[str, Any]) -> tuple[ToolResult, bool]:
    """Run a workspace tool; return ``(result, is_error)`` and never raise.

    Argument-validation failures and :class:`ToolError` give ``({"error": message}, True)``;
    any other exception is logged and gives a generic internal-error result.
    """
    spec = WORKSPACE_TOOLS.get(name)
    if spec is None:
        return {"error": f'unknown workspace tool "{name}"'}, True
    try:
        if args is None:
            args = {}
        schemas.validate(spec.parameters, args)
        return spec.run(ctx, args), False
    except ToolError as exc:
        return {"error": str(exc)}, True
    except Exception as exc:
        log.exception("workspace tool %s failed (chat %s)", name, ctx.chat_id)
        return {"error": f"internal error running {name}: {type(exc).__name__}"}, True


def openai_tools(names: Iterable[str]) -> list[dict[str, Any]]:
    """OpenAI function-calling declarations of the named workspace tools (unknown names skipped)."""
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
            },
        }
        for spec in (WORKSPACE_TOOLS.get(name) for name in names)
        if spec is not None
    ]
