"""Deployment chat settings that shape a turn: plan-mode instructions and the virtual desktop
toggle (reference §1.10). Changing them needs the owner role."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api_shim.deps import CurrentUser, DbSession, require_owner
from models import site_text, workspace_rules
from models.enums import SiteRole
from models.errors import NotFound
from workers.plan_mode import PLAN_INSTRUCTIONS_KEY
from workers.toolset import DESKTOP_ENABLED_KEY

router = APIRouter(prefix="/api/experimental/chats/config", tags=["config"])


class PlanModeInstructions(BaseModel):
    plan_mode_instructions: str = ""


class DesktopEnabled(BaseModel):
    enable_desktop: bool = False


@router.get("/plan-mode-instructions", summary="Plan-mode instructions (owner role)")
def get_plan_mode_instructions(user: CurrentUser, session: DbSession) -> PlanModeInstructions:
    if SiteRole.OWNER not in (user.rbac_roles or []):
        # Coder answers 404 to users who may not read deployment config.
        raise NotFound("Resource not found or you do not have access to this resource")
    value = workspace_rules.get_setting(session, PLAN_INSTRUCTIONS_KEY) or {}
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
    workspace_rules.put_setting(session, PLAN_INSTRUCTIONS_KEY, {"plan_mode_instructions": text})
    session.commit()
    return Response(status_code=204)


@router.get("/desktop-enabled", summary="Whether computer-use subagents may use a desktop")
def get_desktop_enabled(user: CurrentUser, session: DbSession) -> DesktopEnabled:
    value = workspace_rules.get_setting(session, DESKTOP_ENABLED_KEY) or {}
    return DesktopEnabled(enable_desktop=bool(value.get("enable_desktop")))


@router.put("/desktop-enabled", status_code=204, summary="Turn the virtual desktop on or off")
def put_desktop_enabled(body: DesktopEnabled, user: CurrentUser, session: DbSession) -> Response:
    require_owner(user)
    workspace_rules.put_setting(
        session, DESKTOP_ENABLED_KEY, {"enable_desktop": body.enable_desktop}
    )
    session.commit()
    return Response(status_code=204)
