"""Stored chat messages → the OpenAI-shaped message list litellm takes.

The prompt is compaction-aware (reference §2.8, §3.4): once a chat has a summary, the model
sees the non-compressed system messages up to the summary's boundary, the summary, then every
non-compressed message after the boundary. The boundary is the id of the last message the
summary covers (``SUMMARY_BOUNDARY_KEY`` on the summary's text part), not the summary row's
own id, so a message inserted while the summary was being written is never dropped.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from models.chat.file_types import IMAGE_TYPES, TEXT_TYPES
from models.chat.files import ChatFile, file_ids_in, load_files
from models.chat.rules import parts_text
from models.chat.tables import ChatMessage
from models.enums import MessageRole, MessageVisibility
from workers.tools.context_files import context_prompt

# Text-like files are inlined into the prompt up to this many bytes.
MAX_INLINE_FILE_BYTES = 64 * 1024

# The id of the last message a summary covers, on the summary row's text part (internal).
SUMMARY_BOUNDARY_KEY = "compaction_boundary_id"
# Heads the summary in the prompt, so the model knows what the text is.
SUMMARY_PREAMBLE = "Summary of the earlier conversation (older messages were compacted):"
# Sent after a summary that nothing follows yet (compaction in the middle of a turn), so the
# request still ends with a user message, as every provider accepts.
CONTINUE_FROM_SUMMARY = "Continue with the task from the summary above."

_MODEL_VISIBLE = [MessageVisibility.MODEL, MessageVisibility.BOTH]


@dataclass(frozen=True, slots=True)
class PromptRow:
    """The columns of a stored message a prompt is built from. Read without the ORM: every
    step loads its chat's whole visible history, and ORM instances cost several times more."""

    id: int
    role: MessageRole
    content: list[dict[str, Any]]
    compressed: bool


def _visible_to_model(chat_id: uuid.UUID) -> Any:
    return sa.select(  # type: ignore[call-overload]
        ChatMessage.id, ChatMessage.role, ChatMessage.content, ChatMessage.compressed
    ).where(
        ChatMessage.chat_id == chat_id,
        ChatMessage.deleted.is_(False),  # type: ignore[attr-defined]
        ChatMessage.visibility.in_(_MODEL_VISIBLE),  # type: ignore[attr-defined]
    )


def _rows(session: Session, stmt: Any, params: dict[str, Any] | None = None) -> list[PromptRow]:
    return [
        PromptRow(id=r[0], role=MessageRole(r[1]), content=r[2] or [], compressed=bool(r[3]))
        for r in session.execute(stmt, params or {})
    ]


def latest_summary(session: Session, chat_id: uuid.UUID) -> PromptRow | None:
    """The chat's newest compaction summary (a compressed system message), if any."""
    found = _rows(
        session,
        _visible_to_model(chat_id)
        .where(ChatMessage.compressed.is_(True), ChatMessage.role == MessageRole.SYSTEM)  # type: ignore[attr-defined]
        .order_by(sa.desc(ChatMessage.id))  # type: ignore[call-overload]
        .limit(1),
    )
    return found[0] if found else None


def summary_boundary(summary: PromptRow) -> int:
    """The id of the last message ``summary`` covers (its own id for a summary without one)."""
    for part in summary.content:
        if isinstance(part.get(SUMMARY_BOUNDARY_KEY), int):
            return int(part[SUMMARY_BOUNDARY_KEY])
    return summary.id


def load_prompt_rows(session: Session, chat_id: uuid.UUID) -> list[PromptRow]:
    """Messages the model sees, in insertion order: visibility model/both, not deleted.

    With a summary: the non-compressed system messages up to its boundary, the summary, then
    the non-compressed messages after the boundary. Other compressed rows (the summary's
    tool call and result, older summaries) are for the UI only.
    """
    # One statement: the newest summary (and its boundary) and the rows it leaves in view.
    found = _rows(session, _PROMPT_ROWS_SQL, {"chat_id": chat_id, "key": SUMMARY_BOUNDARY_KEY})
    summaries = [r for r in found if r.compressed]
    rows = [r for r in found if not r.compressed]
    if not summaries:
        return rows
    summary = summaries[0]
    boundary = summary_boundary(summary)
    head = [r for r in rows if r.id <= boundary]
    return [*head, summary, *rows[len(head) :]]


