"""The process tools: ``execute``, ``process_output``, ``process_list``, ``process_signal``.

Every command is a tracked process (see :mod:`workers.tools.spool`): foreground commands are
waited for up to their timeout and keep running in the background after it; background ones
return at once. Results follow Coder's shape
``{success, output?, exit_code?, wall_duration_ms, error?, truncated?, note?,
background_process_id?}``.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from workers.tools import sandbox, spool
from workers.tools.base import ToolError, ToolResult, WorkspaceContext
from workers.tools.durations import format_duration, parse_duration
from workers.tools.environment import process_env
from workers.tools.output import read_output
from workers.tools.paths import resolve_path, workspace_root

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 4 * 3600.0
LIST_LIMIT = 100
SIGNALS = {"terminate": signal.SIGTERM, "kill": signal.SIGKILL}

READ_FILE_NOTE = "Consider using read_file instead of cat/head/tail to read files."
RUNNING_NOTE = "process is still running"
TIMEOUT_NOTE = (
    "the command is still running in the background; use process_output with "
    "background_process_id to follow it or process_signal to stop it"
)
_FILE_DUMP = re.compile(r"^\s*(cat|head|tail|less|more|nl|bat)\s|^\s*(rg|grep)\s+(.*\s)?-\w*l\b")


def strip_background(command: str) -> tuple[str, bool]:
    """Remove a trailing single ``&`` (not ``&&`` or ``|&``); True if one was removed."""
    text = command.rstrip()
    if text.endswith("&") and not text.endswith("&&") and not text.endswith("|&"):
        return text[:-1].rstrip(), True
    return command, False


def _duration_arg(args: dict[str, Any], name: str, default: float) -> float:
    value = args.get(name)
    if value is None or value == "":
        return default
    seconds = parse_duration(value, name=name)
    if seconds < 0:
        raise ToolError(f"{name} must not be negative")
    return min(seconds, MAX_TIMEOUT)


def _wait(proc: spool.TrackedProcess, timeout: float) -> bool:
    """Poll for the end of the process for up to ``timeout`` seconds; True once it has ended."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if proc.exit_code() is not None:
            return True
        now = time.monotonic()
        if now >= deadline or not proc.wrapper_alive():
            return proc.exit_code() is not None
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.1)


def snapshot(proc: spool.TrackedProcess, running_note: str = RUNNING_NOTE) -> ToolResult:
    """The process's current state in the shape of an ``execute`` result.

    ``running_note`` is the note given while the process is still running.
    """
    status, code, end_time = proc.status()
    out = read_output(proc.output_path())
    result: ToolResult = {"success": code == 0, "output": out.text}
    if status == "running":
        result["success"] = True
    else:
        result["exit_code"] = -1 if code is None else code
    started = float(proc.meta["started_at_unix"])
    result["wall_duration_ms"] = max(0, int((end_time - started) * 1000))
    if status == "lost":
        result["error"] = "the process ended but its exit status was lost"
    notes = [running_note] if status == "running" else []
    if out.truncated:
        result["truncated"] = True
        notes.append(
            f"output was {out.total_bytes} bytes; only its start and end are shown. Redirect "
            "it to a file and use read_file to see more."
        )
    if notes:
        result["note"] = "; ".join(notes)
    return result


