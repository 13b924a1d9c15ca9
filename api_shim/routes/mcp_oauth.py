"""Per-user OAuth2 for admin MCP servers: connect, callback, disconnect (reference §6.3).

``connect`` sends the browser (a popup) to the authorization server with PKCE; ``callback``
trades the code for tokens and stores them for the calling user, encrypted. The PKCE verifier
travels in the ``state`` parameter, sealed with the deployment's Fernet keys and bound to the
user, the server and a 10-minute expiry, so any API replica can complete the flow.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from mcp.client.auth import PKCEParameters
from sqlmodel import Session

from agentfarm import mcp_oauth
from api_shim.deps import AppSettings, CurrentUser, DbSession, Secrets, parse_uuid
from models.crypto import SecretBox, SecretsUnavailable
from models.errors import ApiError, BadRequest
from models.mcp import rules as mcp_rules
from models.mcp import selection as mcp_selection
from models.mcp.tables import MCPAuthType, MCPServerConfig

router = APIRouter(prefix="/api/experimental/mcp/servers", tags=["mcp"])

STATE_TTL_S = 600
BAD_STATE = "Invalid or missing OAuth2 state parameter."


class BadGateway(ApiError):
    status_code = 502


def _oauth_server(session: Session, raw_id: str) -> MCPServerConfig:
    row = mcp_rules.get_server(
        session, parse_uuid(raw_id, "MCP server config ID"), enabled_only=False
    )
    if not row.enabled:
        raise BadRequest("MCP server is not enabled.")
    if row.auth_type != MCPAuthType.OAUTH2:
        raise BadRequest("MCP server does not use OAuth2 authentication.")
    if not row.oauth2_auth_url or not row.oauth2_token_url:
        raise BadRequest("MCP server OAuth2 authorization URL is not configured.")
    return row


def _client(box: SecretBox, row: MCPServerConfig) -> mcp_oauth.OAuthClient:
    secret = box.decrypt(row.oauth2_client_secret) if row.oauth2_client_secret else ""
    return mcp_oauth.client_for(row, secret)


@router.get("/{mcp_server}/oauth2/connect", summary="Start connecting your account (OAuth2)")
def connect(
    mcp_server: str, user: CurrentUser, session: DbSession, box: Secrets, settings: AppSettings
) -> Response:
    row = _oauth_server(session, mcp_server)
    pkce = PKCEParameters.generate()
    claims = {"s": str(row.id), "u": str(user.id), "v": pkce.code_verifier}
    try:
        state, _ = box.encrypt(json.dumps({**claims, "e": int(time.time()) + STATE_TTL_S}))
    except SecretsUnavailable as exc:
        raise BadRequest("OAuth2 cannot be used: no encryption key is configured.") from exc
    url = mcp_oauth.authorization_url(
        _client(box, row),
        redirect_uri=mcp_oauth.callback_url(settings.access_url, str(row.id)),
        state=state,
        challenge=pkce.code_challenge,
    )
    return RedirectResponse(url, status_code=307)


def _verifier(box: SecretBox, state: str | None, row: MCPServerConfig, user_id: uuid.UUID) -> str:
    try:
        claims: dict[str, Any] = json.loads(box.decrypt(state or ""))
    except (SecretsUnavailable, ValueError):
        raise BadRequest(BAD_STATE) from None
    if (
        claims.get("s") != str(row.id)
        or claims.get("u") != str(user_id)
        or int(claims.get("e", 0)) < time.time()
    ):
        raise BadRequest(BAD_STATE)
    return str(claims["v"])


@router.get("/{mcp_server}/oauth2/callback", summary="Finish connecting your account (OAuth2)")
def callback(
    mcp_server: str,
    user: CurrentUser,
    session: DbSession,
    box: Secrets,
    settings: AppSettings,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    row = _oauth_server(session, mcp_server)
    if error:
        raise BadRequest("OAuth2 authorization failed.", detail=error_description or error)
    if not code:
        raise BadRequest("Missing authorization code.")
    verifier = _verifier(box, state, row, user.id)
    try:
        token = asyncio.run(
            mcp_oauth.exchange_code(
                _client(box, row),
                code=code,
                verifier=verifier,
                redirect_uri=mcp_oauth.callback_url(settings.access_url, str(row.id)),
            )
        )
    except mcp_oauth.OAuthError as exc:
        raise BadGateway(
            "Failed to exchange authorization code for token.", detail=str(exc)
        ) from None
    mcp_selection.store_token(
        session,
        server_id=row.id,
        user_id=user.id,
        access=box.encrypt(token.access_token),
        refresh=box.encrypt(token.refresh_token) if token.refresh_token else ("", None),
        token_type=token.token_type,
        expiry=mcp_oauth.expiry_of(token),
    )
    session.commit()
    server = json.dumps(str(row.id))
    origin = json.dumps(settings.access_url.rstrip("/"))
    page = (
        "<!DOCTYPE html><html><body><script>"
        "if (window.opener) {"
        f'window.opener.postMessage({{type: "mcp-oauth2-complete", serverID: {server}}}, {origin});'
        "window.close();"
        "} else {"
        'document.body.innerText = "Authentication successful. You may close this window.";'
        f"}}</script><noscript>Connected to {html.escape(row.display_name)}.</noscript>"
        "</body></html>"
    )
    return HTMLResponse(page)


@router.delete(
    "/{mcp_server}/oauth2/disconnect", status_code=204, summary="Forget your OAuth2 token"
)
def disconnect(mcp_server: str, user: CurrentUser, session: DbSession) -> Response:
    server_id = parse_uuid(mcp_server, "MCP server config ID")
    mcp_selection.delete_token(session, server_id, user.id)
    session.commit()
    return Response(status_code=204)
