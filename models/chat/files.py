"""Uploaded chat files and their links to chats (reference §1.8, §2.3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlmodel import Field, Session, SQLModel, select

from models.base import created_at, fk_uuid, text_field, uuid_pk
from models.chat.wire import ts

MAX_CHAT_FILES = 50  # MaxChatFileIDs in Coder's newest code


class ChatFile(SQLModel, table=True):
    __tablename__ = "chat_files"
    __table_args__ = (
        sa.Index("idx_chat_files_organization_id", "organization_id"),
        sa.Index("idx_chat_files_owner_id", "owner_id"),
    )

    id: uuid.UUID = uuid_pk()
    owner_id: uuid.UUID = fk_uuid("users.id", ondelete="CASCADE", nullable=False)
    organization_id: uuid.UUID = fk_uuid("organizations.id", ondelete="CASCADE", nullable=False)
    name: str = text_field("")
    mimetype: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    data: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    created_at: datetime = created_at()


class ChatFileLink(SQLModel, table=True):
    """A file referenced by a chat's messages. The composite primary key is the reference's
    UNIQUE(chat_id, file_id) (the ORM needs a primary key; the table has no other columns)."""

    __tablename__ = "chat_file_links"
    __table_args__ = (
        sa.Index("idx_chat_file_links_chat_id", "chat_id"),
        # File deletion cascades by file_id; the primary key leads with chat_id.
        sa.Index("idx_chat_file_links_file_id", "file_id"),
    )

    chat_id: uuid.UUID = Field(
        sa_column=sa.Column(
            UUID(as_uuid=True),
            sa.ForeignKey("chats.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    file_id: uuid.UUID = Field(
        sa_column=sa.Column(
            UUID(as_uuid=True),
            sa.ForeignKey("chat_files.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )


# Every column but the bytes: metadata lookups never load file contents.
_META = (ChatFile.id, ChatFile.owner_id, ChatFile.organization_id, ChatFile.name,
         ChatFile.mimetype, ChatFile.created_at)  # fmt: skip


def owned_file_meta(
    session: Session, owner_id: uuid.UUID, file_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Any]:
    """Metadata rows (no data) of those files that exist and belong to ``owner_id``."""
    ids = list(set(file_ids))
    if not ids:
        return {}
    rows = session.exec(
        select(*_META).where(  # type: ignore[call-overload]
            ChatFile.id.in_(ids),  # type: ignore[attr-defined]
            ChatFile.owner_id == owner_id,
        )
    ).all()
    return {r.id: r for r in rows}  # type: ignore[attr-defined]


def file_ids_in(parts: list[dict[str, Any]]) -> list[uuid.UUID]:
    """The distinct file ids referenced by stored message parts, in order."""
    out: list[uuid.UUID] = []
    for part in parts:
        if part.get("type") == "file" and part.get("file_id"):
            fid = uuid.UUID(str(part["file_id"]))
            if fid not in out:
                out.append(fid)
    return out


def link_files(session: Session, chat_id: uuid.UUID, file_ids: list[uuid.UUID]) -> list[str]:
    """Link files to a chat, all or nothing, within the per-chat cap. Never raises: a refused
    or failed batch becomes a warning. The caller holds the chat row (new or locked)."""
    if not file_ids:
        return []
    existing = set(
        session.exec(select(ChatFileLink.file_id).where(ChatFileLink.chat_id == chat_id)).all()
    )
    new = [f for f in file_ids if f not in existing]
    if not new:
        return []
    if len(existing) + len(new) > MAX_CHAT_FILES:
        return [
            f"file linking skipped: batch of {len(file_ids)} file(s) would exceed limit of "
            f"{MAX_CHAT_FILES}"
        ]
    try:
        with session.begin_nested():
            session.execute(
                insert(ChatFileLink)
                .values([{"chat_id": chat_id, "file_id": f} for f in new])
                .on_conflict_do_nothing()
            )
    except sa.exc.SQLAlchemyError:
        return [f"{len(new)} file(s) could not be linked due to a server error"]
    return []


def chat_files_json(session: Session, chat_id: uuid.UUID) -> list[dict[str, Any]]:
    """ChatFileMetadata of the files linked to a chat, oldest first."""
    rows = session.exec(
        select(*_META)  # type: ignore[call-overload]
        .join(ChatFileLink, ChatFileLink.file_id == ChatFile.id)
        .where(ChatFileLink.chat_id == chat_id)
        .order_by(ChatFile.created_at, ChatFile.id)
    ).all()
    return [file_meta_json(r) for r in rows]


def file_meta_json(row: Any) -> dict[str, Any]:
    # [inferred] ChatFileMetadata's keys; the MIME type is sent as ``mime_type``.
    return {
        "id": str(row.id),
        "owner_id": str(row.owner_id),
        "organization_id": str(row.organization_id),
        "name": row.name,
        "mime_type": row.mimetype,
        "created_at": ts(row.created_at),
    }


def load_files(session: Session, file_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ChatFile]:
    """Whole file rows (with their bytes), by id."""
    ids = list(set(file_ids))
    if not ids:
        return {}
    rows = session.exec(select(ChatFile).where(ChatFile.id.in_(ids))).all()  # type: ignore[attr-defined]
    return {r.id: r for r in rows}
