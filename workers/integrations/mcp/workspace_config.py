"""A workspace's ``.mcp.json`` (reference §6.2) and how its servers are reached on the host.

``{"mcpServers": {"<name>": {"command", "args", "env"} | {"type": "http", "url", "headers"}}}``;
the transport is inferred from ``command`` vs ``url`` or named by ``type`` (stdio, http, sse).
Stdio servers start as the workspace's processes: in its directory, with the scrubbed
environment of ``execute`` (plus the entry's ``env``), and under bubblewrap when the template
sandboxes tools. HTTP servers are reached from the host, and refused when the template takes
the network away.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mcp import StdioServerParameters

from workers.integrations.mcp.connect import HttpTarget, StdioTarget, Target
from workers.tools import sandbox
from workers.tools.base import ToolError, WorkspaceContext
from workers.tools.environment import process_env

CONFIG_FILE = ".mcp.json"
MAX_CONFIG_BYTES = 256 * 1024
SERVER_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(Exception):
    """An entry (or the whole file) cannot be used; the message says why."""


@dataclass(frozen=True)
class ServerSpec:
    name: str
    kind: str  # stdio | http | sse
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{what} must be an object of strings")
    return dict(value)


def _spec(name: str, entry: Any) -> ServerSpec:
    if not SERVER_NAME_RE.fullmatch(name):
        raise ConfigError("the name may only use letters, digits, '_' and '-'")
    if not isinstance(entry, dict):
        raise ConfigError("the entry must be an object")
    kind = entry.get("type") or ("stdio" if entry.get("command") else "http")
    if kind in ("streamable_http", "streamable-http"):
        kind = "http"
    if kind == "stdio":
        command, args = entry.get("command"), entry.get("args") or []
        if not isinstance(command, str) or not command.strip():
            raise ConfigError("a stdio server needs a command")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConfigError("args must be a list of strings")
        return ServerSpec(name, "stdio", command, tuple(args), _strings(entry.get("env"), "env"))
    if kind in ("http", "sse"):
        url = entry.get("url")
        if not isinstance(url, str) or not re.match(r"https?://", url):
            raise ConfigError(f"an {kind} server needs an http(s) url")
        return ServerSpec(name, kind, url=url, headers=_strings(entry.get("headers"), "headers"))
    raise ConfigError(f"unknown type {kind!r} (stdio, http or sse)")


def read_config(root: Path) -> tuple[list[ServerSpec], list[dict[str, str]], str]:
    """``(usable servers, [{server, error}], digest of the file)``; no file: nothing, ''."""
    path = Path(root) / CONFIG_FILE
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return [], [], ""
    except OSError as exc:
        return [], [{"server": CONFIG_FILE, "error": f"cannot read: {exc.strerror}"}], ""
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > MAX_CONFIG_BYTES:
        return [], [{"server": CONFIG_FILE, "error": "larger than 256 KiB"}], digest
    try:
        servers = json.loads(data).get("mcpServers")
        if not isinstance(servers, dict):
            raise ValueError('no "mcpServers" object')
    except (ValueError, AttributeError) as exc:
        return [], [{"server": CONFIG_FILE, "error": f"invalid: {exc}"}], digest
    specs, errors = [], []
    for name, entry in servers.items():
        try:
            specs.append(_spec(str(name), entry))
        except ConfigError as exc:
            errors.append({"server": str(name), "error": str(exc)})
    return specs, errors, digest


def target(
    spec: ServerSpec,
    *,
    root: Path,
    spool: Path,
    sandboxed: bool,
    network: str,
    errlog: IO[str] | None = None,
) -> Target:
    """How the host reaches one server; ``ConfigError`` when the workspace forbids it."""
    if spec.kind != "stdio":
        if sandboxed and network == "none":
            raise ConfigError("this workspace's template has no network; HTTP servers are refused")
        transport = "sse" if spec.kind == "sse" else "streamable_http"
        return HttpTarget(url=spec.url, transport=transport, headers=dict(spec.headers))
    ctx = WorkspaceContext(
        root=root, spool=spool, chat_id="mcp", sandbox=sandboxed, network=network
    )
    try:
        env = {**process_env(ctx), **spec.env}
        if sandboxed:
            argv = sandbox.sandbox_argv(
                root=root,
                workdir=root,
                network=network,
                command="exec " + shlex.join([spec.command, *spec.args]),
                hide=[spool.resolve()],
            )
            params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=root)
        else:
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=env, cwd=root
            )
    except ToolError as exc:
        raise ConfigError(str(exc)) from None
    return StdioTarget(params=params, errlog=errlog)
