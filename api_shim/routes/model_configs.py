"""``/api/experimental/chats/model-configs``: the models chats can use (reference §1.10).

Anyone may list them (non-admins see enabled ones only); writes need the owner role.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from api_shim.deps import ADMIN_ROLES, CurrentUser, DbSession, OwnerUser
from api_shim.request_bodies import create_fields, sent_fields
from models.providers import model_configs
from models.providers.model_options import ChatModelCallConfig

router = APIRouter(prefix="/api/experimental/chats", tags=["model configs"])

CALL_CONFIG_DOC = (
    "ChatModelCallConfig: max_output_tokens, temperature, top_p, top_k, presence_penalty, "
    "frequency_penalty, cost (USD per 1M tokens), provider_options. Blank cost: prices from "
    "litellm's bundled price map, when it has the model."
)


class ChatModelConfigOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    provider: str
    model: str
    display_name: str
    enabled: bool
    is_default: bool
    context_limit: int
    compression_threshold: int
    call_config: ChatModelCallConfig = Field(alias="model_config", description=CALL_CONFIG_DOC)
    pricing_source: Literal["admin", "litellm_default", "unpriced"] = Field(
        description="agentfarm extension: where model_config.cost came from."
    )
    created_at: str
    updated_at: str


class CreateModelConfigRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    provider: str = ""
    model: str = ""
    display_name: str = ""
    enabled: bool = True
    is_default: bool = Field(default=False, description="The first model is always the default.")
    context_limit: int | None = None
    compression_threshold: int | None = Field(default=None, description="0–100; default 70.")
    call_config: ChatModelCallConfig | None = Field(
        default=None, alias="model_config", description=CALL_CONFIG_DOC
    )


class UpdateModelConfigRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    provider: str | None = None
    model: str | None = None
    display_name: str | None = None
    enabled: bool | None = None
    is_default: bool | None = Field(default=None, description="false hands it to another model.")
    context_limit: int | None = None
    compression_threshold: int | None = None
    call_config: ChatModelCallConfig | None = Field(
        default=None, alias="model_config", description="Replaces the whole call config."
    )


@router.get(
    "/model-configs",
    response_model=list[ChatModelConfigOut],
    response_model_exclude_none=True,
    summary="Model configs (admins see all, others the enabled ones)",
)
def list_model_configs(user: CurrentUser, session: DbSession) -> list[dict[str, Any]]:
    admin = bool(set(user.rbac_roles or []) & ADMIN_ROLES)
    rows = model_configs.list_model_configs(session, enabled_only=not admin)
    return [model_configs.model_config_json(r) for r in rows]


@router.post(
    "/model-configs",
    status_code=201,
    response_model=ChatModelConfigOut,
    response_model_exclude_none=True,
    summary="Add a model config (owner role)",
)
def create_model_config(
    body: CreateModelConfigRequest, user: OwnerUser, session: DbSession
) -> dict[str, Any]:
    row = model_configs.create_model_config(session, **create_fields(body), created_by=user.id)
    session.commit()
    return model_configs.model_config_json(row)


@router.patch(
    "/model-configs/{model_config}",
    response_model=ChatModelConfigOut,
    response_model_exclude_none=True,
    summary="Update a model config (owner role)",
)
def update_model_config(
    model_config: str, body: UpdateModelConfigRequest, user: OwnerUser, session: DbSession
) -> dict[str, Any]:
    row = model_configs.get_model_config(session, model_config)
    model_configs.update_model_config(session, row, sent_fields(body), user.id)
    session.commit()
    return model_configs.model_config_json(row)


@router.delete(
    "/model-configs/{model_config}",
    status_code=204,
    summary="Delete a model config (soft; owner role)",
)
def delete_model_config(model_config: str, user: OwnerUser, session: DbSession) -> Response:
    row = model_configs.get_model_config(session, model_config)
    model_configs.delete_model_config(session, row)
    session.commit()
    return Response(status_code=204)
