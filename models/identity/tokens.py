"""Session tokens in Coder's shape: ``<10-char id>-<22-char secret>``, stored as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from models.base import utcnow
from models.identity.tables import ApiKey, User
from models.site import config_version

_ALPHABET = string.ascii_letters + string.digits


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def hash_secret(secret: str) -> bytes:
    """SHA-256 of a token secret (what the database keeps)."""
    return hashlib.sha256(secret.encode()).digest()


def create_token(
    session: Session,
    user_id: uuid.UUID,
    *,
    name: str = "",
    expires_at: datetime | None = None,
) -> str:
    """Insert a new API key for the user and return the full token (shown once)."""
    key_id, secret = _random(10), _random(22)
    session.add(
        ApiKey(
            id=key_id,
            hashed_secret=hash_secret(secret),
            user_id=user_id,
            token_name=name,
            expires_at=expires_at,
        )
    )
    session.flush()
    return f"{key_id}-{secret}"


def lookup_token(session: Session, token: str) -> ApiKey | None:
    """The API key a token names, if the token is well formed, known, unexpired and matches."""
    found = lookup_token_user(session, token)
    return found[0] if found is not None else None


def lookup_token_user(session: Session, token: str) -> tuple[ApiKey, User] | None:
    """:func:`lookup_token` and the key's user, in one query (every API request runs it).

    The same statement reads the configuration version and files it on the session
    (:func:`models.site.config_version.note`), so the request's later checks of rarely
    changed configuration (the usage-limit switch) can be served from a process cache."""
    key_id, sep, secret = token.partition("-")
    if not sep or len(key_id) != 10 or not secret:
        return None
    version = sa.select(config_version.ConfigVersion.version).scalar_subquery()  # type: ignore[call-overload]
    row = session.exec(
        select(ApiKey, User, version)
        .join(User, User.id == ApiKey.user_id)  # type: ignore[arg-type]
        .where(ApiKey.id == key_id)
    ).first()
    if row is None:
        return None
    key, user, seen = row
    config_version.note(session, seen)
    if not hmac.compare_digest(key.hashed_secret, hash_secret(secret)):
        return None
    if key.expires_at is not None and key.expires_at <= utcnow():
        return None
    return key, user
