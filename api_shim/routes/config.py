"""Deployment chat settings that shape a turn (reference §1.10): the system prompt, plan-mode
instructions, the template allowlist, the virtual desktop toggle — changing them needs the
owner role — and each user's own custom prompt."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlmodel import select

from api_shim.deps import CurrentUser, DbSession, require_owner
from models.enums import SiteRole
from models.errors import BadRequest, NotFound
from models.identity.tables import User
from models.site import prompts
from models.site import text as site_text
from models.workspaces import rules as workspace_rules
from models.workspaces.tables import Template

router = APIRouter(prefix="/api/experimental/chats/config", tags=["config"])


class PlanModeInstructions(BaseModel):
    plan_mode_instructions: str = ""


class DesktopEnabled(BaseModel):
    enable_desktop: bool = False


class SystemPromptIn(BaseModel):
    system_prompt: str = ""
    include_default_system_prompt: bool | None = None


class SystemPromptOut(BaseModel):
    system_prompt: str
    include_default_system_prompt: bool
    default_system_prompt: str


class UserPrompt(BaseModel):
    custom_prompt: str = ""


class TemplateAllowlist(BaseModel):
    template_ids: list[str] = []


def _hidden_unless_owner(user: User) -> None:
    """Coder answers 404 to users who may not read deployment config (its existence hidden)."""
    if SiteRole.OWNER not in (user.rbac_roles or []):
        raise NotFound("Resource not found or you do not have access to this resource")


@router.get("/system-prompt", summary="Deployment system prompt (owner role)")
def get_system_prompt(user: CurrentUser, session: DbSession) -> SystemPromptOut:
    _hidden_unless_owner(user)
    return SystemPromptOut(**prompts.system_prompt_config(session))


@router.put("/system-prompt", status_code=204, summary="Set the deployment system prompt")
def put_system_prompt(body: SystemPromptIn, user: CurrentUser, session: DbSession) -> Response:
    require_owner(user)
    prompts.set_system_prompt(session, body.system_prompt, body.include_default_system_prompt)
    session.commit()
    return Response(status_code=204)


@router.get("/user-prompt", summary="Your personal custom prompt")
def get_user_prompt(user: CurrentUser, session: DbSession) -> UserPrompt:
    return UserPrompt(custom_prompt=prompts.user_prompt(session, user.id))


@router.put("/user-prompt", summary="Set your personal custom prompt (added to new chats)")
def put_user_prompt(body: UserPrompt, user: CurrentUser, session: DbSession) -> UserPrompt:
    saved = prompts.set_user_prompt(session, user.id, body.custom_prompt)
    session.commit()
    return UserPrompt(custom_prompt=saved)


@router.get("/template-allowlist", summary="Templates the agent may use (owner role)")
def get_template_allowlist(user: CurrentUser, session: DbSession) -> TemplateAllowlist:
    _hidden_unless_owner(user)
    value = workspace_rules.get_setting(session, workspace_rules.TEMPLATE_ALLOWLIST_KEY) or {}
    return TemplateAllowlist(template_ids=value.get("template_ids", []))


@router.put(
    "/template-allowlist",
    status_code=204,
    summary="Set the templates the agent may use (empty: every template)",
)
def put_template_allowlist(
    body: TemplateAllowlist, user: CurrentUser, session: DbSession
) -> Response:
    require_owner(user)
    ids: list[str] = []
    for raw in body.template_ids:
        try:
            value = str(uuid.UUID(str(raw).strip())).lower()
        except ValueError:
            raise BadRequest("Invalid template ID in allowlist.") from None
        if value not in ids:
            ids.append(value)
    if ids:
        found: Any = session.exec(
            select(Template.id).where(
                Template.id.in_([uuid.UUID(i) for i in ids]),  # type: ignore[attr-defined]
                Template.deprecated.is_(False),  # type: ignore[attr-defined]
            )
        ).all()
        if len(found) != len(ids):
            raise BadRequest("One or more templates not found or deprecated.")
    workspace_rules.put_setting(
        session, workspace_rules.TEMPLATE_ALLOWLIST_KEY, {"template_ids": ids}
    )
    session.commit()
    return Response(status_code=204)


@router.get("/plan-mode-instructions", summary="Plan-mode instructions (owner role)")
def get_plan_mode_instructions(user: CurrentUser, session: DbSession) -> PlanModeInstructions:
    _hidden_unless_owner(user)
    value = workspace_rules.get_setting(session, workspace_rules.PLAN_INSTRUCTIONS_KEY) or {}
    return PlanModeInstructions(plan_mode_instructions=value.get("plan_mode_instructions", ""))


@router.put(
    "/plan-mode-instructions",
    status_code=204,
    summary="Set the instructions added to every plan-mode turn (owner role)",
)
def put_plan_mode_instructions(
    body: PlanModeInstructions, user: CurrentUser, session: DbSession
) -> Response:
    require_owner(user)
    text = site_text.checked(
        body.plan_mode_instructions, "Plan mode instructions exceed maximum length."
    )
    workspace_rules.put_setting(
        session, workspace_rules.PLAN_INSTRUCTIONS_KEY, {"plan_mode_instructions": text}
    )
    session.commit()
    return Response(status_code=204)


@router.get("/desktop-enabled", summary="Whether computer-use subagents may use a desktop")
def get_desktop_enabled(user: CurrentUser, session: DbSession) -> DesktopEnabled:
    value = workspace_rules.get_setting(session, workspace_rules.DESKTOP_ENABLED_KEY) or {}
    return DesktopEnabled(enable_desktop=bool(value.get("enable_desktop")))


@router.put("/desktop-enabled", status_code=204, summary="Turn the virtual desktop on or off")
def put_desktop_enabled(body: DesktopEnabled, user: CurrentUser, session: DbSession) -> Response:
    require_owner(user)
    workspace_rules.put_setting(
        session, workspace_rules.DESKTOP_ENABLED_KEY, {"enable_desktop": body.enable_desktop}
    )
    session.commit()
    return Response(status_code=204)
