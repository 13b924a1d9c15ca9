"""The workspace host reports a chat's git branch and remote origin (reference §7: Coder's
agent reports them through gitaskpass; here the host that ran the tool call does).

After a tool call that can touch git (``execute``, ``edit_files``, ``write_file``) in a
workspace that holds a git repository, the host runs ``git symbolic-ref --short -q HEAD``
(unlike ``rev-parse --abbrev-ref HEAD`` it also names the branch of a repository without
commits yet, and says nothing for a detached HEAD) and ``git remote get-url origin`` there
(2 s timeout each) and records the answer in
``chat_diff_statuses`` when it changed, which makes the row stale so ``insights.refresh``
looks the pull request up soon.

- The repository is the tool's ``workdir`` (or one of its parents up to the workspace root),
  else the workspace root, else the only immediate subdirectory that is a repository (an
  agent usually clones into one). Git never looks above the workspace root.
- git runs with a scrubbed environment and without system or global config: it reads only
  the repository's own config, and core.fsmonitor (which could run a program) is off.
- The report goes to the chat's root ([inferred]: subagents share the root's workspace, and
  insights attribute a PR and its cost to the conversation through the root chat).
- Credentials embedded in an origin URL are dropped before it is stored.
"""

from __future__ import annotations

import logging
import subprocess
import uuid
from pathlib import Path
from typing import Any

from agentfarm.external_auth import strip_credentials
from models import db
from models.chat.tables import Chat
from models.insights import diff_statuses

log = logging.getLogger("agentfarm.git_report")

GIT_TOOLS = frozenset({"execute", "edit_files", "write_file"})
TIMEOUT_S = 2.0
MAX_CHILDREN = 50


def find_repository(root: Path, workdir: str | None = None) -> Path | None:
    """The repository a tool call worked in, inside ``root`` (see the module docstring)."""
    root = root.resolve()
    if workdir:
        here = (root / workdir).resolve()
        if here == root or root in here.parents:
            while here != root:
                if (here / ".git").exists():
                    return here
                here = here.parent
    if (root / ".git").exists():
        return root
    try:
        children = [p for p in sorted(root.iterdir())[:MAX_CHILDREN] if p.is_dir()]
    except OSError:
        return None
    repos = [p for p in children if (p / ".git").exists()]
    return repos[0] if len(repos) == 1 else None


def _git(repo: Path, *args: str) -> str:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(repo),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_CEILING_DIRECTORIES": str(repo.parent),
    }
    try:
        done = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "-C", str(repo), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def read_git_ref(repo: Path) -> tuple[str, str]:
    """(branch, origin) of a repository; '' for what it does not have (a detached HEAD has
    no branch, a repository without ``origin`` no origin)."""
    branch = _git(repo, "symbolic-ref", "--short", "-q", "HEAD")
    origin = _git(repo, "remote", "get-url", "origin")
    return branch, strip_credentials(origin)


def after_tool(chat_id: uuid.UUID, tool_name: str, root: Path, args: dict[str, Any]) -> bool:
    """Report the branch and origin after a git-touching tool call; never raises. Returns
    whether the stored values changed."""
    if tool_name not in GIT_TOOLS:
        return False
    try:
        workdir = args.get("workdir") if isinstance(args.get("workdir"), str) else None
        repo = find_repository(root, workdir)
        if repo is None:
            return False
        branch, origin = read_git_ref(repo)
        if not branch and not origin:
            return False
        with db.session_scope() as session:
            chat = session.get(Chat, chat_id)
            if chat is None:
                return False
            owner = chat.root_chat_id or chat.id
            changed = diff_statuses.report_git_ref(session, owner, branch, origin)
        if changed:
            log.info("git ref reported", extra={"chat_id": str(owner), "branch": branch})
        return changed
    except Exception:
        log.warning("git ref report failed", exc_info=True, extra={"chat_id": str(chat_id)})
        return False
