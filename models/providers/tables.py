"""LLM providers, model configs and users' own provider keys (reference §2.4)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import (
    bool_field,
    created_at,
    fk_uuid,
    int_field,
    jsonb,
    text_field,
    tstz,
    updated_at,
    uuid_pk,
)
from models.enums import PROVIDERS

_PROVIDER_CHECK = "provider IN (" + ", ".join(f"'{p}'" for p in PROVIDERS) + ")"


class ChatProvider(SQLModel, table=True):
    __tablename__ = "chat_providers"
    __table_args__ = (
        sa.CheckConstraint(_PROVIDER_CHECK, name="chat_providers_provider_check"),
        sa.CheckConstraint(
            "(central_api_key_enabled OR allow_user_api_key) AND "
            "(NOT allow_central_api_key_fallback OR "
            "(central_api_key_enabled AND allow_user_api_key))",
            name="valid_credential_policy",
        ),
        sa.Index("idx_chat_providers_enabled", "enabled"),
    )

    id: uuid.UUID = uuid_pk()
    provider: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    display_name: str = text_field("")
    # Fernet ciphertext of the key ('' when none); never returned by the API.
    api_key: str = text_field("")
    # Digest of the encryption key that produced api_key (NULL: no key stored).
    api_key_key_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_by: uuid.UUID | None = fk_uuid("users.id", ondelete="SET NULL")
    enabled: bool = bool_field(True)
    base_url: str = text_field("")
    central_api_key_enabled: bool = bool_field(True)
    allow_user_api_key: bool = bool_field(False)
    allow_central_api_key_fallback: bool = bool_field(False)
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class ChatModelConfig(SQLModel, table=True):
    __tablename__ = "chat_model_configs"
    __table_args__ = (
        sa.CheckConstraint("context_limit > 0", name="chat_model_configs_context_limit_check"),
        sa.CheckConstraint(
            "compression_threshold >= 0 AND compression_threshold <= 100",
            name="chat_model_configs_compression_threshold_check",
        ),
        sa.Index("idx_chat_model_configs_enabled", "enabled"),
        sa.Index("idx_chat_model_configs_provider_model", "provider", "model"),
        sa.Index(
            "idx_chat_model_configs_single_default",
            sa.text("(1)"),
            unique=True,
            postgresql_where=sa.text("is_default AND NOT deleted"),
        ),
    )

    id: uuid.UUID = uuid_pk()
    provider: str = Field(
        sa_column=sa.Column(
            sa.Text, sa.ForeignKey("chat_providers.provider", ondelete="CASCADE"), nullable=False
        )
    )
    model: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    display_name: str = text_field("")
    created_by: uuid.UUID | None = fk_uuid("users.id", ondelete="SET NULL")
    updated_by: uuid.UUID | None = fk_uuid("users.id", ondelete="SET NULL")
    enabled: bool = bool_field(True)
    is_default: bool = bool_field(False)
    deleted: bool = bool_field(False)
    deleted_at: datetime | None = tstz()
    context_limit: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    compression_threshold: int = int_field(70)
    # ChatModelCallConfig: max_output_tokens, temperature, ..., cost{...per_million_tokens}.
    options: dict[str, Any] = jsonb({}, "{}")
    # agentfarm extension: options.cost was filled from litellm's bundled price map because
    # the admin left it blank (see models.pricing); shown as ``pricing_source`` on the wire.
    cost_is_default: bool = bool_field(False)
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


class UserChatProviderKey(SQLModel, table=True):
    """A user's own API key for one provider (BYOK, reference §2.4)."""

    __tablename__ = "user_chat_provider_keys"
    __table_args__ = (
        sa.CheckConstraint("api_key <> ''", name="user_chat_provider_keys_api_key_check"),
        sa.UniqueConstraint(
            "user_id",
            "chat_provider_id",
            name="user_chat_provider_keys_user_id_chat_provider_id_key",
        ),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = fk_uuid("users.id", ondelete="CASCADE", nullable=False)
    chat_provider_id: uuid.UUID = fk_uuid("chat_providers.id", ondelete="CASCADE", nullable=False)
    # Fernet ciphertext of the key; never returned by the API.
    api_key: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # Digest of the encryption key that produced api_key.
    api_key_key_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()
