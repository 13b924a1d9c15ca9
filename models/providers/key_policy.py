"""Key policy: which API key a user's turn on a provider uses (reference §5.2).

A provider has three toggles: ``central_api_key_enabled`` (the admin's key may be used),
``allow_user_api_key`` (users may bring their own key) and ``allow_central_api_key_fallback``
(users without a key of their own fall back to the admin's). The database CHECK
``valid_credential_policy`` and :func:`validate_policy` reject the combinations that make no
sense; :func:`resolve` applies Coder's resolution order (``ResolveUserProviderKeys``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlmodel import Session, select

from models.enums import PROVIDERS, UnavailableReason
from models.errors import BadRequest
from models.providers.tables import ChatModelConfig, ChatProvider, UserChatProviderKey

# Bedrock can run on the worker's ambient AWS credentials (instance role, environment).
AMBIENT_CREDENTIAL_PROVIDERS = frozenset({"bedrock"})


class KeySource(StrEnum):
    USER = "user"
    CENTRAL = "central"
    AMBIENT = "ambient"


@dataclass(frozen=True)
class KeyResolution:
    """The outcome for one user and one provider: a key to use, or why there is none."""

    source: KeySource | None
    # The encrypted key to decrypt and use (None for ambient credentials or when unavailable).
    ciphertext: str | None = None
    reason: UnavailableReason | None = None

    @property
    def available(self) -> bool:
        return self.source is not None


def _unavailable(reason: UnavailableReason) -> KeyResolution:
    return KeyResolution(source=None, reason=reason)


def resolve(provider: ChatProvider, user_key: UserChatProviderKey | None) -> KeyResolution:
    """Apply §5.2's rules, in order, to a provider row and the user's key row (if any)."""
    central = provider.api_key if provider.central_api_key_enabled else ""
    # 1. An allowed user key always wins.
    if provider.allow_user_api_key and user_key is not None and user_key.api_key:
        return KeyResolution(KeySource.USER, ciphertext=user_key.api_key)
    central_allowed = not provider.allow_user_api_key or provider.allow_central_api_key_fallback
    # 2. The central key, unless users must bring their own and there is no fallback.
    if central:
        if central_allowed:
            return KeyResolution(KeySource.CENTRAL, ciphertext=central)
        return _unavailable(UnavailableReason.USER_API_KEY_REQUIRED)
    # 3. Bedrock without a key runs on ambient AWS credentials, under the same condition.
    if provider.provider in AMBIENT_CREDENTIAL_PROVIDERS and provider.central_api_key_enabled:
        if central_allowed:
            return KeyResolution(KeySource.AMBIENT)
        return _unavailable(UnavailableReason.USER_API_KEY_REQUIRED)
    # 4 and 5. Users may (or must) bring a key and this one has none.
    if provider.allow_user_api_key:
        return _unavailable(UnavailableReason.USER_API_KEY_REQUIRED)
    # 6. Nothing to use.
    return _unavailable(UnavailableReason.MISSING_API_KEY)


def user_key_row(
    session: Session, provider_id: uuid.UUID, user_id: uuid.UUID
) -> UserChatProviderKey | None:
    """The user's own key row for a provider, if they set one."""
    return session.exec(
        select(UserChatProviderKey).where(
            UserChatProviderKey.user_id == user_id,
            UserChatProviderKey.chat_provider_id == provider_id,
        )
    ).first()


def resolve_for_user(session: Session, provider: ChatProvider, user_id: uuid.UUID) -> KeyResolution:
    """The key one user's turn on ``provider`` uses (the provider must be enabled)."""
    return resolve(provider, user_key_row(session, provider.id, user_id))


def resolve_all_for_user(
    session: Session, providers: list[ChatProvider], user_id: uuid.UUID
) -> dict[uuid.UUID, KeyResolution]:
    """:func:`resolve` for several providers with one query for the user's keys."""
    keys = {
        k.chat_provider_id: k
        for k in session.exec(
            select(UserChatProviderKey).where(UserChatProviderKey.user_id == user_id)
        ).all()
    }
    return {p.id: resolve(p, keys.get(p.id)) for p in providers}


def unavailable_message(provider: ChatProvider, reason: UnavailableReason | None) -> str:
    """The error a turn fails with when its provider cannot serve the chat's owner."""
    if reason == UnavailableReason.USER_API_KEY_REQUIRED:
        hint = (
            "it needs your own API key; set one with PUT "
            f"/api/experimental/chats/user-provider-configs/{provider.id}"
        )
    else:
        hint = "it has no API key configured"
    return f"Chat provider {provider.provider!r} is unavailable ({reason}): {hint}."


def validate_policy(central_enabled: bool, allow_user: bool, fallback: bool) -> None:
    """The API's check of the three toggles (the same rule as the database CHECK)."""
    detail = None
    if not (central_enabled or allow_user):
        detail = "At least one credential source must be enabled: central API key or user API key."
    elif fallback and not central_enabled:
        detail = "Central API key fallback requires central API key to be enabled."
    elif fallback and not allow_user:
        detail = "Central API key fallback requires user API key to be enabled."
    if detail:
        raise BadRequest("Invalid credential policy.", detail=detail)


def require_central_key(provider: str, central_enabled: bool, has_key: bool) -> None:
    """Refuse a provider whose central key is enabled but missing.

    [inferred] Bedrock is exempt: §5.2 makes a keyless, central-enabled Bedrock provider run on
    ambient AWS credentials, which needs such a row to be storable.
    """
    if central_enabled and not has_key and provider not in AMBIENT_CREDENTIAL_PROVIDERS:
        raise BadRequest("API key is required when central API key is enabled.")


def model_catalog(session: Session, user_id: uuid.UUID) -> dict[str, Any]:
    """``GET /chats/models`` (reference §1.3): enabled providers in supported order, each
    ``available`` or with its ``unavailable_reason`` for this user, with its enabled models."""
    providers = sorted(
        session.exec(select(ChatProvider).where(ChatProvider.enabled)).all(),
        key=lambda p: PROVIDERS.index(p.provider),
    )
    resolutions = resolve_all_for_user(session, providers, user_id)
    configs = session.exec(
        select(ChatModelConfig).where(
            ChatModelConfig.enabled,
            ChatModelConfig.deleted.is_(False),  # type: ignore[attr-defined]
        )
    ).all()
    out = []
    for provider in providers:
        resolution = resolutions[provider.id]
        entry: dict[str, Any] = {"provider": provider.provider, "available": resolution.available}
        if resolution.reason is not None:
            entry["unavailable_reason"] = str(resolution.reason)
        mine = sorted(
            (c for c in configs if c.provider == provider.provider), key=lambda c: c.model
        )
        entry["models"] = [
            {
                "id": f"{c.provider}:{c.model}",
                "provider": c.provider,
                "model": c.model,
                "display_name": c.display_name or c.model,
            }
            for c in mine
        ]
        out.append(entry)
    return {"providers": out}
