"""The audit log: who changed what (admin settings, users and roles, providers and models,
usage limits, templates, chats created or patched), readable by owners (reference §8).

Entries carry the request's fields as ``diff`` with every secret replaced, so the log can be
read by an owner without exposing a key, token or password.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.chat.wire import ts
from models.site.tables import AuditLog

REDACTED = "[redacted]"
# A field whose name contains one of these is a secret (api_key, client_secret, token, …).
SECRET_MARKERS = ("key", "secret", "token", "password", "authorization", "header")

# Route templates that are audited, by prefix (longest first wins) → resource type. Only
# successful POST/PUT/PATCH/DELETE requests are recorded.
AUDITED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("/api/experimental/chats/config/user-prompt", ""),  # a user's own setting: not audited
    ("/api/experimental/chats/config/", "deployment_config"),
    ("/api/experimental/chats/providers", "chat_provider"),
    ("/api/experimental/chats/model-configs", "chat_model_config"),
    ("/api/experimental/chats/usage-limits", "chat_usage_limit"),
    ("/api/experimental/chats/user-provider-configs", ""),  # a user's own key: not audited
    ("/api/experimental/chats/files", ""),
    ("/api/experimental/mcp/servers", "mcp_server"),
    ("/api/v2/organizations/{organization}/templates", "template"),
    ("/api/v2/organizations/{organization}/members", "organization_member"),
    ("/api/v2/organizations/{organization}/groups", "group"),
    ("/api/v2/organizations", "organization"),
    ("/api/v2/groups", "group"),
    ("/api/v2/users", "user"),
)
# Chat routes: create and patch (and the archive aliases) only.
CHAT_ROUTES = {
    ("POST", "/api/experimental/chats"): "create",
    ("PATCH", "/api/experimental/chats/{chat}"): "write",
    ("POST", "/api/experimental/chats/{chat}/archive"): "write",
    ("POST", "/api/experimental/chats/{chat}/unarchive"): "write",
}
ACTIONS = {"POST": "create", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


def classify(method: str, route: str) -> tuple[str, str] | None:
    """``(resource_type, action)`` when a request to ``route`` is audited, else None."""
    if (method, route) in CHAT_ROUTES:
        return "chat", CHAT_ROUTES[(method, route)]
    if method not in ACTIONS or route.startswith("/api/experimental/chats/{chat}"):
        return None
    for prefix, resource in sorted(AUDITED_PREFIXES, key=lambda p: -len(p[0])):
        if route.startswith(prefix):
            if not resource:
                return None
            # A POST that changes an existing resource (roles, members) is a write.
            action = (
                "write" if method == "POST" and "}" in route[len(prefix) :] else ACTIONS[method]
            )
            return resource, action
    return None


def redact(value: Any, name: str = "") -> Any:
    """``value`` with every secret-looking field replaced by ``[redacted]``."""
    if name and any(marker in name.lower() for marker in SECRET_MARKERS):
        return REDACTED if value not in (None, "", [], {}) else value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def record(session: Session, **fields: Any) -> AuditLog:
    entry = AuditLog(**fields)
    session.add(entry)
    session.flush()
    return entry


def _filters(q: str) -> list[Any]:
    """Coder-like search: ``resource_type:chat action:create username:alice resource_id:…``."""
    columns = {
        "resource_type": AuditLog.resource_type,
        "action": AuditLog.action,
        "username": AuditLog.username,
        "resource_id": AuditLog.resource_id,
    }
    out = []
    for term in q.split():
        key, _, value = term.partition(":")
        if key in columns and value:
            out.append(columns[key] == value)
    return out


def list_entries(
    session: Session, *, q: str = "", offset: int = 0, limit: int = 50
) -> tuple[list[AuditLog], int]:
    conditions = _filters(q)
    count = session.exec(select(sa.func.count()).select_from(AuditLog).where(*conditions)).one()
    rows = session.exec(
        select(AuditLog)
        .where(*conditions)
        .order_by(sa.desc(AuditLog.time), sa.desc(AuditLog.id))  # type: ignore[call-overload]
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), int(count)


def entry_json(entry: AuditLog) -> dict[str, Any]:
    return {
        "id": str(entry.id),
        "time": ts(entry.time),
        "user": ({"id": str(entry.user_id), "username": entry.username} if entry.user_id else None),
        "action": entry.action,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "request_path": entry.request_path,
        "status_code": entry.status_code,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "diff": entry.diff,
    }


def resource_id(path_params: dict[str, Any], response: Any) -> str:
    """The id of the resource: a created object's ``id``, else the last path parameter."""
    if isinstance(response, dict) and response.get("id"):
        return str(response["id"])
    values = [str(v) for v in path_params.values()]
    return values[-1] if values else ""
