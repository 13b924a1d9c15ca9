"""The prompt layers a deployment and its users set (reference §5.7, §1.10).

Order in a chat's context: the deployment prompt (the built-in default, if included, then the
admin's custom text), the chat's own ``system_prompt`` (API only), the owner's personal custom
prompt, then — at step time — plan-mode instructions, and the workspace's AGENTS.md and
skills. The first three are stored as ``system`` messages (visibility ``model``) when the chat
is created; subagents get the deployment prompt only.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session

from agentfarm.settings import get_settings
from models.base import utcnow
from models.site import text as site_text
from models.site.tables import UserConfig
from models.workspaces import rules as workspace_rules

SYSTEM_PROMPT_KEY = "system_prompt"
USER_PROMPT_KEY = "custom_prompt"


def system_prompt_config(session: Session) -> dict[str, Any]:
    """``{system_prompt, include_default_system_prompt, default_system_prompt}``."""
    stored = workspace_rules.get_setting(session, SYSTEM_PROMPT_KEY) or {}
    return {
        "system_prompt": stored.get("system_prompt", ""),
        "include_default_system_prompt": stored.get("include_default_system_prompt", True),
        "default_system_prompt": get_settings().system_prompt,
    }


def set_system_prompt(session: Session, text: str, include_default: bool | None) -> None:
    """Store the admin's prompt (sanitised, ≤ 128 KiB); the flag changes only when given."""
    current = system_prompt_config(session)
    clean = site_text.checked(text, "System prompt exceeds maximum length.")
    workspace_rules.put_setting(
        session,
        SYSTEM_PROMPT_KEY,
        {
            "system_prompt": clean,
            "include_default_system_prompt": (
                current["include_default_system_prompt"]
                if include_default is None
                else include_default
            ),
        },
    )


def deployment_prompt(session: Session) -> str:
    """The effective deployment prompt: the default (if included) and the custom text."""
    config = system_prompt_config(session)
    parts = [
        config["default_system_prompt"] if config["include_default_system_prompt"] else "",
        config["system_prompt"],
    ]
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def user_prompt(session: Session, user_id: uuid.UUID) -> str:
    row = session.get(UserConfig, (user_id, USER_PROMPT_KEY))
    return row.value if row is not None else ""


def set_user_prompt(session: Session, user_id: uuid.UUID, text: str) -> str:
    clean = site_text.checked(text, "Custom prompt exceeds maximum length.")
    row = session.get(UserConfig, (user_id, USER_PROMPT_KEY))
    if row is None:
        session.add(UserConfig(user_id=user_id, key=USER_PROMPT_KEY, value=clean))
    else:
        row.value = clean
        row.updated_at = utcnow()
    session.flush()
    return clean
