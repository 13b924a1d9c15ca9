"""Git providers, configured like Coder's external auth (reference §7 "Providers").

    AGENTFARM_EXTERNAL_AUTH_0_TYPE=github
    AGENTFARM_EXTERNAL_AUTH_0_ID=github                    # default: the type
    AGENTFARM_EXTERNAL_AUTH_1_TYPE=github
    AGENTFARM_EXTERNAL_AUTH_1_ID=ghe
    AGENTFARM_EXTERNAL_AUTH_1_API_BASE_URL=https://ghe.example.com/api/v3
    AGENTFARM_EXTERNAL_AUTH_1_REGEX=^(https?://)?ghe\\.example\\.com(/.*)?$

Each index ``N`` is one provider. ``REGEX`` matches a chat's git remote origin (an SSH origin
is matched in its https form too); ``API_BASE_URL`` is the REST API root (github.com needs
none: ``https://api.github.com``; GitHub Enterprise needs ``https://<host>/api/v3``).
``DISPLAY_NAME`` and ``DISPLAY_ICON`` are shown to users. Coder's OAuth settings
(``CLIENT_ID``, ``CLIENT_SECRET``, ``AUTH_URL``, ``TOKEN_URL``, ``SCOPES`` …) are accepted and
ignored: users link a token through the API instead of an OAuth flow.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("agentfarm.external_auth")

PREFIX = "AGENTFARM_EXTERNAL_AUTH_"
GITHUB_API = "https://api.github.com"
GITHUB_REGEX = r"^(https?://)?github\.com(/.*)?$"
DISPLAY_NAMES = {
    "github": "GitHub",
    "gitlab": "GitLab",
    "bitbucket-cloud": "Bitbucket",
    "azure-devops": "Azure DevOps",
    "gitea": "Gitea",
}
_KEY = re.compile(rf"^{PREFIX}(\d+)_([A-Z_]+)$")
_SCP_ORIGIN = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$")


@dataclass(frozen=True)
class ExternalAuthConfig:
    """One configured git provider."""

    id: str
    type: str
    regex: re.Pattern[str]
    api_base_url: str
    display_name: str
    display_icon: str = ""

    def matches(self, origin: str) -> bool:
        """Whether this provider serves ``origin`` (as given, or in its https form)."""
        return any(self.regex.search(o) for o in {origin, https_origin(origin)} if o)


def https_origin(origin: str) -> str:
    """The https form of a git remote, without credentials or ``.git``:
    ``git@github.com:acme/w.git`` and ``ssh://git@github.com/acme/w`` both give
    ``https://github.com/acme/w``. [inferred] normalisation, so one regex serves both forms."""
    origin = origin.strip()
    if "://" not in origin:
        scp = _SCP_ORIGIN.match(origin)
        if scp is None:
            return ""
        host, path = scp.groups()
    else:
        parts = urlsplit(origin)
        host, path = parts.hostname or "", parts.path
        if parts.port and parts.scheme in ("http", "https"):
            host = f"{host}:{parts.port}"
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return f"https://{host}/{path}" if host and path else ""


def strip_credentials(origin: str) -> str:
    """``origin`` without a user:password@ part (tokens embedded in remotes are never kept)."""
    if "://" not in origin:
        return origin.strip()
    parts = urlsplit(origin.strip())
    if parts.username is None and parts.password is None:
        return origin.strip()
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def repo_of(origin: str) -> tuple[str, str] | None:
    """(owner, repository) of a remote origin, from the last two path segments."""
    url = https_origin(origin)
    segments = urlsplit(url).path.strip("/").split("/") if url else []
    if len(segments) < 2 or not all(segments[-2:]):
        return None
    return segments[-2], segments[-1]


def _host_regex(api_base_url: str) -> str:
    host = urlsplit(api_base_url).hostname or ""
    if host in ("", "api.github.com"):
        return GITHUB_REGEX
    return rf"^(https?://)?{re.escape(host)}(/.*)?$"


def parse(environ: Mapping[str, str]) -> list[ExternalAuthConfig]:
    """Every provider configured in ``environ``, by index; invalid entries are logged and
    left out (the others still work)."""
    entries: dict[int, dict[str, str]] = {}
    for name, value in environ.items():
        match = _KEY.match(name)
        if match:
            entries.setdefault(int(match.group(1)), {})[match.group(2)] = value.strip()
    out: list[ExternalAuthConfig] = []
    for index in sorted(entries):
        try:
            config = _one(entries[index])
        except ValueError as exc:
            log.warning("external auth %s ignored: %s", index, exc)
            continue
        if any(c.id == config.id for c in out):
            log.warning("external auth %s ignored: duplicate id %r", index, config.id)
            continue
        out.append(config)
    return out


def _one(entry: Mapping[str, str]) -> ExternalAuthConfig:
    kind = entry.get("TYPE", "").lower()
    if not kind:
        raise ValueError("TYPE is required")
    api = entry.get("API_BASE_URL", "").rstrip("/")
    if not api and kind == "github":
        api = GITHUB_API
    if api and urlsplit(api).scheme not in ("http", "https"):
        raise ValueError(f"API_BASE_URL {api!r} is not an http(s) URL")
    # [inferred] without REGEX, a GitHub Enterprise entry matches its API host, not github.com.
    pattern = entry.get("REGEX") or (_host_regex(api) if kind == "github" else "")
    if not pattern:
        raise ValueError("REGEX is required for this type")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"REGEX does not compile: {exc}") from None
    return ExternalAuthConfig(
        id=entry.get("ID") or kind,
        type=kind,
        regex=regex,
        api_base_url=api,
        display_name=entry.get("DISPLAY_NAME") or DISPLAY_NAMES.get(kind, kind),
        display_icon=entry.get("DISPLAY_ICON", ""),
    )


_cache: tuple[frozenset[tuple[str, str]], list[ExternalAuthConfig]] | None = None


def configured() -> list[ExternalAuthConfig]:
    """The providers of this process's environment (parsed again only when it changes)."""
    global _cache
    key = frozenset((k, v) for k, v in os.environ.items() if k.startswith(PREFIX))
    if _cache is None or _cache[0] != key:
        _cache = (key, parse(dict(key)))
    return _cache[1]


def provider_for_origin(
    configs: list[ExternalAuthConfig], origin: str
) -> ExternalAuthConfig | None:
    """The first provider whose regex matches the origin (github.com and GHE side by side)."""
    return next((c for c in configs if c.matches(origin)), None)
