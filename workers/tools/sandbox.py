"""Running tracked processes under bubblewrap (``bwrap``).

The sandbox sees the host filesystem read-only, a private ``/dev``, ``/proc`` and ``/tmp``,
its own PID namespace and (with ``network="none"``) no network; only the workspace is bound
writable, at its own absolute path so paths the model sees keep working. The process-spool
wrapper runs *outside* the sandbox, so the spool never has to be visible inside it.

If bubblewrap is missing or the kernel refuses it, sandboxed workspaces fail closed with a
:class:`ToolError`; a process is never run unsandboxed instead.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from workers.tools.base import ToolError

BWRAP = "bwrap"
"""The bubblewrap executable (looked up on the worker's PATH); tests may point it elsewhere."""

NETWORK_MODES = ("open", "none")


@lru_cache(maxsize=8)
def _probe(bwrap: str, unshare_net: bool) -> str | None:
    """None if ``bwrap`` works here with these options, else the reason it does not."""
    exe = shutil.which(bwrap)
    if exe is None:
        return f"{bwrap} not found"
    argv = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    argv += ["--unshare-pid", "--die-with-parent"]
    if unshare_net:
        argv.append("--unshare-net")
    try:
        done = subprocess.run(
            [*argv, "--", "true"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{exe}: {exc}"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
        return f"{exe}: {detail}"
    return None


def unavailable_reason(network: str = "open") -> str | None:
    """Why bubblewrap cannot sandbox a process here, or None if it can (cached per binary)."""
    return _probe(BWRAP, network == "none")


def require_sandbox(network: str) -> str:
    """The bwrap executable to use; raise :class:`ToolError` if sandboxing is impossible."""
    if network not in NETWORK_MODES:
        raise ToolError(f'invalid sandbox network mode "{network}"')
    reason = unavailable_reason(network)
    if reason is not None:
        raise ToolError(
            "sandboxing is required by this workspace's template but bubblewrap is "
            f"unavailable: {reason}"
        )
    exe = shutil.which(BWRAP)
    assert exe is not None
    return exe


def sandbox_argv(
    *, root: Path, workdir: Path, network: str, command: str, hide: Iterable[Path] = ()
) -> list[str]:
    """The argv that runs ``sh -c command`` in the sandbox with ``workdir`` as its cwd.

    Each directory in ``hide`` (e.g. the process spool, which holds other chats' output) is
    covered with an empty tmpfs, unless it is, contains or lies inside the workspace.
    """
    exe = require_sandbox(network)
    argv = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in hide:
        if path.is_dir() and not _related(path, root):
            argv += ["--tmpfs", str(path)]
    # Binding after the tmpfs keeps a workspace under /tmp visible: bwrap creates the missing
    # mount point inside the (writable) tmpfs. Elsewhere the target already exists in the
    # read-only root because it is the same path.
    argv += ["--bind", str(root), str(root)]
    argv += ["--unshare-pid", "--die-with-parent"]
    if network == "none":
        argv.append("--unshare-net")
    argv += ["--chdir", str(workdir), "--", "/bin/sh", "-c", command]
    return argv


def _related(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents
