"""Which tools a chat's model is offered, and where each runs.

- Workspace tools (execute, process_*, read_file, write_file, edit_files) and the skill tools
  run on the host that owns the chat's workspace.
- Platform tools (list_templates, read_template, create_workspace, start_workspace) run on
  the default queue, for root chats only.
- Skill tools are offered only when the workspace has skills.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workers.platform_tools import PLATFORM_TOOL_SPECS

PLATFORM_TOOLS = frozenset(PLATFORM_TOOL_SPECS)
SKILL_TOOLS = frozenset({"read_skill", "read_skill_file"})

SKILL_TOOL_SPECS: dict[str, dict[str, Any]] = {
    "read_skill": {
        "description": "Read a skill's SKILL.md and the list of its supporting files.",
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    },
    "read_skill_file": {
        "description": "Read one supporting file of a skill (a path relative to the skill).",
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "path": {"type": "string"}},
            "required": ["name", "path"],
        },
    },
}


def workspace_tool_names() -> frozenset[str]:
    from workers.tools.registry import WORKSPACE_TOOLS

    return frozenset(WORKSPACE_TOOLS) | SKILL_TOOLS


def _function(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": spec["description"],
            "parameters": spec["parameters"],
        },
    }


def client_tool_names(dynamic_tools: Any) -> frozenset[str]:
    """Names of the chat's client-declared (``unsafe_dynamic_tools``) tools."""
    return frozenset(t["name"] for t in dynamic_tools or [] if isinstance(t, dict) and "name" in t)


def offered_tools(
    *, root_chat: bool, has_skills: bool, dynamic_tools: Any = None
) -> list[dict[str, Any]]:
    """The tool definitions sent to the model for one step.

    Client-declared tools whose names collide with a built-in tool are not offered (Coder
    only notices the collision when the loop runs; refusing it here keeps built-ins safe).
    """
    from workers.tools.registry import WORKSPACE_TOOLS, openai_tools

    tools = openai_tools(WORKSPACE_TOOLS)
    if has_skills:
        tools += [_function(n, s) for n, s in SKILL_TOOL_SPECS.items()]
    if root_chat:
        tools += [_function(n, s) for n, s in PLATFORM_TOOL_SPECS.items()]
    taken = set(names(tools)) | SKILL_TOOLS | PLATFORM_TOOLS
    for tool in dynamic_tools or []:
        if isinstance(tool, dict) and tool.get("name") and tool["name"] not in taken:
            spec = {
                "description": tool.get("description") or "",
                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
            }
            tools.append(_function(tool["name"], spec))
    return tools


def run_workspace_tool(
    name: str,
    args: dict[str, Any],
    *,
    root: Path,
    spool: Path,
    chat_id: str,
    sandbox: bool,
    network: str,
) -> tuple[Any, bool]:
    """Run a workspace or skill tool against a local workspace directory."""
    from workers.context_files import SkillError, read_skill, read_skill_file
    from workers.tools.base import WorkspaceContext
    from workers.tools.registry import run_tool

    if name in SKILL_TOOLS:
        try:
            if name == "read_skill":
                return read_skill(root, str(args.get("name", ""))), False
            return read_skill_file(
                root, str(args.get("name", "")), str(args.get("path", ""))
            ), False
        except SkillError as exc:
            return {"error": str(exc)}, True
    ctx = WorkspaceContext(
        root=root, spool=spool, chat_id=chat_id, sandbox=sandbox, network=network
    )
    return run_tool(name, ctx, args)


def names(tools: Iterable[dict[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]
