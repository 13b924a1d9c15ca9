"""Users' tokens for git providers (Coder's ``external_auth_links``, reference §7 "Linking").

A user links one token per configured provider (``agentfarm.external_auth``); it is stored
encrypted (Fernet, rotatable, like provider keys) and never returned: the API only says
whether a link exists. The PR-insights ingestion reads the chat owner's token.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Field, Session, SQLModel

from models.base import created_at, updated_at
from models.chat.wire import ts
from models.crypto import SecretBox
from models.errors import BadRequest
from models.providers.rules import encrypt_secret

MAX_TOKEN_BYTES = 10_240


class ExternalAuthLink(SQLModel, table=True):
    __tablename__ = "external_auth_links"

    provider_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        )
    )
    # Fernet ciphertext of the token; never returned by the API.
    oauth_access_token: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # Digest of the encryption key that produced the ciphertext.
    oauth_access_token_key_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


_t = ExternalAuthLink.__table__  # type: ignore[attr-defined]


def clean_token(raw: str | None) -> str:
    """The trimmed token: 400 when empty or over 10 KiB."""
    token = (raw or "").strip()
    if not token:
        raise BadRequest("Access token is required.")
    if len(token.encode()) > MAX_TOKEN_BYTES:
        raise BadRequest("Access token too large.")
    return token


def link_token(
    session: Session, box: SecretBox, *, provider_id: str, user_id: uuid.UUID, token: str
) -> None:
    """Store (or replace) the user's token for a provider, encrypted (the caller commits)."""
    ciphertext, key_id = encrypt_secret(box, clean_token(token))
    stmt = pg_insert(_t).values(
        provider_id=provider_id,
        user_id=user_id,
        oauth_access_token=ciphertext,
        oauth_access_token_key_id=key_id,
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["provider_id", "user_id"],
            set_={
                "oauth_access_token": stmt.excluded.oauth_access_token,
                "oauth_access_token_key_id": stmt.excluded.oauth_access_token_key_id,
                "updated_at": sa.func.now(),
            },
        )
    )


def unlink(session: Session, *, provider_id: str, user_id: uuid.UUID) -> bool:
    """Forget the user's token for a provider; whether there was one."""
    result = session.execute(
        sa.delete(_t).where(_t.c.provider_id == provider_id, _t.c.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def links_of(session: Session, user_id: uuid.UUID) -> dict[str, Any]:
    """The user's links by provider id (rows without the token's plaintext)."""
    rows = session.execute(sa.select(_t).where(_t.c.user_id == user_id)).all()
    return {r.provider_id: r for r in rows}


def link_json(row: Any) -> dict[str, Any]:
    """ExternalAuthLink as Coder's ``GET /external-auth`` lists it (never the token)."""
    return {
        "provider_id": row.provider_id,
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
        "has_refresh_token": False,
        "expires": "0001-01-01T00:00:00Z",  # Go's zero time: a linked token does not expire
        "authenticated": True,
        "validate_error": "",
    }


def user_token(
    session: Session, box: SecretBox, *, provider_id: str, user_id: uuid.UUID
) -> str | None:
    """The user's token for a provider in plaintext, or None when not linked. Raises
    ``SecretsUnavailable`` when it cannot be decrypted."""
    ciphertext = session.execute(
        sa.select(_t.c.oauth_access_token).where(
            _t.c.provider_id == provider_id, _t.c.user_id == user_id
        )
    ).scalar()
    return box.decrypt(ciphertext) if ciphertext else None
