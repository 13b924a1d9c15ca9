"""Stored chat messages → the OpenAI-shaped message list litellm takes."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.chat_rules import parts_text
from models.chats import ChatMessage
from models.enums import MessageRole, MessageVisibility
from models.file_types import IMAGE_TYPES, TEXT_TYPES
from models.files import ChatFile, file_ids_in, load_files

# Text-like files are inlined into the prompt up to this many bytes.
MAX_INLINE_FILE_BYTES = 64 * 1024


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


def load_prompt_files(session: Session, rows: list[ChatMessage]) -> dict[uuid.UUID, ChatFile]:
    """The uploaded files that the user messages reference, with their bytes."""
    ids = [f for r in rows if r.role == MessageRole.USER for f in file_ids_in(r.content or [])]
    return load_files(session, ids)


def to_llm_messages(
    rows: list[ChatMessage],
    *,
    workspace_line: str = "",
    files: Mapping[uuid.UUID, ChatFile] | None = None,
) -> list[dict[str, Any]]:
    """Convert rows to chat-completions messages (one tool message per tool result).

    ``workspace_line`` (Coder's workspace-awareness system line) follows the leading system
    messages. Persisted ``context-file``/``skill`` parts become instruction text. ``file``
    parts of user messages are resolved from ``files`` (see ``load_prompt_files``): images
    become ``image_url`` parts, text-like files a text block, anything else a placeholder.
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
            out.append(_user(text, parts, files or {}))
        elif row.role == MessageRole.ASSISTANT:
            out.append(_assistant(parts))
        elif row.role == MessageRole.TOOL:
            out.extend(_tool_results(parts))
    return out


def _user(
    text: str, parts: list[dict[str, Any]], files: Mapping[uuid.UUID, ChatFile]
) -> dict[str, Any]:
    """A user message; its content becomes a list of parts only when it carries images."""
    blocks: list[str] = []
    images: list[dict[str, Any]] = []
    for part in parts:
        if part.get("type") != "file" or not part.get("file_id"):
            continue
        row = files.get(uuid.UUID(str(part["file_id"])))
        name = part.get("name") or part.get("file_id")
        if row is None:
            blocks.append(f"[file: {name} (no longer available)]")
        elif row.mimetype in IMAGE_TYPES:
            encoded = base64.b64encode(row.data).decode("ascii")
            images.append(
                {"type": "image_url", "image_url": {"url": f"data:{row.mimetype};base64,{encoded}"}}
            )
        elif row.mimetype in TEXT_TYPES:
            body = row.data[:MAX_INLINE_FILE_BYTES].decode("utf-8", errors="ignore")
            if len(row.data) > MAX_INLINE_FILE_BYTES:
                body += f"\n[truncated: {len(row.data)} bytes in total]"
            blocks.append(f"[file: {row.name or name}]\n{body}")
        else:
            blocks.append(f"[file: {row.name or name} ({row.mimetype}, {len(row.data)} bytes)]")
    text = "\n\n".join(t for t in (text, *blocks) if t)
    if not images:
        return {"role": "user", "content": text}
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    return {"role": "user", "content": content + images}


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
