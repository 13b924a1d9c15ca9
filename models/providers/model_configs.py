"""Model configs (reference §1.10, §2.4): create, update, soft delete, exactly one default.

The partial unique index ``idx_chat_model_configs_single_default`` allows one live default.
Every write first takes one transaction-scoped advisory lock and re-reads its row, so writes
run one after the other: two concurrent "make this the default" requests neither fail on the
index nor deadlock on each other's rows, and none acts on a stale ``is_default``.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.base import utcnow
from models.chat.wire import ts
from models.errors import BadRequest, NotFound
from models.providers import model_options, pricing
from models.providers.rules import NOT_FOUND, parse_provider
from models.providers.tables import ChatModelConfig, ChatProvider

DEFAULT_COMPRESSION_THRESHOLD = 70
# pg_advisory_xact_lock key serialising changes of the default model ("afdm").
_DEFAULT_LOCK = 0x6166646D

_live = ChatModelConfig.deleted.is_(False)  # type: ignore[attr-defined]


def get_model_config(session: Session, raw_id: str) -> ChatModelConfig:
    """A live model config by id: 400 for a malformed id, 404 for an unknown or deleted one."""
    try:
        config_id = uuid.UUID(raw_id)
    except ValueError:
        raise BadRequest("Invalid chat model config ID.") from None
    row = session.get(ChatModelConfig, config_id)
    if row is None or row.deleted:
        raise NotFound(NOT_FOUND)
    return row


def list_model_configs(session: Session, *, enabled_only: bool) -> list[ChatModelConfig]:
    """Live model configs (only enabled ones for non-admins), by provider then model."""
    stmt = select(ChatModelConfig).where(_live)
    if enabled_only:
        stmt = stmt.where(ChatModelConfig.enabled)
    return list(
        session.exec(
            stmt.order_by(
                ChatModelConfig.provider,
                ChatModelConfig.model,
                ChatModelConfig.created_at,  # type: ignore[arg-type]
            )
        ).all()
    )


def _require_provider_row(session: Session, provider: str) -> None:
    if (
        session.exec(select(ChatProvider.id).where(ChatProvider.provider == provider)).first()
        is None
    ):
        raise BadRequest("Chat provider is not configured.")


def _check_threshold(value: int) -> int:
    if not 0 <= value <= 100:
        raise BadRequest("Invalid compression threshold.")
    return value


def _lock_writes(session: Session, row: ChatModelConfig | None = None) -> None:
    """Serialise model-config writes (until commit) and refresh ``row`` under the lock."""
    session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DEFAULT_LOCK})
    if row is not None:
        session.refresh(row)


def _make_default(session: Session, row: ChatModelConfig) -> None:
    """Make ``row`` the one default, clearing the previous one (caller holds the lock)."""
    session.execute(
        sa.update(ChatModelConfig)
        .where(ChatModelConfig.is_default, _live, ChatModelConfig.id != row.id)  # type: ignore[arg-type]
        .values(is_default=False, updated_at=sa.func.now())
    )
    row.is_default = True
    session.flush()


def _hand_over_default(session: Session, row: ChatModelConfig) -> bool:
    """Move the default from ``row`` to another live model (enabled ones first, then the
    oldest). False when there is none: ``row`` stays the default, as one is kept while any
    model exists. The caller holds the lock."""
    successor = session.exec(
        select(ChatModelConfig)
        .where(_live, ChatModelConfig.id != row.id)
        .order_by(ChatModelConfig.enabled.desc(), ChatModelConfig.created_at)  # type: ignore[arg-type, attr-defined]
        .limit(1)
    ).first()
    if successor is None:
        return False
    row.is_default = False
    session.flush()
    successor.is_default = True
    successor.updated_at = utcnow()
    session.flush()
    return True


def create_model_config(
    session: Session,
    *,
    provider: str | None,
    model: str | None,
    display_name: str = "",
    enabled: bool = True,
    is_default: bool = False,
    context_limit: int | None = None,
    compression_threshold: int | None = None,
    call_config: model_options.ChatModelCallConfig | None = None,
    created_by: uuid.UUID | None = None,
) -> ChatModelConfig:
    """Validate and insert a model config; the first live model becomes the default."""
    name = parse_provider(provider)
    model_name = (model or "").strip()
    if not model_name:
        raise BadRequest("Model is required.")
    if context_limit is None:
        raise BadRequest("Context limit is required.")
    if context_limit <= 0:
        raise BadRequest("context_limit must be greater than zero.")
    threshold = _check_threshold(
        DEFAULT_COMPRESSION_THRESHOLD if compression_threshold is None else compression_threshold
    )
    options, cost_is_default = pricing.with_default_cost(
        name, model_name, model_options.normalize_call_config(call_config)
    )
    _require_provider_row(session, name)
    _lock_writes(session)
    row = ChatModelConfig(
        provider=name,
        model=model_name,
        display_name=(display_name or "").strip(),
        enabled=enabled,
        is_default=False,
        context_limit=context_limit,
        compression_threshold=threshold,
        options=options,
        cost_is_default=cost_is_default,
        created_by=created_by,
        updated_by=created_by,
    )
    session.add(row)
    session.flush()
    has_default = session.exec(
        select(ChatModelConfig.id).where(ChatModelConfig.is_default, _live)
    ).first()
    if is_default or has_default is None:
        _make_default(session, row)
    return row


def update_model_config(
    session: Session, row: ChatModelConfig, changes: dict[str, Any], updated_by: uuid.UUID | None
) -> ChatModelConfig:
    """Apply a PATCH: only keys present in ``changes`` (and not None) are touched."""
    _lock_writes(session, row)
    if row.deleted:
        raise NotFound(NOT_FOUND)
    repriced = False
    if changes.get("provider") is not None:
        name = parse_provider(changes["provider"])
        if name != row.provider:
            _require_provider_row(session, name)
            row.provider, repriced = name, True
    if changes.get("model") is not None:
        model_name = changes["model"].strip()
        if not model_name:
            raise BadRequest("Model is required.")
        repriced = repriced or model_name != row.model
        row.model = model_name
    if changes.get("display_name") is not None:
        row.display_name = changes["display_name"].strip()
    if changes.get("enabled") is not None:
        row.enabled = bool(changes["enabled"])
    if changes.get("context_limit") is not None:
        if changes["context_limit"] <= 0:
            raise BadRequest("Context limit must be greater than zero.")
        row.context_limit = changes["context_limit"]
    if changes.get("compression_threshold") is not None:
        row.compression_threshold = _check_threshold(changes["compression_threshold"])
    if "call_config" in changes:
        row.options, row.cost_is_default = pricing.with_default_cost(
            row.provider, row.model, model_options.normalize_call_config(changes["call_config"])
        )
    elif repriced and row.cost_is_default:
        # Default prices belong to the old model: look them up again for the new one.
        blank = {k: v for k, v in (row.options or {}).items() if k != "cost"}
        row.options, row.cost_is_default = pricing.with_default_cost(row.provider, row.model, blank)
    row.updated_by = updated_by
    row.updated_at = utcnow()
    session.flush()
    if changes.get("is_default") is True:
        _make_default(session, row)
    elif changes.get("is_default") is False and row.is_default:
        # Unsetting the default promotes another model; [inferred] the only model keeps it.
        _hand_over_default(session, row)
    return row


def delete_model_config(session: Session, row: ChatModelConfig) -> None:
    """Soft delete; a deleted default hands the role to another live model."""
    _lock_writes(session, row)
    if row.deleted:
        raise NotFound(NOT_FOUND)
    if row.is_default:
        _hand_over_default(session, row)
    row.deleted = True
    row.deleted_at = utcnow()
    row.is_default = False
    row.updated_at = utcnow()
    session.flush()


def model_config_json(row: ChatModelConfig) -> dict[str, Any]:
    """ChatModelConfig on the wire, plus agentfarm's ``pricing_source``."""
    return {
        "id": str(row.id),
        "provider": row.provider,
        "model": row.model,
        "display_name": row.display_name,
        "enabled": row.enabled,
        "is_default": row.is_default,
        "context_limit": row.context_limit,
        "compression_threshold": row.compression_threshold,
        "model_config": row.options or {},
        # agentfarm extension: where model_config.cost came from — "admin" (typed by an
        # admin), "litellm_default" (left blank, filled from litellm's price map) or
        # "unpriced" (no input or output price: messages on this model cost NULL).
        "pricing_source": pricing.pricing_source(row),
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
    }
