"""The scrubbed environment of workspace processes.

Nothing is inherited from the worker: its environment holds database URLs, provider keys and
other secrets. Processes start from a minimal base, get the variables Coder's agent injects,
then the workspace's own ``extra_env``.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping

from workers.tools.base import ToolError, WorkspaceContext
from workers.tools.paths import workspace_root

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

INJECTED_ENV: Mapping[str, str] = {
    "CODER_CHAT_AGENT": "true",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "EDITOR": "true",
    "VISUAL": "true",
    "GIT_TERMINAL_PROMPT": "0",
    "NO_COLOR": "1",
    "TERM": "dumb",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
}


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def process_env(ctx: WorkspaceContext) -> dict[str, str]:
    """The complete environment of a process started for ``ctx`` (never the worker's own)."""
    env = {
        "PATH": BASE_PATH,
        "HOME": str(workspace_root(ctx)),
        "LANG": "C.UTF-8",
        "USER": _user(),
        "SHELL": "/bin/sh",
    }
    env.update(INJECTED_ENV)
    for key, value in ctx.extra_env.items():
        if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
            raise ToolError(f"invalid workspace environment variable name {key!r}")
        if not isinstance(value, str) or "\x00" in value:
            raise ToolError(f"invalid value for workspace environment variable {key}")
        env[key] = value
    return env
