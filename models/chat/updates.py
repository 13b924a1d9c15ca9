"""PATCH semantics of a chat: title, archive (cascading through the root), pins, labels."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models import retention
from models.base import utcnow
from models.chat.tables import Chat
from models.errors import BadRequest

MAX_TITLE_RUNES = 200


def set_title(chat: Chat, title: str) -> None:
    title = title.strip()
    if not title:
        raise BadRequest("Title cannot be empty.")
    if len(title) > MAX_TITLE_RUNES:
        raise BadRequest(f"Title must be at most {MAX_TITLE_RUNES} characters.")
    chat.title = title


def set_archived(session: Session, chat: Chat, archived: bool) -> None:
    """Archive or unarchive a chat and every chat whose root it is."""
    if archived and chat.archived:
        raise BadRequest("Chat is already archived.")
    if not archived and not chat.archived:
        raise BadRequest("Chat is not archived.")
    if not archived and chat.parent_chat_id is not None:
        parent = session.get(Chat, chat.parent_chat_id)
        if parent is not None and parent.archived:
            raise BadRequest(
                "Cannot unarchive a child chat while its parent is archived. "
                "Unarchive the parent chat to cascade."
            )
    if archived:
        _unpin_tree(session, chat)
    now = utcnow()
    tree = session.execute(
        sa.update(Chat)
        .where(sa.or_(col(Chat.id) == chat.id, col(Chat.root_chat_id) == chat.id))
        .values(archived=archived, updated_at=now)
        .returning(col(Chat.id))
        .execution_options(synchronize_session=False)
    )
    # [agentfarm] Coder's purge deletes expired chats in one go; ours dooms them first and
    # deletes them over several batches (models/retention.py), so a doomed chat stays
    # deleted rather than coming back with part of its history.
    # Checked after the update, in a statement of its own: the update waited for any purge
    # that was dooming these chats, so this sees its choice (models/retention.py). The caller's
    # rollback undoes the update.
    if not archived and retention.is_doomed(session, list(tree.scalars())):
        raise BadRequest(
            "Chat is past its retention period and is being deleted.",
            detail="Archived chats are deleted once the retention window has passed.",
        )
    session.refresh(chat)


def _pinned(session: Session, chat: Chat) -> list[Chat]:
    return list(
        session.exec(
            select(Chat)
            .where(Chat.owner_id == chat.owner_id, Chat.pin_order > 0, Chat.id != chat.id)
            .order_by(sa.asc(Chat.pin_order), sa.asc(Chat.id))  # type: ignore[call-overload]
            .with_for_update()
        )
    )


def unpin(session: Session, chat: Chat) -> None:
    """Unpin and compact the remaining pins to 1..n."""
    others = _pinned(session, chat)
    chat.pin_order = 0
    for i, other in enumerate(others, start=1):
        other.pin_order = i


def _unpin_tree(session: Session, root: Chat) -> None:
    """Unpin a chat and every chat whose root it is; compact the owner's remaining pins."""
    pinned = _pinned(session, root)
    in_tree = [c for c in pinned if c.root_chat_id == root.id]
    if root.pin_order == 0 and not in_tree:
        return
    root.pin_order = 0
    for child in in_tree:
        child.pin_order = 0
    remaining = [c for c in pinned if c.root_chat_id != root.id]
    for i, other in enumerate(remaining, start=1):
        other.pin_order = i


def set_pin_order(session: Session, chat: Chat, pin_order: int) -> None:
    """0 unpins; >0 pins (appending when new) or moves, clamped to [1, pinned count]."""
    if pin_order < 0:
        raise BadRequest("Pin order must be non-negative.")
    if pin_order == 0:
        if chat.pin_order > 0:
            unpin(session, chat)
        return
    if chat.archived:
        raise BadRequest("Cannot pin an archived chat.")
    others = _pinned(session, chat)
    position = len(others) + 1 if chat.pin_order == 0 else min(pin_order, len(others) + 1)
    position = max(1, position)
    others.insert(position - 1, chat)
    for i, item in enumerate(others, start=1):
        item.pin_order = i
