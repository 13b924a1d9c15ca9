"""Domain objects as Coder's wire JSON (reference §1.3): keys, omission rules, formats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from models.chat.tables import Chat, ChatMessage, ChatQueuedMessage

# Keys stored in message parts but never sent to API clients (reference §1.3).
INTERNAL_PART_KEYS = frozenset(
    {
        "context_file_content",
        "context_file_os",
        "context_file_directory",
        "provider_metadata",
        "skill_dir",
        "context_file_skill_meta_file",
        "compaction_boundary_id",  # on a summary (visibility model, so never sent anyway)
    }
)

USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "reasoning_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "context_limit",
)


def ts(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z`` suffix, as Go marshals time.Time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def message_json(msg: ChatMessage) -> dict[str, Any]:
    """A ChatMessage; optional keys are omitted when empty."""
    out: dict[str, Any] = {
        "id": msg.id,
        "chat_id": str(msg.chat_id),
        "created_at": ts(msg.created_at),
        "role": str(msg.role),
    }
    if msg.created_by is not None:
        out["created_by"] = str(msg.created_by)
    if msg.model_config_id is not None:
        out["model_config_id"] = str(msg.model_config_id)
    if msg.content:
        out["content"] = [public_part(p) for p in msg.content]
    usage = {f: getattr(msg, f) for f in USAGE_FIELDS if getattr(msg, f) is not None}
    if usage:
        out["usage"] = usage
    return out


def public_part(part: dict[str, Any]) -> dict[str, Any]:
    """A message part without the internal-only keys."""
    if not INTERNAL_PART_KEYS.intersection(part):
        return part
    return {k: v for k, v in part.items() if k not in INTERNAL_PART_KEYS}


def queued_json(queued: ChatQueuedMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": queued.id,
        "chat_id": str(queued.chat_id),
        "content": queued.content,
        "created_at": ts(queued.created_at),
    }
    if queued.model_config_id is not None:
        out["model_config_id"] = str(queued.model_config_id)
    return out


def chat_json(
    chat: Chat,
    *,
    has_unread: bool = False,
    children: list[dict[str, Any]] | None = None,
    files: list[dict[str, Any]] | None = None,
    warnings: list[str] | None = None,
    diff_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Chat. ``children`` is embedded on root chats; ``files`` only on create and get;
    ``diff_status`` is the cached ChatDiffStatus (``models.insights.diff_statuses``), if any."""
    out: dict[str, Any] = {
        "id": str(chat.id),
        "organization_id": str(chat.organization_id),
        "owner_id": str(chat.owner_id),
        "workspace_id": _id(chat.workspace_id),
        "build_id": _id(chat.build_id),
        "agent_id": _id(chat.agent_id),
        "parent_chat_id": _id(chat.parent_chat_id),
        "root_chat_id": _id(chat.root_chat_id),
        "last_model_config_id": str(chat.last_model_config_id),
        "title": chat.title,
        "status": str(chat.status),
        "last_error": chat.last_error,
        "diff_status": diff_status,
        "created_at": ts(chat.created_at),
        "updated_at": ts(chat.updated_at),
        "archived": chat.archived,
        "pin_order": chat.pin_order,
        "mcp_server_ids": [str(i) for i in chat.mcp_server_ids or []],
        "labels": chat.labels or {},
        "has_unread": has_unread,
        "client_type": str(chat.client_type),
        "plan_mode": str(chat.plan_mode) if chat.plan_mode else None,
    }
    if chat.parent_chat_id is None and children is not None:
        out["children"] = children
    if files is not None:
        out["files"] = files
    if warnings:
        out["warnings"] = warnings
    return out