def execute(ctx: WorkspaceContext, args: dict[str, Any]) -> ToolResult:
    """Run ``sh -c command`` as a tracked process; wait for it unless it runs in the background."""
    command = args.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ToolError("command is required")
    timeout = _duration_arg(args, "timeout", DEFAULT_TIMEOUT)
    if timeout <= 0:
        raise ToolError("timeout must be greater than zero")
    workdir = resolve_path(ctx, args.get("workdir") or str(workspace_root(ctx)), name="workdir")
    if not workdir.is_dir():
        raise ToolError(f'workdir "{args.get("workdir")}" is not a directory')
    command, trailing_amp = strip_background(command)
    if not command.strip():
        raise ToolError("command is required")
    background = bool(args.get("run_in_background")) or trailing_amp
    if ctx.sandbox:
        argv = sandbox.sandbox_argv(
            root=workspace_root(ctx),
            workdir=workdir,
            network=ctx.network,
            command=command,
            hide=[Path(os.path.realpath(ctx.spool))],
        )
    else:
        argv = ["/bin/sh", "-c", command]
    proc = spool.start_process(
        ctx.spool,
        chat_id=ctx.chat_id,
        command=command,
        argv=argv,
        workdir=workdir,
        env=process_env(ctx),
        sandbox=ctx.sandbox,
    )
    if background:
        return {
            "success": True,
            "background_process_id": proc.id,
            "wall_duration_ms": 0,
            "note": "started in the background; use process_output to read its output and "
            "process_signal to stop it",
        }
    if not _wait(proc, timeout):
        result = snapshot(proc, TIMEOUT_NOTE)
        if "exit_code" not in result:  # still running, as expected
            result.update(success=False, exit_code=-1)
            result["error"] = f"command timed out after {format_duration(timeout)}"
            result["background_process_id"] = proc.id
        return result
    result = snapshot(proc)
    if _FILE_DUMP.search(command):
        result["note"] = "; ".join(filter(None, [result.get("note"), READ_FILE_NOTE]))
    return result


def process_output(ctx: WorkspaceContext, args: dict[str, Any]) -> ToolResult:
    """Wait up to ``wait_timeout`` for a tracked process to end, then report its output."""
    proc = spool.find_process(ctx.spool, ctx.chat_id, args.get("process_id"))
    wait = _duration_arg(args, "wait_timeout", DEFAULT_TIMEOUT)
    if wait > 0:
        _wait(proc, wait)
    return snapshot(proc)


def process_list(ctx: WorkspaceContext, args: dict[str, Any]) -> ToolResult:
    """The chat's tracked processes, oldest first (at most the newest ``LIST_LIMIT``)."""
    procs = list(spool.chat_processes(ctx.spool, ctx.chat_id))
    processes = []
    for proc in procs[-LIST_LIMIT:]:
        status, code, _ = proc.status()
        entry: dict[str, Any] = {
            "id": proc.id,
            "command": proc.meta.get("command", ""),
            "status": "running" if status == "running" else "exited",
        }
        if code is not None:
            entry["exit_code"] = code
        entry["started_at"] = proc.meta.get("started_at")
        processes.append(entry)
    result: ToolResult = {"processes": processes}
    if len(procs) > LIST_LIMIT:
        result["note"] = f"{len(procs) - LIST_LIMIT} older processes are not listed"
    return result


def process_signal(ctx: WorkspaceContext, args: dict[str, Any]) -> ToolResult:
    """Send ``terminate`` (SIGTERM) or ``kill`` (SIGKILL) to a process's whole process group."""
    name = args.get("signal")
    if name not in SIGNALS:
        raise ToolError('signal must be "terminate" or "kill"')
    proc = spool.find_process(ctx.spool, ctx.chat_id, args.get("process_id"))
    try:
        sent = proc.signal_group(SIGNALS[name])
    except PermissionError as exc:
        raise ToolError(f"cannot signal process {proc.id}: {exc.strerror}") from None
    if not sent:
        raise ToolError(f"process {proc.id} has already exited")
    return {"success": True, "message": f'signal "{name}" sent to process {proc.id}'}


def kill_chat_processes(ctx: WorkspaceContext) -> int:
    """SIGKILL the process group of every running process of the chat; the number signalled.

    For callers that tear a chat or workspace down; not a model-facing tool.
    """
    count = 0
    for proc in spool.chat_processes(ctx.spool, ctx.chat_id):
        try:
            count += proc.signal_group(signal.SIGKILL)
        except PermissionError:
            pass
    return count
