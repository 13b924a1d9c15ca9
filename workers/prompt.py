"""Stored chat messages → the OpenAI-shaped message list litellm takes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.chat_rules import parts_text
from models.chats import ChatMessage
from models.enums import MessageRole, MessageVisibility


def load_prompt_rows(session: Session, chat_id: uuid.UUID) -> list[ChatMessage]:
    """Messages the model sees: visibility model/both, not deleted, in insertion order."""
    return list(
        session.exec(
            select(ChatMessage)
            .where(
                ChatMessage.chat_id == chat_id,
                ChatMessage.deleted.is_(False),  # type: ignore[attr-defined]
                ChatMessage.visibility.in_(  # type: ignore[attr-defined]
                    [MessageVisibility.MODEL, MessageVisibility.BOTH]
                ),
            )
            .order_by(sa.asc(ChatMessage.id))  # type: ignore[arg-type]
        )
    )


def to_llm_messages(rows: list[ChatMessage], *, workspace_line: str = "") -> list[dict[str, Any]]:
    """Convert rows to chat-completions messages (one tool message per tool result).

    ``workspace_line`` (Coder's workspace-awareness system line) follows the leading system
    messages. Persisted ``context-file``/``skill`` parts become instruction text.
    """
    from workers.context_files import context_prompt

    out: list[dict[str, Any]] = []
    for row in rows:
        parts = row.content or []
        if workspace_line and row.role != MessageRole.SYSTEM:
            out.append({"role": "system", "content": workspace_line})
            workspace_line = ""
        text = "\n\n".join(t for t in (context_prompt(parts), parts_text(parts)) if t)
        if row.role == MessageRole.SYSTEM:
            out.append({"role": "system", "content": text})
        elif row.role == MessageRole.USER:
            out.append({"role": "user", "content": text})
        elif row.role == MessageRole.ASSISTANT:
            out.append(_assistant(parts))
        elif row.role == MessageRole.TOOL:
            out.extend(_tool_results(parts))
    return out


def _assistant(parts: list[dict[str, Any]]) -> dict[str, Any]:
    text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
    calls = [
        {
            "id": p.get("tool_call_id", ""),
            "type": "function",
            "function": {"name": p.get("tool_name", ""), "arguments": _json_text(p.get("args"))},
        }
        for p in parts
        if p.get("type") == "tool-call"
    ]
    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tool_results(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "role": "tool",
            "tool_call_id": p.get("tool_call_id", ""),
            "content": _json_text(p.get("result")),
        }
        for p in parts
        if p.get("type") == "tool-result"
    ]


def _json_text(value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
