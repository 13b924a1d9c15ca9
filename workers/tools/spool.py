"""Tracked processes: detached from the worker, their state kept in a per-host spool directory.

Layout of ``<spool>/<process id>/``:

- ``meta.json``  — ``{id, chat_id, command, workdir, started_at, started_at_unix, wrapper_pid,
  wrapper_start, pid, pgid, pid_start, sandbox, boot_id}``, written once the process has started;
- ``output``     — the command's stdout and stderr, combined, as written;
- ``pid``        — the command's pid, which is also its process group and session id;
- ``exit_code``  — the command's exit status (``128 + n`` when killed by signal ``n``), written
  by the wrapper when it ends; its mtime is the end time.

A small ``sh`` wrapper, started through a launcher that exits at once (so the worker never has
to reap it and it survives the worker), runs the command in a session of its own with
``setsid``, waits for it and records the exit code. Signals go to the command's process group,
never the wrapper, so the exit code is recorded even after ``kill``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workers.tools.base import ToolError

PROCESS_ID = re.compile(r"[0-9a-f]{12}")

_WRAPPER = """d=$1
shift
setsid "$@" </dev/null >"$d/output" 2>&1 &
pid=$!
echo "$pid" >"$d/pid.tmp" && mv -f "$d/pid.tmp" "$d/pid"
wait "$pid"
code=$?
echo "$code" >"$d/exit_code.tmp" && mv -f "$d/exit_code.tmp" "$d/exit_code"
"""
_LAUNCHER = 'sh -c "$0" agentfarm-process "$@" </dev/null >/dev/null 2>&1 & echo $!'


@dataclass(frozen=True)
class TrackedProcess:
    """A tracked process as found in the spool."""

    dir: Path
    meta: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.meta["id"])

    def exit_code(self) -> tuple[int, float] | None:
        """``(exit code, end time)`` once the wrapper has recorded the end, else None."""
        path = self.dir / "exit_code"
        try:
            text = path.read_text().strip()
            return int(text), path.stat().st_mtime
        except (OSError, ValueError):
            return None

    def status(self) -> tuple[str, int | None, float]:
        """``(status, exit code, end time or now)``; status is running, exited or lost.

        ``lost`` means the wrapper is gone without recording an exit code (killed itself, or
        the host restarted).
        """
        ended = self.exit_code()
        if ended is None:
            if self.wrapper_alive():
                return "running", None, time.time()
            ended = self.exit_code()  # the wrapper may have finished in between
        if ended is None:
            return "lost", None, time.time()
        return "exited", ended[0], ended[1]

    def wrapper_alive(self) -> bool:
        """Whether the wrapper that waits for the command is still there (same boot, same pid)."""
        if self.meta.get("boot_id") != _boot_id():
            return False
        recorded = self.meta.get("wrapper_start")
        return recorded is not None and _proc_start(int(self.meta["wrapper_pid"])) == recorded

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the command's process group; False if that group is gone.

        A live group leader must be the command itself (same start time), so a recycled pid is
        never signalled. Without a leader, any process left in the group belongs to the
        command: Linux does not reuse a pid while it still names a process group.
        """
        pgid = self.meta.get("pgid")
        if not isinstance(pgid, int) or pgid <= 1 or self.meta.get("boot_id") != _boot_id():
            return False
        leader_start = _proc_start(pgid)
        if leader_start is not None and leader_start != self.meta.get("pid_start"):
            return False
        if not _group_has_live_member(pgid):
            return False
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        return True

    def output_path(self) -> Path:
        return self.dir / "output"


def start_process(
    spool: Path,
    *,
    chat_id: str,
    command: str,
    argv: list[str],
    workdir: Path,
    env: dict[str, str],
    sandbox: bool,
) -> TrackedProcess:
    """Start ``argv`` as a tracked process and return it once its pid is known."""
    process_id = secrets.token_hex(6)
    pdir = Path(os.path.realpath(spool)) / process_id
    pdir.mkdir(mode=0o700)
    started = time.time()
    launcher = subprocess.run(
        ["/bin/sh", "-c", _LAUNCHER, _WRAPPER, str(pdir), *argv],
        env=env,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=30,
        check=False,
    )
    try:
        wrapper_pid = int(launcher.stdout.strip())
    except ValueError as exc:
        raise ToolError(f"could not start the process: {launcher.stderr.strip()}") from exc
    pgid = _wait_for_int(pdir / "pid", deadline=time.monotonic() + 10)
    meta = {
        "id": process_id,
        "chat_id": chat_id,
        "command": command,
        "workdir": str(workdir),
        "started_at": datetime.fromtimestamp(started, UTC).isoformat().replace("+00:00", "Z"),
        "started_at_unix": started,
        "wrapper_pid": wrapper_pid,
        "wrapper_start": _proc_start(wrapper_pid),
        "pid": pgid,
        "pgid": pgid,
        "pid_start": _proc_start(pgid),
        "sandbox": sandbox,
        "boot_id": _boot_id(),
    }
    tmp = pdir / "meta.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, pdir / "meta.json")
    return TrackedProcess(pdir, meta)


def find_process(spool: Path, chat_id: str, process_id: object) -> TrackedProcess:
    """The chat's process with this id; :class:`ToolError` if there is none (or not the chat's)."""
    if not isinstance(process_id, str) or not PROCESS_ID.fullmatch(process_id.strip()):
        raise ToolError(f'process "{process_id}" not found')
    proc = _load(spool / process_id.strip())
    if proc is None or proc.meta.get("chat_id") != chat_id:
        raise ToolError(f'process "{process_id}" not found')
    return proc


def chat_processes(spool: Path, chat_id: str) -> Iterator[TrackedProcess]:
    """Every tracked process of the chat found in the spool, oldest first."""
    found = []
    try:
        with os.scandir(spool) as scan:
            entries = list(scan)
    except FileNotFoundError:
        return iter(())
    for entry in entries:
        if not PROCESS_ID.fullmatch(entry.name):
            continue
        proc = _load(Path(entry.path))
        if proc is not None and proc.meta.get("chat_id") == chat_id:
            found.append(proc)
    found.sort(key=lambda p: float(p.meta.get("started_at_unix", 0)))
    return iter(found)


def load_process(spool: Path, process_id: str) -> TrackedProcess | None:
    """A tracked process by id, whatever chat it belongs to (for workspace teardown)."""
    if not process_id or "/" in process_id or process_id.startswith("."):
        return None
    return _load(spool / process_id)


def _load(pdir: Path) -> TrackedProcess | None:
    try:
        meta = json.loads((pdir / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return TrackedProcess(pdir, meta) if isinstance(meta, dict) else None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _wait_for_int(path: Path, *, deadline: float) -> int:
    while True:
        value = _read_int(path)
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise ToolError("could not start the process: it did not report its pid")
        time.sleep(0.005)


def _proc_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of a live, non-zombie process, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z":
        return None
    return fields[19] if len(fields) > 19 else None


def _group_has_live_member(pgid: int) -> bool:
    """Whether any process that is not a zombie is in process group ``pgid``."""
    with os.scandir("/proc") as entries:
        pids = [entry.name for entry in entries if entry.name.isdigit()]
    for pid in pids:
        try:
            stat = Path("/proc", pid, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
