"""``/api/experimental/chats/user-provider-configs``: the caller's own provider keys (BYOK).

A user sets, inspects and deletes their own key only; the key is write-only.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, SecretStr

from api_shim.deps import CurrentUser, DbSession, Secrets
from models.providers import rules as provider_rules
from models.providers import user_keys

router = APIRouter(prefix="/api/experimental/chats", tags=["user provider keys"])


class UserChatProviderConfig(BaseModel):
    provider_id: uuid.UUID
    provider: str
    display_name: str
    has_user_api_key: bool
    has_central_api_key_fallback: bool = Field(
        description="Without a key of your own, the admin's key is used."
    )


class SetUserKeyRequest(BaseModel):
    api_key: SecretStr = Field(default=SecretStr(""), description="Write-only; ≤ 10,240 bytes.")


@router.get(
    "/user-provider-configs",
    response_model=list[UserChatProviderConfig],
    summary="Providers that accept your own API key, and whether you set one",
)
def list_user_provider_configs(user: CurrentUser, session: DbSession) -> list[dict[str, Any]]:
    return user_keys.list_user_provider_configs(session, user.id)


@router.put(
    "/user-provider-configs/{provider_config}",
    response_model=UserChatProviderConfig,
    summary="Set (or replace) your own API key for a provider",
)
def set_user_key(
    provider_config: str,
    body: SetUserKeyRequest,
    user: CurrentUser,
    session: DbSession,
    box: Secrets,
) -> dict[str, Any]:
    provider = provider_rules.get_provider(session, provider_config)
    out = user_keys.set_user_key(session, box, provider, user.id, body.api_key.get_secret_value())
    session.commit()
    return out


@router.delete(
    "/user-provider-configs/{provider_config}",
    status_code=204,
    summary="Delete your own API key for a provider",
)
def delete_user_key(provider_config: str, user: CurrentUser, session: DbSession) -> Response:
    provider = provider_rules.get_provider(session, provider_config)
    user_keys.delete_user_key(session, provider, user.id)
    session.commit()
    return Response(status_code=204)
