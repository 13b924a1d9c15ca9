"""OAuth2 for admin MCP servers, on the official MCP SDK's auth building blocks.

The SDK's ``OAuthClientProvider`` drives a whole interactive flow inside one process (it awaits
the browser's callback). The farm's flow spans two HTTP requests that may reach different API
replicas (``…/oauth2/connect`` then ``…/oauth2/callback``) plus token refreshes on workers, so
it is assembled from the SDK's public pieces instead: RFC 9728 protected-resource discovery,
RFC 8414 authorization-server discovery, RFC 7591 dynamic registration, PKCE and the token
model. Only the two token-endpoint POSTs (code exchange, refresh) are built here.

Pure network code: no database. Used by the API (discovery, connect, callback) and by workers
(refresh before a call).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlparse

import httpx2
from mcp.client.auth import OAuthFlowError, OAuthRegistrationError, OAuthTokenError
from mcp.client.auth.oauth2 import check_registration_usable
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    create_client_registration_request,
    create_oauth_metadata_request,
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
    get_client_metadata_scopes,
    handle_auth_metadata_response,
    handle_protected_resource_response,
    handle_registration_response,
    handle_token_response_scopes,
    issuers_match,
)
from mcp.shared.auth import OAuthClientMetadata, OAuthMetadata, OAuthToken
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url
from pydantic import AnyUrl

# Refresh a token this long before it expires (reference §6.3).
EXPIRY_BUFFER = timedelta(seconds=10)
GRANT_TYPES = ["authorization_code", "refresh_token"]
CLIENT_NAME = "agentfarm"


class OAuthError(Exception):
    """Discovery, registration or a token request failed; the message says which and why."""


@dataclass(frozen=True)
class OAuthClient:
    """The farm's OAuth2 client at one MCP server's authorization server."""

    client_id: str
    client_secret: str
    auth_url: str
    token_url: str
    scopes: str = ""
    token_auth_method: str = ""  # '' = client_secret_post with a secret, else none
    resource: str = ""  # RFC 8707 resource indicator; '' = not sent


def client_for(config: Any, client_secret: str) -> OAuthClient:
    """The OAuth client stored on an MCP server config (``mcp_server_configs`` columns)."""
    return OAuthClient(
        client_id=config.oauth2_client_id,
        client_secret=client_secret,
        auth_url=config.oauth2_auth_url,
        token_url=config.oauth2_token_url,
        scopes=config.oauth2_scopes,
        token_auth_method=config.oauth2_token_auth_method,
        resource=config.oauth2_resource,
    )


def callback_url(access_url: str, server_id: str) -> str:
    """Where the authorization server sends the user back (registered as redirect URI)."""
    return f"{access_url.rstrip('/')}/api/experimental/mcp/servers/{server_id}/oauth2/callback"


async def discover_and_register(
    server_url: str, redirect_uri: str, *, timeout: float = 15.0
) -> OAuthClient:
    """RFC 9728 → RFC 8414 → RFC 7591: find the authorization server of ``server_url`` and
    register a client for ``redirect_uri`` there."""
    async with httpx2.AsyncClient(timeout=timeout) as http:
        try:
            return await _discover(http, server_url, redirect_uri)
        except (OAuthFlowError, OAuthRegistrationError) as exc:
            raise OAuthError(str(exc)) from None
        except httpx2.HTTPError as exc:
            raise OAuthError(f"{type(exc).__name__}: {exc}") from None


async def _discover(http: httpx2.AsyncClient, server_url: str, redirect_uri: str) -> OAuthClient:
    # An unauthenticated request: a protected server answers 401 and may name its metadata.
    probe = await http.post(server_url, json={}, headers={"Accept": "application/json"})
    prm = None
    for url in build_protected_resource_metadata_discovery_urls(
        extract_resource_metadata_from_www_auth(probe), server_url
    ):
        prm = await handle_protected_resource_response(
            await http.send(create_oauth_metadata_request(url))
        )
        if prm is not None:
            break
    resource = resource_url_from_server_url(server_url)
    auth_server: str | None = None
    if prm is not None:
        if prm.resource and not check_resource_allowed(resource, str(prm.resource)):
            raise OAuthError(f"protected resource {prm.resource} does not match {resource}")
        if prm.resource:
            resource = str(prm.resource)
        auth_server = str(prm.authorization_servers[0])
    metadata = await _server_metadata(http, auth_server, server_url)
    if metadata.registration_endpoint is None:
        raise OAuthError(
            "the authorization server offers no dynamic client registration; configure "
            "oauth2_client_id, oauth2_auth_url and oauth2_token_url by hand"
        )
    scope = get_client_metadata_scopes(
        extract_scope_from_www_auth(probe), prm, metadata, GRANT_TYPES
    )
    wanted = OAuthClientMetadata(
        redirect_uris=[AnyUrl(redirect_uri)],
        grant_types=GRANT_TYPES,
        response_types=["code"],
        token_endpoint_auth_method="client_secret_post",
        client_name=CLIENT_NAME,
        scope=scope,
        application_type="web",  # a server-side client with a confidential secret
    )
    origin = f"{urlparse(server_url).scheme}://{urlparse(server_url).netloc}"
    registered = await handle_registration_response(
        await http.send(create_client_registration_request(metadata, wanted, origin))
    )
    check_registration_usable(registered)
    secret = registered.client_secret or ""
    return OAuthClient(
        client_id=registered.client_id or "",
        client_secret=secret,
        auth_url=str(metadata.authorization_endpoint),
        token_url=str(metadata.token_endpoint),
        scopes=scope or "",
        token_auth_method=registered.token_endpoint_auth_method
        or ("client_secret_post" if secret else "none"),
        resource=resource,
    )


async def _server_metadata(
    http: httpx2.AsyncClient, auth_server: str | None, server_url: str
) -> OAuthMetadata:
    for url in build_oauth_authorization_server_metadata_discovery_urls(auth_server, server_url):
        ok, metadata = await handle_auth_metadata_response(
            await http.send(create_oauth_metadata_request(url))
        )
        if not ok:
            break
        if metadata is not None:
            if auth_server is not None and not issuers_match(str(metadata.issuer), auth_server):
                raise OAuthError(f"issuer {metadata.issuer} does not match {auth_server}")
            return metadata
    raise OAuthError(f"no OAuth2 authorization server metadata found for {server_url}")


def authorization_url(client: OAuthClient, *, redirect_uri: str, state: str, challenge: str) -> str:
    """The authorization-code request (with PKCE S256) the user's browser is sent to."""
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if client.scopes:
        params["scope"] = client.scopes
    if client.resource:
        params["resource"] = client.resource
    joiner = "&" if "?" in client.auth_url else "?"
    return f"{client.auth_url}{joiner}{urlencode(params)}"


