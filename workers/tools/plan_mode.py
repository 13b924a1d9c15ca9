"""Plan mode and explore mode (reference §4.3): which tools a chat may use, the chat's own plan
file, ``propose_plan`` and ``ask_user_question``.

One rule table serves both sides: ``tool_refusal`` decides what the model is offered and,
again at run time, refuses a call the model makes anyway (the chat's mode can change between
the two), with an error that names plan mode.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from models.chat.files import ChatFile, link_files
from models.chat.tables import Chat
from models.enums import ChatMode, PlanMode
from models.workspaces import rules as workspace_rules

PLAN_INSTRUCTIONS_KEY = workspace_rules.PLAN_INSTRUCTIONS_KEY
PLAN_FILE_CAP = 32 * 1024
TURN_ENDING_TOOLS = frozenset({"propose_plan", "ask_user_question"})

# Root chats in plan mode (§4.3).
ROOT_PLAN_TOOLS = frozenset(
    {
        "read_file",
        "write_file",
        "edit_files",
        "execute",
        "process_output",
        "list_templates",
        "read_template",
        "create_workspace",
        "start_workspace",
        "propose_plan",
        "spawn_agent",
        "wait_agent",
        "read_skill",
        "read_skill_file",
        "ask_user_question",
    }
)
# Child chats in plan mode, and explore children (plus admin MCP tools, see MCPTool).
READ_ONLY_TOOLS = frozenset(
    {"read_file", "execute", "process_output", "read_skill", "read_skill_file"}
)
PLAN_WRITE_TOOLS = frozenset({"write_file", "edit_files"})

PLAN_TOOL_SPECS: dict[str, dict[str, Any]] = {
    "propose_plan": {
        "description": (
            "Propose your plan to the user: write it to your plan file first, then call this. "
            "Your turn ends here; the user reviews the plan."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "The plan file (absolute .md path)."}
            },
        },
    },
    "ask_user_question": {
        "description": (
            "Ask the user one or more multiple-choice questions before planning further. "
            "Do not add an 'Other' option: the user can always answer freely. Your turn ends "
            "here; the answers come in the next message."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "questions": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "header": {"type": "string"},
                            "question": {"type": "string"},
                            "options": {
                                "type": "array",
                                "minItems": 2,
                                "maxItems": 4,
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "label": {"type": "string"},
                                        "description": {"type": "string"},
                                    },
                                    "required": ["label", "description"],
                                },
                            },
                        },
                        "required": ["header", "question", "options"],
                    },
                }
            },
            "required": ["questions"],
        },
    },
}


class PlanToolError(Exception):
    """Returned to the model as an is_error tool result."""


@dataclass(frozen=True)
class MCPTool:
    """Where an MCP tool comes from: an admin server (with its ``allow_in_plan_mode``) or the
    workspace's ``.mcp.json`` (``admin=False``)."""

    admin: bool
    allow_in_plan_mode: bool = False


def tool_refusal(name: str, chat: Chat, mcp: MCPTool | None = None) -> str | None:
    """Why ``chat`` may not use tool ``name`` right now, or None when it may.

    MCP tools (§4.3, §6.2): workspace ones never in plan or explore mode; admin ones in
    explore mode, and in plan mode only when their server has ``allow_in_plan_mode``.
    """
    if mcp is not None:
        return _mcp_refusal(name, chat, mcp)
    root = chat.parent_chat_id is None
    if name in TURN_ENDING_TOOLS:
        if chat.plan_mode != PlanMode.PLAN or not root:
            return f"{name} is only available to a root chat in plan mode"
        return None
    if chat.mode == ChatMode.EXPLORE and name not in READ_ONLY_TOOLS:
        return f"tool {name!r} is not available to an explore subagent (read-only)"
    if chat.plan_mode == PlanMode.PLAN:
        allowed = ROOT_PLAN_TOOLS if root else READ_ONLY_TOOLS
        if name not in allowed:
            return f"tool {name!r} is not available in plan mode"
    return None


def _mcp_refusal(name: str, chat: Chat, mcp: MCPTool) -> str | None:
    if not mcp.admin and chat.mode == ChatMode.EXPLORE:
        return f"workspace MCP tool {name!r} is not available to an explore subagent"
    if chat.plan_mode == PlanMode.PLAN and not (mcp.admin and mcp.allow_in_plan_mode):
        return f"tool {name!r} is not available in plan mode"
    return None


def plan_path(workspace_dir: str, chat_id: uuid.UUID | str) -> str:
    """The chat's own plan file. [inferred] Coder keeps plans under ``.coder/plans/``; the
    per-chat name makes concurrent plan chats in one workspace independent."""
    return str(Path(workspace_dir) / ".coder" / "plans" / f"PLAN-{chat_id}.md")