_PROMPT_ROWS_SQL = sa.text(
    """
    WITH visible AS (
        SELECT id, role, content, compressed FROM chat_messages
         WHERE chat_id = :chat_id AND NOT deleted AND visibility IN ('model', 'both')
    ), summary AS (
        SELECT id, role, content, compressed,
               coalesce((SELECT (p ->> :key)::bigint
                           FROM jsonb_array_elements(content) WITH ORDINALITY AS a(p, n)
                          WHERE jsonb_typeof(p -> :key) = 'number' ORDER BY n LIMIT 1),
                        id) AS boundary
          FROM visible WHERE compressed AND role = 'system' ORDER BY id DESC LIMIT 1
    )
    SELECT id, role, content, compressed FROM summary
    UNION ALL
    SELECT v.id, v.role, v.content, v.compressed FROM visible v
     WHERE NOT v.compressed
       AND (v.role = 'system' OR v.id > coalesce((SELECT boundary FROM summary), 0))
     ORDER BY compressed DESC, id
    """
)


def load_prompt_files(session: Session, rows: Sequence[PromptRow]) -> dict[uuid.UUID, ChatFile]:
    """The uploaded files that the user messages reference, with their bytes."""
    ids = [f for r in rows if r.role == MessageRole.USER for f in file_ids_in(r.content or [])]
    return load_files(session, ids)


def to_llm_messages(
    rows: Sequence[PromptRow],
    *,
    workspace_line: str = "",
    files: Mapping[uuid.UUID, ChatFile] | None = None,
) -> list[dict[str, Any]]:
    """Convert rows to chat-completions messages (one tool message per tool result).

    ``workspace_line`` (Coder's workspace-awareness system line) follows the leading system
    messages (a compaction summary among them). Persisted ``context-file``/``skill`` parts
    become instruction text. ``file`` parts of user messages are resolved from ``files`` (see
    ``load_prompt_files``): images become ``image_url`` parts, text-like files a text block,
    anything else a placeholder.
    """

    out: list[dict[str, Any]] = []
    for row in rows:
        parts = row.content or []
        if workspace_line and row.role != MessageRole.SYSTEM:
            out.append({"role": "system", "content": workspace_line})
            workspace_line = ""
        text = "\n\n".join(t for t in (context_prompt(parts), parts_text(parts)) if t)
        if row.role == MessageRole.SYSTEM and row.compressed:
            out.append({"role": "system", "content": f"{SUMMARY_PREAMBLE}\n\n{text}"})
        elif row.role == MessageRole.SYSTEM:
            out.append({"role": "system", "content": text})
        elif row.role == MessageRole.USER:
            out.append(_user(text, parts, files or {}))
        elif row.role == MessageRole.ASSISTANT:
            out.append(_assistant(parts))
        elif row.role == MessageRole.TOOL:
            out.extend(_tool_results(parts))
    if any(r.compressed for r in rows) and all(r.role == MessageRole.SYSTEM for r in rows):
        # Nothing but system messages around the summary: compacted in the middle of a turn.
        if workspace_line:
            out.append({"role": "system", "content": workspace_line})
        out.append({"role": "user", "content": CONTINUE_FROM_SUMMARY})
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


def transcript(rows: Sequence[PromptRow], *, clip: int) -> str:
    """The rows as plain text (e.g. for a summary): one block per message, a summary marked as
    such, tool-call arguments and tool results cut to ``clip`` characters."""

    def clipped(value: Any) -> str:
        text = _json_text(value)
        return text if len(text) <= clip else f"{text[:clip]}… [{len(text)} chars]"

    blocks: list[str] = []
    for row in rows:
        parts = row.content or []
        if row.compressed:
            blocks.append(f"[summary of the conversation before this point]\n{parts_text(parts)}")
        elif row.role == MessageRole.USER:
            files = [
                f"[file: {p.get('name') or p.get('file_id')}]" for p in parts if _is(p, "file")
            ]
            blocks.append("user: " + "\n".join([parts_text(parts), *files]).strip())
        elif row.role == MessageRole.ASSISTANT:
            lines = [p.get("text", "") for p in parts if _is(p, "text")]
            lines += [
                f"[called {p.get('tool_name')} {clipped(p.get('args'))}]"
                for p in parts
                if _is(p, "tool-call")
            ]
            blocks.append("assistant: " + "\n".join(line for line in lines if line))
        elif row.role == MessageRole.TOOL:
            blocks += [
                f"[result of {p.get('tool_name')}{' (error)' if p.get('is_error') else ''}] "
                + clipped(p.get("result"))
                for p in parts
                if _is(p, "tool-result")
            ]
    return "\n\n".join(blocks)


def _is(part: dict[str, Any], kind: str) -> bool:
    return part.get("type") == kind
