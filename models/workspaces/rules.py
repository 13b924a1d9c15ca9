"""Templates, workspaces and deployment settings: validation and queries (no broker)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.base import utcnow
from models.errors import BadRequest, Conflict
from models.workspaces.tables import (
    MAX_TEMPLATE_DESCRIPTION,
    NetworkPolicy,
    SiteConfig,
    Template,
    Workspace,
    WorkspaceStatus,
)

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
MIN_TTL_MS = 60_000
MAX_TTL_MS = 30 * 24 * 3600 * 1000
WORKSPACE_TTL_KEY = "workspace_ttl_ms"
TEMPLATE_ALLOWLIST_KEY = "template_allowlist"


def validate_name(name: Any, what: str = "Name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadRequest(
            f"Invalid {what.lower()}.",
            validations=[
                {
                    "field": what.lower(),
                    "detail": "Must be 1-64 lowercase letters, digits or dashes, "
                    "starting and ending with a letter or digit.",
                }
            ],
        )
    return name


def validate_ttl_ms(value: int | None) -> int | None:
    """Coder's workspace TTL rules: 0 disables, else between 1 minute and 30 days."""
    if value is None:
        return None
    if value < 0:
        raise BadRequest("Workspace TTL must be non-negative.")
    if 0 < value < MIN_TTL_MS:
        raise BadRequest("Workspace TTL must not be less than 1 minute.")
    if value > MAX_TTL_MS:
        raise BadRequest("Workspace TTL must not exceed 30 days.")
    return value


def create_template(
    session: Session,
    *,
    organization_id: uuid.UUID,
    name: str,
    display_name: str = "",
    description: str = "",
    readme: str = "",
    sandbox: bool = False,
    network_policy: str = NetworkPolicy.OPEN,
    autostop_ttl_ms: int | None = None,
    created_by: uuid.UUID | None = None,
) -> Template:
    """Insert a template after validating it (400s in Coder's envelope; 409 on a duplicate)."""
    validate_name(name)
    if len(description) > MAX_TEMPLATE_DESCRIPTION:
        raise BadRequest(f"Description must be at most {MAX_TEMPLATE_DESCRIPTION} characters.")
    if network_policy not in (NetworkPolicy.OPEN, NetworkPolicy.NONE):
        raise BadRequest("Invalid network_policy.", detail='Must be "open" or "none".')
    validate_ttl_ms(autostop_ttl_ms)
    exists = session.exec(
        select(Template).where(Template.organization_id == organization_id, Template.name == name)
    ).first()
    if exists is not None:
        raise Conflict("Template already exists.", detail=f"A template named {name!r} exists.")
    template = Template(
        organization_id=organization_id,
        name=name,
        display_name=display_name,
        description=description,
        readme=readme,
        sandbox=sandbox,
        network_policy=network_policy,
        autostop_ttl_ms=autostop_ttl_ms or None,
        created_by=created_by,
    )
    session.add(template)
    session.flush()
    return template


# Site settings read by the worker's tool set and written by the admin config routes.
PLAN_INSTRUCTIONS_KEY = "plan_mode_instructions"
DESKTOP_ENABLED_KEY = "desktop_enabled"


def get_setting(session: Session, key: str) -> dict[str, Any] | None:
    row = session.get(SiteConfig, key)
    return row.value if row is not None else None


def put_setting(session: Session, key: str, value: dict[str, Any]) -> None:
    row = session.get(SiteConfig, key)
    if row is None:
        session.add(SiteConfig(key=key, value=value))
    else:
        row.value = value
        row.updated_at = utcnow()
    session.flush()


def workspace_ttl_ms(session: Session, fallback: int = 0) -> int:
    value = get_setting(session, WORKSPACE_TTL_KEY)
    return int(value["workspace_ttl_ms"]) if value else fallback


def usable_templates(session: Session, organization_id: uuid.UUID) -> list[Template]:
    """Templates the agent may use in an organization: allowlist applied, most used first."""
    allow = get_setting(session, TEMPLATE_ALLOWLIST_KEY) or {}
    ids = {uuid.UUID(i) for i in allow.get("template_ids", [])}
    usage = (
        select(Workspace.template_id, sa.func.count().label("n"))
        .group_by(Workspace.template_id)  # type: ignore[arg-type]
        .subquery()
    )
    stmt = (
        select(Template)
        .outerjoin(usage, usage.c.template_id == Template.id)
        .where(Template.organization_id == organization_id, Template.deprecated.is_(False))  # type: ignore[attr-defined]
        .order_by(sa.desc(sa.func.coalesce(usage.c.n, 0)), sa.asc(Template.name))
    )
    templates = list(session.exec(stmt))
    return [t for t in templates if not ids or t.id in ids]


def is_live(workspace: Workspace) -> bool:
    return workspace.status in (WorkspaceStatus.PENDING, WorkspaceStatus.RUNNING)
