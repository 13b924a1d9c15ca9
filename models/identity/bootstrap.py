"""First-start seeding: the default organization, users, and the dev model provider."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, select

from agentfarm.settings import experiment_enabled, get_settings
from models.crypto import SecretBox
from models.errors import Conflict
from models.identity import rbac
from models.identity.tables import Organization, OrganizationMember, User
from models.providers.tables import ChatModelConfig, ChatProvider

DEFAULT_ORG_NAME = "coder"


def default_organization(session: Session) -> Organization:
    """The default organization, created on first use."""
    org = session.exec(select(Organization).where(Organization.is_default)).first()
    if org is None:
        org = Organization(name=DEFAULT_ORG_NAME, display_name="Default", is_default=True)
        session.add(org)
        session.flush()
    return org


def create_user(
    session: Session,
    *,
    username: str,
    email: str | None = None,
    name: str = "",
    roles: list[str] | None = None,
    organization: Organization | None = None,
    login_type: str = "password",
) -> User:
    """Create a user who is a member of ``organization`` (default: the default organization).

    Without ``roles`` the user gets the initial site roles under this process's settings:
    ``member``, plus ``agents-access`` while the ``agents`` experiment is enabled unless the
    login type has role sync (``models.identity.rbac.initial_site_roles``).
    """
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise Conflict(f"User {username!r} already exists.")
    if roles is None:
        settings = get_settings()
        roles = rbac.initial_site_roles(
            login_type,
            agents_experiment=experiment_enabled(settings, "agents"),
            oidc_role_sync=settings.oidc_role_sync,
        )
    org = organization or default_organization(session)
    user = User(
        username=username,
        email=email or f"{username}@agentfarm.local",
        name=name,
        login_type=login_type,
        rbac_roles=roles,
    )
    session.add(user)
    session.flush()
    session.add(OrganizationMember(organization_id=org.id, user_id=user.id))
    session.flush()
    return user


def ensure_provider(
    session: Session,
    box: SecretBox,
    *,
    provider: str,
    base_url: str,
    api_key: str,
    display_name: str = "",
    created_by: uuid.UUID | None = None,
) -> ChatProvider:
    """Create or update a provider row, storing the key encrypted."""
    row = session.exec(select(ChatProvider).where(ChatProvider.provider == provider)).first()
    if row is None:
        row = ChatProvider(provider=provider, created_by=created_by)
        session.add(row)
    row.display_name = display_name
    row.base_url = base_url
    row.api_key, row.api_key_key_id = box.encrypt(api_key) if api_key else ("", None)
    session.flush()
    return row


def ensure_default_model(
    session: Session,
    *,
    provider: str,
    model: str,
    display_name: str,
    context_limit: int,
    options: dict[str, Any] | None = None,
) -> ChatModelConfig:
    """Create the model config if missing, and make it the default when none is."""
    row = session.exec(
        select(ChatModelConfig).where(
            ChatModelConfig.provider == provider,
            ChatModelConfig.model == model,
            ChatModelConfig.deleted.is_(False),  # type: ignore[attr-defined]
        )
    ).first()
    has_default = session.exec(
        select(ChatModelConfig).where(
            ChatModelConfig.is_default,
            ChatModelConfig.deleted.is_(False),  # type: ignore[attr-defined]
        )
    ).first()
    if row is None:
        row = ChatModelConfig(
            provider=provider,
            model=model,
            display_name=display_name,
            context_limit=context_limit,
            options=options or {},
            is_default=has_default is None,
        )
        session.add(row)
    elif has_default is None:
        row.is_default = True
    session.flush()
    return row


# Prices of the scripted dev model, so that cost accounting is visible in a dev farm.
SCRIPTED_MODEL_OPTIONS: dict[str, Any] = {
    "max_output_tokens": 4096,
    "cost": {
        "input_price_per_million_tokens": 1.0,
        "output_price_per_million_tokens": 2.0,
    },
}


def seed_scripted_model(
    session: Session, box: SecretBox, *, base_url: str, created_by: uuid.UUID | None = None
) -> ChatModelConfig:
    """Register the scripted model server as the ``openai-compat`` provider and default model."""
    ensure_provider(
        session,
        box,
        provider="openai-compat",
        base_url=base_url,
        api_key="scripted-dev-key",
        display_name="Scripted model server",
        created_by=created_by,
    )
    return ensure_default_model(
        session,
        provider="openai-compat",
        model="scripted",
        display_name="Scripted",
        context_limit=128_000,
        options=SCRIPTED_MODEL_OPTIONS,
    )
