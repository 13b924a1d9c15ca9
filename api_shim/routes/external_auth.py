"""``/api/v2/external-auth``: the configured git providers and the caller's linked tokens.

Coder links external auth through OAuth; agentfarm has no OAuth app, so a user links a
personal access token instead ([inferred] agentfarm extension):

    PUT    /api/v2/external-auth/{externalauth}/token   {"access_token": "ghp_…"}  → 204
    DELETE /api/v2/external-auth/{externalauth}                                     → 200

``GET /api/v2/external-auth`` lists providers and the caller's links and
``GET /api/v2/external-auth/{externalauth}`` says whether the caller is authenticated, in
Coder's shapes. The token is stored encrypted and never returned.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from agentfarm import external_auth
from api_shim.deps import CurrentUser, DbSession, Secrets
from models.errors import NotFound
from models.insights import git_links

router = APIRouter(prefix="/api/v2/external-auth", tags=["external auth"])


class LinkTokenRequest(BaseModel):
    access_token: str | None = None


def _provider(provider_id: str) -> external_auth.ExternalAuthConfig:
    for config in external_auth.configured():
        if config.id == provider_id:
            return config
    raise NotFound(f'External auth provider "{provider_id}" is not configured.')


def _provider_json(config: external_auth.ExternalAuthConfig) -> dict[str, Any]:
    return {
        "id": config.id,
        "type": config.type,
        "device": False,
        "display_name": config.display_name,
        "display_icon": config.display_icon,
        "allow_refresh": False,
        "allow_validate": False,
    }


@router.get("", summary="Git providers, and the caller's linked tokens")
def list_external_auth(user: CurrentUser, session: DbSession) -> dict[str, Any]:
    configs = external_auth.configured()
    links = git_links.links_of(session, user.id)
    known = {c.id for c in configs}
    return {
        "providers": [_provider_json(c) for c in configs],
        "links": [git_links.link_json(r) for pid, r in sorted(links.items()) if pid in known],
    }


@router.get("/{externalauth}", summary="Whether the caller has linked this provider")
def get_external_auth(externalauth: str, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    config = _provider(externalauth)
    linked = externalauth in git_links.links_of(session, user.id)
    return {
        "authenticated": linked,
        "device": False,
        "display_name": config.display_name,
        "user": None,
        "app_installable": False,
        "installations": [],
        "app_install_url": "",
    }


@router.put("/{externalauth}/token", status_code=204, summary="Link a personal access token")
def link_token(
    externalauth: str, body: LinkTokenRequest, user: CurrentUser, session: DbSession, box: Secrets
) -> None:
    _provider(externalauth)
    git_links.link_token(
        session, box, provider_id=externalauth, user_id=user.id, token=body.access_token or ""
    )
    session.commit()


@router.delete("/{externalauth}", summary="Unlink the caller's token")
def unlink_token(externalauth: str, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    _provider(externalauth)
    if not git_links.unlink(session, provider_id=externalauth, user_id=user.id):
        raise NotFound("You have not linked this external auth provider.")
    session.commit()
    # Coder's shape; a pasted token cannot be revoked at the provider from here.
    return {"token_revoked": False, "token_revocation_error": ""}
