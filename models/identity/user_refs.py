"""Routes that take a user accept ``me``, a username or a UUID (reference §1.1)."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from sqlmodel import Session, select

from models.identity.tables import User

# [inferred] Anything else cannot name a user: Coder usernames are letters, digits and
# hyphens; agentfarm also tolerates dots and underscores.
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class InvalidUserRef(ValueError):
    """The path segment is neither ``me``, a UUID nor a possible username."""


def find_user(session: Session, caller: User, ref: str) -> User | None:
    """The live user ``ref`` names (usernames match case-insensitively), or None."""
    if ref == "me":
        return caller
    try:
        user_id = uuid.UUID(ref)
    except ValueError:
        user_id = None
    if user_id is not None:
        user = session.get(User, user_id)
    elif _USERNAME.match(ref):
        user = session.exec(select(User).where(sa.func.lower(User.username) == ref.lower())).first()
    else:
        raise InvalidUserRef(ref)
    return user if user is not None and not user.deleted else None
