"""Users' own provider keys — BYOK (reference §1.10 "User provider configs", §2.4).

A user may store one key per provider that allows user keys. The key is stored encrypted and
is never returned: the caller sees only whether it has one (``has_user_api_key``).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, select

from models.crypto import SecretBox
from models.enums import PROVIDERS
from models.errors import BadRequest
from models.providers.rules import clean_api_key, encrypt_secret
from models.providers.tables import ChatProvider, UserChatProviderKey


def user_provider_config_json(provider: ChatProvider, *, has_user_api_key: bool) -> dict[str, Any]:
    """UserChatProviderConfig: the provider and the state of the caller's key (never the key)."""
    return {
        "provider_id": str(provider.id),
        "provider": provider.provider,
        "display_name": provider.display_name,
        "has_user_api_key": has_user_api_key,
        # The caller can fall back to the admin's key: enabled, fallback allowed, and an
        # effective central key exists.
        "has_central_api_key_fallback": bool(
            provider.enabled
            and provider.allow_central_api_key_fallback
            and provider.central_api_key_enabled
            and provider.api_key
        ),
    }


def list_user_provider_configs(session: Session, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """Providers that are enabled and accept user keys, in supported order."""
    providers = session.exec(
        select(ChatProvider).where(ChatProvider.enabled, ChatProvider.allow_user_api_key)
    ).all()
    mine = set(
        session.exec(
            select(UserChatProviderKey.chat_provider_id).where(
                UserChatProviderKey.user_id == user_id
            )
        ).all()
    )
    providers = sorted(providers, key=lambda p: PROVIDERS.index(p.provider))
    return [user_provider_config_json(p, has_user_api_key=p.id in mine) for p in providers]


def set_user_key(
    session: Session, box: SecretBox, provider: ChatProvider, user_id: uuid.UUID, api_key: str
) -> dict[str, Any]:
    """Store (or replace) the user's key for ``provider``."""
    if not provider.enabled:
        raise BadRequest("Provider is disabled.")
    if not provider.allow_user_api_key:
        raise BadRequest("Provider does not allow user API keys.")
    key = clean_api_key(api_key)
    if not key:
        raise BadRequest("API key is required.")
    ciphertext, key_id = encrypt_secret(box, key)
    stmt = pg_insert(UserChatProviderKey).values(
        user_id=user_id, chat_provider_id=provider.id, api_key=ciphertext, api_key_key_id=key_id
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "chat_provider_id"],
            set_={
                "api_key": stmt.excluded.api_key,
                "api_key_key_id": stmt.excluded.api_key_key_id,
                "updated_at": sa.func.now(),
            },
        )
    )
    return user_provider_config_json(provider, has_user_api_key=True)


def delete_user_key(session: Session, provider: ChatProvider, user_id: uuid.UUID) -> None:
    """Forget the user's key for ``provider`` (a no-op when there is none)."""
    session.execute(
        sa.delete(UserChatProviderKey).where(
            UserChatProviderKey.user_id == user_id,  # type: ignore[arg-type]
            UserChatProviderKey.chat_provider_id == provider.id,  # type: ignore[arg-type]
        )
    )
