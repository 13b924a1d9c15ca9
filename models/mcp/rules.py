"""Admin MCP server configs (reference §6.3): validation, create, patch, wire shape.

Secrets (``oauth2_client_secret``, ``api_key_value``, ``custom_headers``) are encrypted here
and never leave this module in clear: the wire shape only says ``has_*``. OAuth2
auto-discovery happens in the API layer (it needs the network); this module only stores what
it found.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, select

from models.base import utcnow
from models.chat.wire import ts
from models.crypto import SecretBox
from models.errors import BadRequest, Conflict, NotFound
from models.mcp.tables import (
    MCPAuthType,
    MCPAvailability,
    MCPServerConfig,
    MCPServerUserToken,
    MCPTransport,
)
from models.providers.rules import encrypt_secret

INVALID = "Invalid MCP server config."
NOT_FOUND = "Resource not found or you do not have access to this resource"
# [inferred] Coder's UI derives the slug from the display name; tools are offered as
# ``<slug>__<tool>`` and function names are at most 64 characters, so slugs stay short.
SLUG_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
MAX_SLUG = 32
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Fields that belong to one auth type; changing auth_type clears the old type's fields.
AUTH_FIELDS: dict[str, tuple[str, ...]] = {
    MCPAuthType.OAUTH2: (
        "oauth2_client_id",
        "oauth2_client_secret",
        "oauth2_auth_url",
        "oauth2_token_url",
        "oauth2_scopes",
        "oauth2_token_auth_method",
        "oauth2_resource",
    ),
    MCPAuthType.API_KEY: ("api_key_header", "api_key_value"),
    MCPAuthType.CUSTOM_HEADERS: ("custom_headers",),
}
SECRET_FIELDS = ("oauth2_client_secret", "api_key_value", "custom_headers")
PLAIN_FIELDS = (
    "display_name",
    "slug",
    "description",
    "icon_url",
    "transport",
    "url",
    "auth_type",
    "oauth2_client_id",
    "oauth2_auth_url",
    "oauth2_token_url",
    "oauth2_scopes",
    "api_key_header",
    "tool_allow_list",
    "tool_deny_list",
    "availability",
    "enabled",
    "model_intent",
    "allow_in_plan_mode",
)
MANUAL_OAUTH2 = ("oauth2_client_id", "oauth2_auth_url", "oauth2_token_url")


def _bad(detail: str) -> BadRequest:
    return BadRequest(INVALID, detail=detail)


def _one_of(value: Any, allowed: type, field: str) -> str:
    text = str(value or "").strip()
    options = [m.value for m in allowed]  # type: ignore[attr-defined]
    if text not in options:
        raise _bad(f"{field} must be one of: {', '.join(options)}.")
    return text


def _http_url(value: Any, field: str) -> str:
    text = str(value or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad(f"{field} must be an absolute http(s) URL.")
    return text


def clean_icon_url(value: Any) -> str:
    """'' or a deployment-relative path; external URLs are rejected (§6.3)."""
    text = str(value or "").strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or not text.startswith("/") or text.startswith("//"):
        raise _bad("icon_url must be a deployment-relative path (e.g. /icon/github.svg).")
    return text


def _names(values: Any, field: str) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _bad(f"{field} must be a list of tool names.")
    return [v.strip() for v in values if v.strip()]


def clean_headers(values: Any) -> dict[str, str]:
    """A header map with valid names and single-line values."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise BadRequest("Invalid custom headers.", detail="custom_headers must be an object.")
    out: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name.strip()):
            raise BadRequest("Invalid custom headers.", detail=f"invalid header name {name!r}")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise BadRequest("Invalid custom headers.", detail=f"invalid value for {name}")
        out[name.strip()] = value.strip()
    return out


def _seal(box: SecretBox, plaintext: str) -> tuple[str, str | None]:
    return encrypt_secret(box, plaintext, what="MCP server secrets")


def _clean(field: str, value: Any) -> Any:
    if field in ("display_name", "slug"):
        text = str(value or "").strip()
        if not text:
            raise _bad(f"{field} is required.")
        if field == "slug" and (len(text) > MAX_SLUG or not SLUG_RE.fullmatch(text)):
            raise _bad(
                f"slug must be at most {MAX_SLUG} lowercase letters, digits and single hyphens."
            )
        return text
    if field == "transport":
        return _one_of(value, MCPTransport, field)
    if field == "auth_type":
        return _one_of(value, MCPAuthType, field)
    if field == "availability":
        return _one_of(value, MCPAvailability, field)
    if field == "url":
        return _http_url(value, field)
    if field in ("oauth2_auth_url", "oauth2_token_url"):
        return _http_url(value, field) if str(value or "").strip() else ""
    if field == "icon_url":
        return clean_icon_url(value)
    if field in ("tool_allow_list", "tool_deny_list"):
        return _names(value, field)
    if field in ("enabled", "model_intent", "allow_in_plan_mode"):
        return bool(value)
    return str(value or "").strip()


