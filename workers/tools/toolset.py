"""Which tools a chat's model is offered, and where each runs.

- Workspace tools (execute, process_*, read_file, write_file, edit_files) and the skill tools
  run on the host that owns the chat's workspace.
- Platform tools (list_templates, read_template, create_workspace, start_workspace) run on
  the default queue, for root chats only.
- Skill tools are offered only when the workspace has skills.
- Orchestration tools (subagents) and plan tools are for root chats only; plan and explore
  mode narrow every set (``workers.tools.plan_mode``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from models.chat.tables import Chat
from models.enums import ChatMode, PlanMode
from models.providers.tables import ChatProvider
from models.workspaces import rules as workspace_rules
from workers.subagents.specs import ORCHESTRATION_TOOLS, SUBAGENT_TOOL_SPECS
from workers.tools.base import WorkspaceContext
from workers.tools.context_files import SkillError, read_skill, read_skill_file
from workers.tools.plan_mode import PLAN_TOOL_SPECS, TURN_ENDING_TOOLS, tool_refusal
from workers.tools.platform import PLATFORM_TOOL_SPECS
from workers.tools.registry import WORKSPACE_TOOLS, openai_tools, run_tool

DESKTOP_ENABLED_KEY = workspace_rules.DESKTOP_ENABLED_KEY

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
    """Tools that run on the host that owns the chat's workspace (propose_plan reads the
    plan file there)."""

    return frozenset(WORKSPACE_TOOLS) | SKILL_TOOLS | {"propose_plan"}


def builtin_tool_names() -> frozenset[str]:
    return workspace_tool_names() | PLATFORM_TOOLS | ORCHESTRATION_TOOLS | TURN_ENDING_TOOLS


def _function(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": spec["description"],
            "parameters": spec["parameters"],
        },
    }


def client_tools(chat: Chat) -> frozenset[str]:
    """Names of the chat's usable client-declared (``unsafe_dynamic_tools``) tools: none in
    plan mode or for explore subagents; never one that shadows a built-in tool."""
    if chat.plan_mode == PlanMode.PLAN or chat.mode == ChatMode.EXPLORE:
        return frozenset()
    declared = frozenset(
        t["name"] for t in chat.dynamic_tools or [] if isinstance(t, dict) and t.get("name")
    )
    return declared - builtin_tool_names()


def computer_use_enabled(session: Session) -> bool:
    """spawn_computer_use_agent is offered only when an Anthropic provider has a key and the
    deployment turned the virtual desktop on (§4.2)."""

    desktop = workspace_rules.get_setting(session, DESKTOP_ENABLED_KEY) or {}
    if not desktop.get("enable_desktop"):
        return False
    provider = session.exec(
        select(ChatProvider).where(ChatProvider.provider == "anthropic", ChatProvider.enabled)
    ).first()
    return provider is not None and bool(provider.api_key)


def offered_tools(
    chat: Chat, *, has_skills: bool, computer_use: bool = False
) -> list[dict[str, Any]]:
    """The tool definitions sent to the model for one step of ``chat``.

    Root chats add the platform, orchestration and (in plan mode) plan tools; children get
    none of those (depth is one level). Plan and explore rules then remove what the chat may
    not use, so a blocked tool is never offered. Client-declared tools whose names collide
    with a built-in tool are not offered (Coder only notices the collision when the loop
    runs; refusing it here keeps built-ins safe).
    """

    tools = openai_tools(WORKSPACE_TOOLS)
    if has_skills:
        tools += [_function(n, s) for n, s in SKILL_TOOL_SPECS.items()]
    if chat.parent_chat_id is None:
        tools += [_function(n, s) for n, s in PLATFORM_TOOL_SPECS.items()]
        tools += [
            _function(n, s)
            for n, s in SUBAGENT_TOOL_SPECS.items()
            if computer_use or n != "spawn_computer_use_agent"
        ]
        tools += [_function(n, s) for n, s in PLAN_TOOL_SPECS.items()]
    tools = [t for t in tools if tool_refusal(t["function"]["name"], chat) is None]
    usable = client_tools(chat)
    for tool in chat.dynamic_tools or []:
        if isinstance(tool, dict) and tool.get("name") in usable:
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
