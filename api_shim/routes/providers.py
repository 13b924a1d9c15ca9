"""``/api/experimental/chats/providers``: LLM provider configs (admin; reference §1.10).

Keys are write-only: requests may carry ``api_key``, responses only say ``has_api_key``.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, SecretStr

from api_shim.deps import DbSession, OwnerUser, Secrets
from api_shim.request_bodies import create_fields, sent_fields
from models.providers import rules as provider_rules

router = APIRouter(prefix="/api/experimental/chats", tags=["providers"])


class ChatProviderConfig(BaseModel):
    id: uuid.UUID = Field(description="The nil UUID for a supported provider with no config.")
    provider: str
    display_name: str
    enabled: bool
    has_api_key: bool
    base_url: str | None = None
    source: Literal["database", "env_preset", "supported"]
    created_at: str | None = None
    updated_at: str | None = None
    central_api_key_enabled: bool
    allow_user_api_key: bool
    allow_central_api_key_fallback: bool


class CreateProviderRequest(BaseModel):
    provider: str = Field(default="", description="anthropic, azure, bedrock, google, …")
    display_name: str = ""
    api_key: SecretStr | None = Field(default=None, description="Write-only; ≤ 10,240 bytes.")
    base_url: str | None = None
    enabled: bool = True
    central_api_key_enabled: bool = True
    allow_user_api_key: bool = False
    allow_central_api_key_fallback: bool = False


class UpdateProviderRequest(BaseModel):
    display_name: str | None = Field(default=None, description="Applied only when non-empty.")
    api_key: SecretStr | None = Field(default=None, description="An empty string clears it.")
    base_url: str | None = None
    enabled: bool | None = None
    central_api_key_enabled: bool | None = None
    allow_user_api_key: bool | None = None
    allow_central_api_key_fallback: bool | None = None


@router.get(
    "/providers",
    response_model=list[ChatProviderConfig],
    response_model_exclude_none=True,
    summary="Provider configs, one per supported provider (owner role)",
)
def list_providers(user: OwnerUser, session: DbSession) -> list[dict[str, Any]]:
    return provider_rules.list_provider_configs(session)


@router.post(
    "/providers",
    status_code=201,
    response_model=ChatProviderConfig,
    response_model_exclude_none=True,
    summary="Configure a provider (owner role)",
)
def create_provider(
    body: CreateProviderRequest, user: OwnerUser, session: DbSession, box: Secrets
) -> dict[str, Any]:
    row = provider_rules.create_provider(session, box, **create_fields(body), created_by=user.id)
    session.commit()
    return provider_rules.provider_json(row)


@router.patch(
    "/providers/{provider_config}",
    response_model=ChatProviderConfig,
    response_model_exclude_none=True,
    summary="Update a provider (owner role)",
)
def update_provider(
    provider_config: str,
    body: UpdateProviderRequest,
    user: OwnerUser,
    session: DbSession,
    box: Secrets,
) -> dict[str, Any]:
    row = provider_rules.get_provider(session, provider_config)
    provider_rules.update_provider(session, box, row, sent_fields(body))
    session.commit()
    return provider_rules.provider_json(row)


@router.delete(
    "/providers/{provider_config}",
    status_code=204,
    summary="Delete a provider, its model configs and users' keys (owner role)",
)
def delete_provider(provider_config: str, user: OwnerUser, session: DbSession) -> Response:
    row = provider_rules.get_provider(session, provider_config)
    provider_rules.delete_provider(session, row)
    session.commit()
    return Response(status_code=204)