def plan_prompt(session: Session, chat: Chat, workspace_dir: str | None) -> str:
    """The system text of a plan turn: the rules, the plan file, the deployment's additions."""
    where = (
        f"Write the plan to {plan_path(workspace_dir, chat.id)} (write_file / edit_files may "
        "change only that file), then call propose_plan."
        if workspace_dir
        else "Create or start a workspace first; your plan file lives in it."
    )
    text = (
        "You are in plan mode. Explore and plan; do not change the workspace. " + where + " "
        "Use ask_user_question when a decision needs the user."
    )
    if chat.parent_chat_id is not None:
        text = "You are in plan mode: read and investigate only, then report your findings."
    extra = (workspace_rules.get_setting(session, PLAN_INSTRUCTIONS_KEY) or {}).get(
        "plan_mode_instructions"
    )
    if extra:
        text += "\n\n" + str(extra)
    return text


def plan_write_refusal(
    name: str, args: dict[str, Any], *, workspace_dir: str, chat_id: uuid.UUID
) -> str | None:
    """In a plan turn write_file/edit_files may touch only the chat's plan file."""
    if name not in PLAN_WRITE_TOOLS:
        return None
    plan = Path(plan_path(workspace_dir, chat_id))
    if name == "write_file":
        targets = [args.get("path")]
    else:
        edits = args.get("edits")
        targets = (
            [e.get("path") for e in edits if isinstance(e, dict)]
            if isinstance(edits, list)
            else [None]
        )
    for raw in targets:
        if not isinstance(raw, str) or _resolved(workspace_dir, raw) != plan:
            return f"plan mode: {name} may only change the plan file {plan}; {raw!r} is not it"
    return None


def _resolved(workspace_dir: str, raw: str) -> Path:
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = Path(workspace_dir) / candidate
    return Path(str(candidate.resolve(strict=False)))


def propose_plan(
    session: Session, chat: Chat, args: dict[str, Any], *, workspace_dir: str
) -> dict[str, Any]:
    """Read the plan file (≤ 32 KiB), store it as a chat file linked to the chat."""
    plan = plan_path(workspace_dir, chat.id)
    raw = args.get("path") or plan
    if not isinstance(raw, str) or not raw.endswith(".md"):
        raise PlanToolError("path must be an absolute path to a .md file")
    if _resolved(workspace_dir, raw) != Path(plan):
        raise PlanToolError(f"in plan mode the plan must be {plan}")
    path = Path(plan)
    try:
        with path.open("rb") as handle:
            data = handle.read(PLAN_FILE_CAP + 1)
    except FileNotFoundError:
        data = b""
    except OSError as exc:
        raise PlanToolError(f"cannot read {plan}: {exc.strerror or exc}") from None
    if len(data) > PLAN_FILE_CAP:
        raise PlanToolError(f"plan file is larger than {PLAN_FILE_CAP // 1024} KiB")
    if not data.strip():
        raise PlanToolError(f"plan file is empty; write your plan to {plan} before proposing")
    stored = ChatFile(
        owner_id=chat.owner_id,
        organization_id=chat.organization_id,
        name=path.name,
        mimetype="text/markdown",
        data=data,
    )
    session.add(stored)
    session.flush()
    warnings = link_files(session, chat.id, [stored.id])
    if warnings:
        raise PlanToolError("; ".join(warnings))
    return {
        "ok": True,
        "path": plan,
        "kind": "plan",
        "file_id": str(stored.id),
        "media_type": "text/markdown",
    }


def ask_user_question(args: dict[str, Any]) -> dict[str, Any]:
    """Validate the questions (1+, 2–4 options each, no empty strings) and echo them."""
    questions = args.get("questions")
    if not isinstance(questions, list) or not questions:
        raise PlanToolError("questions must be a non-empty list")
    clean = []
    for i, q in enumerate(questions):
        if not isinstance(q, dict):
            raise PlanToolError(f"questions[{i}] must be an object")
        header, question = (
            _text(q, "header", f"questions[{i}]"),
            _text(q, "question", f"questions[{i}]"),
        )
        options = q.get("options")
        if not isinstance(options, list) or not 2 <= len(options) <= 4:
            raise PlanToolError(f"questions[{i}].options must have 2 to 4 options")
        opts = []
        for j, option in enumerate(options):
            where = f"questions[{i}].options[{j}]"
            if not isinstance(option, dict):
                raise PlanToolError(f"{where} must be an object")
            opts.append(
                {
                    "label": _text(option, "label", where),
                    "description": _text(option, "description", where),
                }
            )
        clean.append({"header": header, "question": question, "options": opts})
    return {"questions": clean}


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PlanToolError(f"{where}.{key} must be a non-empty string")
    return value