def apply_changes(
    session: Session, box: SecretBox, row: MCPServerConfig, changes: dict[str, Any]
) -> None:
    """Validate and apply a create or patch body (only the keys present change)."""
    if "auth_type" in changes:
        new_type = _clean("auth_type", changes["auth_type"])
        if new_type != row.auth_type:
            for kind, fields in AUTH_FIELDS.items():
                if kind != new_type:
                    for field in fields:
                        setattr(row, field, "Authorization" if field == "api_key_header" else "")
                        if field in SECRET_FIELDS:
                            setattr(row, f"{field}_key_id", None)
    for field in PLAIN_FIELDS:
        if field in changes:
            setattr(row, field, _clean(field, changes[field]))
    if not row.api_key_header:
        row.api_key_header = "Authorization"
    if any(f in changes for f in (*MANUAL_OAUTH2, "oauth2_client_secret")):
        # A manual client: what auto-discovery learnt about the old one no longer applies.
        row.oauth2_token_auth_method = row.oauth2_resource = ""
    if "oauth2_client_secret" in changes:
        plain = str(changes["oauth2_client_secret"] or "").strip()
        row.oauth2_client_secret, row.oauth2_client_secret_key_id = _seal(box, plain)
    if "api_key_value" in changes:
        plain = str(changes["api_key_value"] or "").strip()
        row.api_key_value, row.api_key_value_key_id = _seal(box, plain)
    if "custom_headers" in changes:
        headers = clean_headers(changes["custom_headers"])
        plain = json.dumps(headers) if headers else ""
        row.custom_headers, row.custom_headers_key_id = _seal(box, plain)
    _check_auth(row)
    duplicate = session.exec(
        select(MCPServerConfig.id).where(
            MCPServerConfig.slug == row.slug, MCPServerConfig.id != row.id
        )
    ).first()
    if duplicate is not None:
        raise Conflict("MCP server config already exists.", detail=f"slug {row.slug!r} is taken")
    row.updated_at = utcnow()


def _check_auth(row: MCPServerConfig) -> None:
    if row.auth_type == MCPAuthType.API_KEY and not row.api_key_value:
        raise _bad("api_key auth needs api_key_value.")
    if row.auth_type == MCPAuthType.CUSTOM_HEADERS and not row.custom_headers:
        raise _bad("custom_headers auth needs at least one header.")
    if row.auth_type == MCPAuthType.OAUTH2:
        given = [f for f in MANUAL_OAUTH2 if getattr(row, f)]
        if given and len(given) != len(MANUAL_OAUTH2):
            raise _bad(
                "manual OAuth2 needs oauth2_client_id, oauth2_auth_url and oauth2_token_url "
                "together; leave all three empty for auto-discovery."
            )


def needs_discovery(row: MCPServerConfig) -> bool:
    """An oauth2 server without a manual client: discover and register one (§6.3)."""
    return row.auth_type == MCPAuthType.OAUTH2 and not row.oauth2_client_id


def store_discovered(box: SecretBox, row: MCPServerConfig, client: Any) -> None:
    """Keep what OAuth2 auto-discovery and dynamic registration produced."""
    row.oauth2_client_id = client.client_id
    row.oauth2_client_secret, row.oauth2_client_secret_key_id = _seal(box, client.client_secret)
    row.oauth2_auth_url = client.auth_url
    row.oauth2_token_url = client.token_url
    if not row.oauth2_scopes:
        row.oauth2_scopes = client.scopes
    row.oauth2_token_auth_method = client.token_auth_method
    row.oauth2_resource = client.resource


def get_server(session: Session, server_id: uuid.UUID, *, enabled_only: bool) -> MCPServerConfig:
    row = session.get(MCPServerConfig, server_id)
    if row is None or (enabled_only and not row.enabled):
        raise NotFound(NOT_FOUND)
    return row


def connected_ids(session: Session, user_id: uuid.UUID) -> set[uuid.UUID]:
    """The oauth2 servers this user holds a token for."""
    return set(
        session.exec(
            select(MCPServerUserToken.mcp_server_config_id).where(
                MCPServerUserToken.user_id == user_id
            )
        ).all()
    )


def server_json(row: MCPServerConfig, *, admin: bool, connected: set[uuid.UUID]) -> dict[str, Any]:
    """The MCPServerConfig object; admin-only fields are omitted for others (and when empty)."""
    out: dict[str, Any] = {
        "id": str(row.id),
        "display_name": row.display_name,
        "slug": row.slug,
        "description": row.description,
        "icon_url": row.icon_url,
        "transport": row.transport,
        "url": row.url,
        "auth_type": row.auth_type,
        "has_oauth2_secret": bool(row.oauth2_client_secret),
        "has_api_key": bool(row.api_key_value),
        "has_custom_headers": bool(row.custom_headers),
        "tool_allow_list": list(row.tool_allow_list or []),
        "tool_deny_list": list(row.tool_deny_list or []),
        "availability": row.availability,
        "enabled": row.enabled,
        "model_intent": row.model_intent,
        "allow_in_plan_mode": row.allow_in_plan_mode,
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
        "auth_connected": row.auth_type != MCPAuthType.OAUTH2 or row.id in connected,
    }
    if admin:
        for field in (*MANUAL_OAUTH2, "oauth2_scopes", "api_key_header"):
            if getattr(row, field):
                out[field] = getattr(row, field)
    return out
