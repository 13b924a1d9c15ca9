"""The subagent tools as the model sees them (names, schemas, instructions) and the small
types the spawn and control sides share (``workers.subagents.spawn``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.chat.tables import Chat

SPAWN_TOOLS = frozenset({"spawn_agent", "spawn_explore_agent", "spawn_computer_use_agent"})
CONTROL_TOOLS = frozenset({"wait_agent", "message_agent", "close_agent"})
ORCHESTRATION_TOOLS = SPAWN_TOOLS | CONTROL_TOOLS
DEFAULT_WAIT_S = 300
MAX_WAIT_S = 3600
TITLE_WORDS = 6
TITLE_MAX_RUNES = 80

_PROMPT = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "description": "The task, with all context it needs."},
        "title": {"type": "string", "description": "A short title for the subagent's chat."},
    },
    "required": ["prompt"],
}
_TARGET = {"chat_id": {"type": "string", "description": "The subagent's chat_id."}}

SUBAGENT_TOOL_SPECS: dict[str, dict[str, Any]] = {
    "spawn_agent": {
        "description": (
            "Delegate a self-contained task to a subagent that works in parallel, in this "
            "chat's workspace, with the workspace tools. Returns its chat_id at once; call "
            "wait_agent to get its report. In plan mode, use it for exploration only."
        ),
        "parameters": _PROMPT,
    },
    "spawn_explore_agent": {
        "description": (
            "Delegate a read-only investigation (reading files, running read-only commands) "
            "to a subagent. Returns its chat_id; call wait_agent for its findings."
        ),
        "parameters": _PROMPT,
    },
    "spawn_computer_use_agent": {
        "description": (
            "Delegate a task that needs the workspace's virtual desktop to a computer-use "
            "subagent. Returns its chat_id; call wait_agent for its report."
        ),
        "parameters": _PROMPT,
    },
    "wait_agent": {
        "description": (
            "Wait until a subagent has finished and return its report. Does not block other "
            "work; several subagents can be waited for in parallel tool calls."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                **_TARGET,
                "timeout_seconds": {
                    "type": "integer",
                    "description": f"How long to wait (default {DEFAULT_WAIT_S}).",
                },
            },
            "required": ["chat_id"],
        },
    },
    "message_agent": {
        "description": (
            "Send a follow-up message to a subagent. It is queued while the subagent works, "
            "unless interrupt is true, which stops its current run first."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                **_TARGET,
                "message": {"type": "string"},
                "interrupt": {"type": "boolean"},
            },
            "required": ["chat_id", "message"],
        },
    },
    "close_agent": {
        "description": "Stop a subagent's current run (it keeps its history).",
        "parameters": {"type": "object", "properties": _TARGET, "required": ["chat_id"]},
    },
}

DELEGATED_INSTRUCTION = (
    "You are a delegated subagent. Another agent gave you the task in the next user message. "
    "Work on it on your own: nobody can answer questions while you work. When you are done, "
    "reply with a concise report of what you found or changed; that final reply is handed back "
    "to the agent that delegated the task."
)
EXPLORE_INSTRUCTION = (
    " You are in explore mode: investigate and report, and do not modify any file or state."
)
COMPUTER_USE_INSTRUCTION = (
    " You control the workspace's virtual desktop through the computer tool; take a screenshot "
    "before acting and after each significant step."
)


class SubagentError(Exception):
    """Returned to the model as an is_error tool result."""


@dataclass
class NotReady(Exception):
    """The call cannot finish yet: check again after ``delay_ms``."""

    delay_ms: int


def child_json(child: Chat) -> dict[str, Any]:
    return {"chat_id": str(child.id), "title": child.title, "status": str(child.status)}