async def exchange_code(
    client: OAuthClient, *, code: str, verifier: str, redirect_uri: str, timeout: float = 15.0
) -> OAuthToken:
    """Trade an authorization code for tokens."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    return await _token_request(client, data, timeout)


async def refresh(client: OAuthClient, refresh_token: str, *, timeout: float = 15.0) -> OAuthToken:
    """A fresh access token for a refresh token."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await _token_request(client, data, timeout)


async def _token_request(client: OAuthClient, data: dict[str, str], timeout: float) -> OAuthToken:
    data = {**data, "client_id": client.client_id}
    if client.resource:
        data["resource"] = client.resource
    headers = {"Accept": "application/json"}
    method = client.token_auth_method or ("client_secret_post" if client.client_secret else "none")
    if method == "client_secret_basic" and client.client_secret:
        pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif method == "client_secret_post" and client.client_secret:
        data["client_secret"] = client.client_secret
    try:
        async with httpx2.AsyncClient(timeout=timeout) as http:
            response = await http.post(client.token_url, data=data, headers=headers)
            if response.status_code not in (200, 201):
                raise OAuthError(
                    f"token endpoint answered {response.status_code}: {response.text[:300]}"
                )
            return await handle_token_response_scopes(response)
    except OAuthTokenError as exc:
        raise OAuthError(str(exc)) from None
    except httpx2.HTTPError as exc:
        raise OAuthError(f"token endpoint unreachable: {type(exc).__name__}: {exc}") from None


def expiry_of(token: OAuthToken, now: datetime | None = None) -> datetime | None:
    """When ``token`` expires (None: the server did not say)."""
    if token.expires_in is None:
        return None
    return (now or datetime.now(UTC)) + timedelta(seconds=int(token.expires_in))


def needs_refresh(expiry: datetime | None, now: datetime | None = None) -> bool:
    """Whether a token expiring at ``expiry`` should be refreshed before use."""
    if expiry is None:
        return False
    return expiry - EXPIRY_BUFFER <= (now or datetime.now(UTC))
