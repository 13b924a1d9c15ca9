"""Which admin MCP servers a chat uses (reference §1.5, §6.3 availability), and users' OAuth2
tokens for them.

A chat's ``mcp_server_ids`` start from the enabled ``default_on`` servers (when the client
sends none on create), are replaced when a message carries ``mcp_server_ids``, and always
include the enabled ``force_on`` servers, which the user cannot remove.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from models.base import utcnow
from models.chat.tables import Chat
from models.errors import BadRequest
from models.mcp.tables import MCPAvailability, MCPServerConfig, MCPServerUserToken


def _enabled_ids(session: Session, *availability: str) -> list[uuid.UUID]:
    return list(
        session.exec(
            select(MCPServerConfig.id)
            .where(
                MCPServerConfig.enabled,
                MCPServerConfig.availability.in_(availability),  # type: ignore[attr-defined]
            )
            .order_by(MCPServerConfig.slug)
        ).all()
    )


def validate_ids(session: Session, requested: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """The requested ids, deduplicated; unknown (or disabled) ones are Coder's 400."""
    wanted = list(dict.fromkeys(requested))
    if not wanted:
        return []
    known = set(
        session.exec(
            select(MCPServerConfig.id).where(
                MCPServerConfig.id.in_(wanted),  # type: ignore[attr-defined]
                MCPServerConfig.enabled,
            )
        ).all()
    )
    invalid = [str(i) for i in wanted if i not in known]
    if invalid:
        raise BadRequest(
            "One or more MCP server IDs are invalid.", detail="Invalid IDs: " + ", ".join(invalid)
        )
    return wanted


def _with_forced(session: Session, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    forced = _enabled_ids(session, MCPAvailability.FORCE_ON)
    return ids + [i for i in forced if i not in ids]


def initial_selection(session: Session, requested: list[uuid.UUID] | None) -> list[uuid.UUID]:
    """A new chat's servers: the requested ones, or the default_on ones; plus force_on."""
    if requested is None:
        return _enabled_ids(session, MCPAvailability.FORCE_ON, MCPAvailability.DEFAULT_ON)
    return _with_forced(session, validate_ids(session, requested))


def replaced_selection(session: Session, requested: list[uuid.UUID]) -> list[uuid.UUID]:
    """A message's ``mcp_server_ids`` replace the chat's set; force_on servers stay."""
    return _with_forced(session, validate_ids(session, requested))


def chat_servers(session: Session, chat: Chat) -> list[MCPServerConfig]:
    """The enabled servers a step of ``chat`` offers: its selection plus every force_on server
    (one turned force_on after the chat was created applies too)."""
    ids = list(chat.mcp_server_ids or [])
    return list(
        session.exec(
            select(MCPServerConfig)
            .where(
                MCPServerConfig.enabled,
                sa.or_(
                    MCPServerConfig.id.in_(ids),  # type: ignore[attr-defined]
                    MCPServerConfig.availability == MCPAvailability.FORCE_ON,  # type: ignore[arg-type]
                ),
            )
            .order_by(MCPServerConfig.slug)
        ).all()
    )


def user_token(
    session: Session, server_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
) -> MCPServerUserToken | None:
    query = select(MCPServerUserToken).where(
        MCPServerUserToken.mcp_server_config_id == server_id,
        MCPServerUserToken.user_id == user_id,
    )
    if for_update:
        query = query.with_for_update()
    return session.exec(query).first()


def store_token(
    session: Session,
    *,
    server_id: uuid.UUID,
    user_id: uuid.UUID,
    access: tuple[str, str | None],
    refresh: tuple[str, str | None] | None,
    token_type: str,
    expiry: datetime | None,
) -> MCPServerUserToken:
    """Insert or replace a user's token (ciphertexts and key ids). A ``refresh`` of None keeps
    the stored refresh token (the authorization server did not rotate it)."""
    row = user_token(session, server_id, user_id, for_update=True)
    if row is None:
        row = MCPServerUserToken(
            mcp_server_config_id=server_id, user_id=user_id, access_token=access[0]
        )
        session.add(row)
    row.access_token, row.access_token_key_id = access
    if refresh is not None:
        row.refresh_token, row.refresh_token_key_id = refresh
    row.token_type = token_type or "Bearer"
    row.expiry = expiry
    row.updated_at = utcnow()
    session.flush()
    return row


def delete_token(session: Session, server_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    row = user_token(session, server_id, user_id, for_update=True)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
