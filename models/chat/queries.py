"""Read queries behind the chat list, chat detail and message pages (reference §2.8)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Session, select

from models.chat.tables import Chat, ChatMessage
from models.enums import MessageRole, MessageVisibility
from models.errors import BadRequest


def list_root_chats(
    session: Session,
    owner_id: uuid.UUID,
    *,
    archived: bool | None,
    labels: dict[str, str],
    after_id: uuid.UUID | None,
    offset: int,
    limit: int,
) -> list[Chat]:
    """The owner's root chats, newest activity first, keyset cursor on (updated_at, id)."""
    stmt = select(Chat).where(Chat.owner_id == owner_id, Chat.parent_chat_id.is_(None))  # type: ignore[union-attr]
    if archived is not None:
        stmt = stmt.where(Chat.archived.is_(archived))  # type: ignore[attr-defined]
    if labels:
        stmt = stmt.where(sa.type_coerce(Chat.labels, JSONB).contains(labels))
    if after_id is not None:
        cursor = session.exec(
            select(Chat.updated_at, Chat.id).where(Chat.id == after_id, Chat.owner_id == owner_id)
        ).first()
        if cursor is None:
            raise BadRequest(f'Chat "{after_id}" given as after_id was not found.')
        stmt = stmt.where(sa.tuple_(Chat.updated_at, Chat.id) < sa.tuple_(*cursor))
    stmt = stmt.order_by(sa.desc(Chat.updated_at), sa.desc(Chat.id)).offset(offset).limit(limit)  # type: ignore[call-overload]
    return list(session.exec(stmt))


def unread_chat_ids(session: Session, chats: list[Chat]) -> set[uuid.UUID]:
    """Chats with an assistant message newer than their read cursor."""
    if not chats:
        return set()
    m = sa.alias(ChatMessage.__table__)  # type: ignore[attr-defined]
    c = sa.alias(Chat.__table__)  # type: ignore[attr-defined]
    stmt = sa.select(c.c.id).where(
        c.c.id.in_([chat.id for chat in chats]),
        sa.exists().where(
            m.c.chat_id == c.c.id,
            m.c.role == MessageRole.ASSISTANT.value,
            m.c.deleted.is_(False),
            m.c.id > sa.func.coalesce(c.c.last_read_message_id, 0),
        ),
    )
    return set(session.execute(stmt).scalars())


def children_by_root(session: Session, roots: list[Chat]) -> dict[uuid.UUID, list[Chat]]:
    """Descendants of each root chat that share the root's archived state."""
    if not roots:
        return {}
    archived = {root.id: root.archived for root in roots}
    rows = session.exec(
        select(Chat)
        .where(Chat.root_chat_id.in_(list(archived)))  # type: ignore[union-attr]
        .order_by(sa.asc(Chat.created_at))  # type: ignore[call-overload]
    ).all()
    out: dict[uuid.UUID, list[Chat]] = {root.id: [] for root in roots}
    for child in rows:
        assert child.root_chat_id is not None
        if child.archived == archived[child.root_chat_id]:
            out[child.root_chat_id].append(child)
    return out


def page_messages(
    session: Session,
    chat_id: uuid.UUID,
    *,
    before_id: int | None,
    after_id: int | None,
    limit: int,
) -> tuple[list[ChatMessage], bool]:
    """Visible messages: newest first, or oldest first when only ``after_id`` is given."""
    stmt = select(ChatMessage).where(
        ChatMessage.chat_id == chat_id,
        ChatMessage.deleted.is_(False),  # type: ignore[attr-defined]
        ChatMessage.visibility.in_([MessageVisibility.USER, MessageVisibility.BOTH]),  # type: ignore[attr-defined]
    )
    if before_id is not None:
        stmt = stmt.where(ChatMessage.id < before_id)  # type: ignore[operator]
    if after_id is not None:
        stmt = stmt.where(ChatMessage.id > after_id)  # type: ignore[operator]
    ascending = after_id is not None and before_id is None
    order = sa.asc(ChatMessage.id) if ascending else sa.desc(ChatMessage.id)  # type: ignore[call-overload]
    rows = list(session.exec(stmt.order_by(order).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def messages_after(session: Session, chat_id: uuid.UUID, after_id: int) -> list[ChatMessage]:
    """Visible messages with id > after_id, oldest first (stream snapshot)."""
    rows, _ = page_messages(session, chat_id, before_id=None, after_id=after_id, limit=10_000)
    return rows


def parse_label_filters(values: list[str]) -> dict[str, str]:
    """``label=key:value`` query parameters, combined with AND."""
    labels: dict[str, str] = {}
    for raw in values:
        key, sep, value = raw.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise BadRequest(
                f'Invalid label filter: "{raw}" (expected format key:value, both must be non-empty)'
            )
        labels[key.strip()] = value.strip()
    return labels


def parse_search(q: str | None) -> dict[str, Any]:
    """Coder's search string; supports ``archived:true|false``."""
    filters: dict[str, Any] = {"archived": None}
    for term in (q or "").split():
        key, sep, value = term.partition(":")
        if sep and key.lower() == "archived":
            if value.lower() not in ("true", "false"):
                raise BadRequest(
                    "Invalid search query.",
                    validations=[{"field": "q", "detail": 'archived must be "true" or "false"'}],
                )
            filters["archived"] = value.lower() == "true"
    return filters
