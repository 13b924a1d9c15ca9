"""The values the phases of a step hand to each other (``workers.turn.run``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from models.enums import ErrorKind
from workers.turn.llm import ResolvedModel


class Missing:
    """An argument not given (the callee reads the value itself); None is a real answer."""


MISSING = Missing()

TOOL_NAME = "chat_summarized"  # the compaction's tool call, as Coder names it


@dataclass
class CompactionPlan:
    """A compaction found due in the take phase: what to summarise, the figures to report."""

    boundary_id: int
    transcript: str
    context_tokens: int
    context_limit: int
    threshold_percent: int
    tool_call_id: str = field(default_factory=lambda: f"{TOOL_NAME}_{uuid.uuid4()}")

    def args(self) -> dict[str, Any]:
        return {"source": "automatic", "threshold_percent": self.threshold_percent}

    def result(self, summary: str) -> dict[str, Any]:
        return {
            "summary": summary,
            "source": "automatic",
            "threshold_percent": self.threshold_percent,
            "usage_percent": round(self.context_tokens * 100 / self.context_limit, 2),
            "context_tokens": self.context_tokens,
            "context_limit_tokens": self.context_limit,
        }


@dataclass
class TakenStep:
    """What the take phase hands to the model phase."""

    chat_id: uuid.UUID
    generation: int
    step_key: str
    fresh_run: bool
    model: ResolvedModel
    model_config_id: uuid.UUID
    options: dict[str, Any]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    # Set when the workspace's AGENTS.md and skills must be read (on this host) first.
    context_host: str | None = None
    # Client-declared dynamic tools: their calls put the chat in requires_action.
    client_tools: frozenset[str] = frozenset()
    # The chat as taken (running), for the owner's watch stream.
    watch: dict[str, Any] | None = None
    # Set when the context passed the compression threshold: summarise before this step.
    compaction: CompactionPlan | None = None
    # MCP tools offered this step: admin ones (name → server id) and the workspace's
    # ``.mcp.json`` ones, which run on the workspace host (``workers.integrations.mcp``).
    mcp_tools: dict[str, uuid.UUID] = field(default_factory=dict)
    workspace_mcp_tools: frozenset[str] = frozenset()
    # Whether any admin MCP server is enabled (else the step skips looking for their tools).
    admin_mcp: bool = True
    # Whether the owner had a browser subscribed to web push when the step was taken (the
    # persist phase then need not ask again).
    owner_has_push: bool = True


@dataclass
class StepResult:
    """What happened, for the actor's log line and for tests."""

    outcome: str
    retry_delay_ms: int | None = None
    detail: str = ""
    model: str | None = None


class StepFailed(Exception):
    """A terminal failure before the model was called (configuration, step limit)."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.CONFIG):
        super().__init__(message)
        self.message = message
        self.kind = kind
