"""Chat providers (reference §1.10, §2.4): validation, create, update, delete and listing.

Provider API keys are stored as Fernet ciphertext (models.crypto) and never leave this
module in clear: the wire shape only says ``has_api_key``.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from psycopg import errors as pg_errors
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.base import utcnow
from models.chat.wire import ts
from models.crypto import SecretBox, SecretsUnavailable
from models.enums import PROVIDER_DISPLAY_NAMES, PROVIDERS
from models.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from models.providers import key_policy
from models.providers.tables import ChatProvider

MAX_API_KEY_BYTES = 10_240
NOT_FOUND = "Resource not found or you do not have access to this resource"
POLICY_FIELDS = (
    "central_api_key_enabled",
    "allow_user_api_key",
    "allow_central_api_key_fallback",
)


def parse_provider(name: str | None) -> str:
    """A supported provider name, or Coder's 400."""
    if name not in PROVIDERS:
        raise BadRequest(
            "Invalid provider.", detail="Provider must be one of: " + ", ".join(PROVIDERS) + "."
        )
    return name


def clean_api_key(raw: str | None) -> str:
    """The trimmed key; over 10,240 bytes is refused."""
    key = (raw or "").strip()
    if len(key.encode()) > MAX_API_KEY_BYTES:
        raise BadRequest("API key too large.")
    return key


def clean_base_url(raw: str | None) -> str:
    """'' or an absolute http(s) URL."""
    url = (raw or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise BadRequest("Base URL must be an absolute URL with scheme and host.")
    if parts.scheme.lower() not in ("http", "https"):
        raise BadRequest("Base URL scheme must be http or https.")
    return url


def encrypt_secret(
    box: SecretBox, plaintext: str, *, what: str = "API keys"
) -> tuple[str, str | None]:
    """(ciphertext, key id) for a secret, ('', None) for an empty one; 503 without a key."""
    if not plaintext:
        return "", None
    try:
        return box.encrypt(plaintext)
    except SecretsUnavailable:
        raise ServiceUnavailable(
            f"{what} cannot be stored: no encryption key is configured.",
            detail="Set AGENTFARM_ENCRYPTION_KEYS on the API server.",
        ) from None


def get_provider(session: Session, raw_id: str) -> ChatProvider:
    """A provider row by id: 400 for a malformed id, 404 for an unknown one."""
    try:
        provider_id = uuid.UUID(raw_id)
    except ValueError:
        raise BadRequest("Invalid chat provider ID.") from None
    row = session.get(ChatProvider, provider_id)
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


def _flush(session: Session) -> None:
    """Flush in a savepoint, mapping constraint violations to Coder's answers."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        if isinstance(exc.orig, pg_errors.UniqueViolation):
            raise Conflict("Chat provider already exists.") from None
        if isinstance(exc.orig, pg_errors.CheckViolation):
            raise BadRequest("Invalid provider.") from None
        raise


def create_provider(
    session: Session,
    box: SecretBox,
    *,
    provider: str | None,
    display_name: str = "",
    api_key: str | None = None,
    base_url: str | None = None,
    enabled: bool = True,
    central_api_key_enabled: bool = True,
    allow_user_api_key: bool = False,
    allow_central_api_key_fallback: bool = False,
    created_by: uuid.UUID | None = None,
) -> ChatProvider:
    """Validate and insert a provider (flushes; the caller commits)."""
    name = parse_provider(provider)
    key = clean_api_key(api_key)
    url = clean_base_url(base_url)
    key_policy.validate_policy(
        central_api_key_enabled, allow_user_api_key, allow_central_api_key_fallback
    )
    key_policy.require_central_key(name, central_api_key_enabled, bool(key))
    if session.exec(select(ChatProvider).where(ChatProvider.provider == name)).first():
        raise Conflict("Chat provider already exists.")
    ciphertext, key_id = encrypt_secret(box, key)
    row = ChatProvider(
        provider=name,
        display_name=(display_name or "").strip(),
        api_key=ciphertext,
        api_key_key_id=key_id,
        base_url=url,
        enabled=enabled,
        central_api_key_enabled=central_api_key_enabled,
        allow_user_api_key=allow_user_api_key,
        allow_central_api_key_fallback=allow_central_api_key_fallback,
        created_by=created_by,
    )
    session.add(row)
    _flush(session)
    return row


def update_provider(
    session: Session, box: SecretBox, row: ChatProvider, changes: dict[str, Any]
) -> ChatProvider:
    """Apply a PATCH: only the keys present in ``changes`` are touched.

    ``display_name`` is applied only when non-empty; an empty ``api_key`` clears the key.
    """
    if (changes.get("display_name") or "").strip():
        row.display_name = changes["display_name"].strip()
    if changes.get("api_key") is not None:
        row.api_key, row.api_key_key_id = encrypt_secret(box, clean_api_key(changes["api_key"]))
    if "base_url" in changes and changes["base_url"] is not None:
        row.base_url = clean_base_url(changes["base_url"])
    for field in ("enabled", *POLICY_FIELDS):
        if changes.get(field) is not None:
            setattr(row, field, bool(changes[field]))
    key_policy.validate_policy(
        row.central_api_key_enabled, row.allow_user_api_key, row.allow_central_api_key_fallback
    )
    key_policy.require_central_key(row.provider, row.central_api_key_enabled, bool(row.api_key))
    row.updated_at = utcnow()
    _flush(session)
    return row


def delete_provider(session: Session, row: ChatProvider) -> None:
    """Delete a provider with its model configs and users' keys (cascade), unless chats still
    reference one of its models."""
    try:
        with session.begin_nested():
            session.delete(row)
            session.flush()
    except IntegrityError:
        raise BadRequest("Provider models are still referenced by existing chats.") from None


def provider_json(row: ChatProvider) -> dict[str, Any]:
    """ChatProviderConfig for a database row; never the key itself."""
    out: dict[str, Any] = {
        "id": str(row.id),
        "provider": row.provider,
        "display_name": row.display_name,
        "enabled": row.enabled,
        "has_api_key": bool(row.api_key),
        "source": "database",
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
    }
    if row.base_url:
        out["base_url"] = row.base_url
    out.update({field: getattr(row, field) for field in POLICY_FIELDS})
    return out


def supported_provider_json(name: str) -> dict[str, Any]:
    """ChatProviderConfig for a supported provider with no row (Coder's defaults)."""
    return {
        "id": str(uuid.UUID(int=0)),
        "provider": name,
        "display_name": PROVIDER_DISPLAY_NAMES[name],
        "enabled": False,
        "has_api_key": False,
        "source": "supported",
        "central_api_key_enabled": True,
        "allow_user_api_key": False,
        "allow_central_api_key_fallback": False,
    }


def list_provider_configs(session: Session) -> list[dict[str, Any]]:
    """One entry per supported provider, in supported order (database row or defaults)."""
    rows = {p.provider: p for p in session.exec(select(ChatProvider)).all()}
    return [
        provider_json(rows[name]) if name in rows else supported_provider_json(name)
        for name in PROVIDERS
    ]
