"""Request dependencies: the database session, the authenticated user, role checks, secrets."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from agentfarm import logs
from agentfarm.settings import Settings
from models import db
from models.base import utcnow
from models.crypto import SecretBox
from models.errors import BadRequest, Forbidden, Unauthorized
from models.identity import rbac
from models.identity.tables import User
from models.identity.tokens import lookup_token_user

log = logging.getLogger("agentfarm.api")

SESSION_HEADER = "Coder-Session-Token"
SESSION_COOKIE = "coder_session_token"


def get_session() -> Iterator[Session]:
    """A session per request; handlers commit explicitly, anything uncommitted rolls back."""
    session = db.new_session()
    try:
        yield session
    finally:
        try:
            session.rollback()
            session.close()
        except SQLAlchemyError as exc:
            # The database went away under this request (its answer, a 503 or a response
            # already sent, stands): the pool drops the dead connection.
            log.warning("request session not closed cleanly: %s", exc.__class__.__name__)
            session.invalidate()


DbSession = Annotated[Session, Depends(get_session)]


def request_token(request: Request) -> str | None:
    """The session token from the header, a bearer token, the cookie or the query string."""
    token = request.headers.get(SESSION_HEADER)
    if not token:
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value:
            token = value.strip()
    if not token:
        token = request.cookies.get(SESSION_COOKIE) or request.query_params.get(SESSION_COOKIE)
    return token or None


def authenticate(session: Session, token: str | None) -> User:
    """The user a token belongs to, or Coder's 401."""
    if not token:
        raise Unauthorized(
            "Cookie or header (Coder-Session-Token) must be provided.",
            detail="You must be logged in to use this API.",
        )
    found = lookup_token_user(session, token)
    if found is None:
        raise Unauthorized("Invalid or expired session token.", detail="The API key is invalid.")
    key, user = found
    if user.deleted or user.status != "active":
        raise Unauthorized("User is not active.", detail="The API key's user is not active.")
    now = utcnow()
    if key.last_used is None or (now - key.last_used).total_seconds() > 60:
        key.last_used = now
        session.commit()
    return user


def current_user(request: Request, session: DbSession) -> User:
    user = authenticate(session, request_token(request))
    # Who made the request, for the audit middleware (plain values: the row is detached later).
    request.state.audit_user = (user.id, user.username)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_agents_access(user: User) -> None:
    """Creating chats, sending and promoting messages need the agents-access role."""
    if not rbac.has_agents_access(user.rbac_roles or []):
        raise Forbidden("Forbidden.", detail="You need the agents-access role to use chats.")


# Site roles that may change deployment settings (Coder's "update DeploymentConfig"), as
# models.rbac grants it: only owners.
ADMIN_ROLES: frozenset[str] = rbac.site_roles_allowed("deployment_config", "update")


def require_owner(user: User) -> None:
    """Admin-only actions (providers, model configs, deployment settings): 403 otherwise."""
    if not set(user.rbac_roles or []) & ADMIN_ROLES:
        raise Forbidden("Forbidden.", detail="This action needs the owner role.")


def owner_user(user: CurrentUser) -> User:
    require_owner(user)
    return user


# The authenticated user, who must hold an admin role (use as a route dependency).
OwnerUser = Annotated[User, Depends(owner_user)]


def app_settings(request: Request) -> Settings:
    """The settings the app was built with (tests build apps with their own)."""
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(app_settings)]


def secret_box(request: Request) -> SecretBox:
    """The app's SecretBox (Fernet keys from AGENTFARM_ENCRYPTION_KEYS)."""
    return request.app.state.secrets


Secrets = Annotated[SecretBox, Depends(secret_box)]


def parse_uuid(value: str, what: str = "UUID") -> uuid.UUID:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise BadRequest(f'Invalid {what} "{value}".', detail="Must be a valid UUID.") from None
    if what == "chat ID":
        logs.bind(chat_id=parsed)  # the rest of the request's log lines name the chat
    return parsed
