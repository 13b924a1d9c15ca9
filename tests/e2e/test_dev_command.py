"""``agentfarm dev`` as a user runs it: a real subprocess on embedded Postgres and Redis.

The launcher starts in a clean temporary directory with no database or Redis URL, so it
initialises ``.agentfarm/`` there; a chat is created over HTTP and followed over WebSocket;
then SIGTERM (a service manager) and, after a warm restart on the same data directory, a
terminal's Ctrl-C (SIGINT to the whole foreground process group) must stop every process it
started. This module runs its own farm and uses none of the session fixtures.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

STARTUP_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
# Environment that would point the launcher at other servers or leak another farm's state.
_FOREIGN_ENV_PREFIXES = ("AGENTFARM_", "PROMETHEUS_MULTIPROC_DIR", "dramatiq_")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; only its reaper has not caught up)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())}"
    except psutil.Error:
        return str(proc.pid)


@dataclass
class DevRun:
    """One ``agentfarm dev`` process started in ``workdir``."""

    workdir: Path
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]
    started_at: float
    healthy_after_s: float = 0.0
    tree: list[psutil.Process] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / ".agentfarm"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fail(self, what: str) -> AssertionError:
        return AssertionError(f"{what}\n--- agentfarm dev output (tail) ---\n{self.log()[-6000:]}")

    def wait_healthy(self) -> None:
        """Poll /healthz until it answers 200 with Postgres and Redis ok, then await the banner."""
        deadline = self.started_at + STARTUP_TIMEOUT_S
        last = "no answer"
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise self.fail(f"agentfarm dev exited with {self.proc.returncode}")
                try:
                    resp = client.get("/healthz")
                    last = f"{resp.status_code} {resp.text}"
                    if resp.status_code == 200:
                        body = resp.json()
                        assert body["checks"] == {"postgres": "ok", "redis": "ok"}, body
                        self.healthy_after_s = time.monotonic() - self.started_at
                        break
                except httpx.TransportError as exc:
                    last = repr(exc)
                time.sleep(0.1)
            else:
                raise self.fail(f"/healthz not ready after {STARTUP_TIMEOUT_S}s (last: {last})")
        # The launcher polls /healthz too before it prints where it serves and the token.
        while "agentfarm is serving on" not in self.log():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise self.fail("no banner")
            time.sleep(0.05)

    def record_tree(self) -> None:
        """Every process of this farm: the launcher's descendants, the postmaster and its."""
        launcher = psutil.Process(self.proc.pid)
        procs = {p.pid: p for p in self.tree}  # keep what an earlier call saw
        procs.update({p.pid: p for p in launcher.children(recursive=True)})
        pgdata = str(self.data_dir / "postgres")
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if any(pgdata in arg for arg in cmdline):
                procs[proc.pid] = proc
                procs.update({c.pid: c for c in proc.children(recursive=True)})
        self.tree = list(procs.values())

    def tree_names(self) -> list[str]:
        return [_describe(p) for p in self.tree if _alive(p)]

    def stop(self, deliver: Callable[[subprocess.Popen[bytes]], None]) -> float:
        """Deliver a stop signal; assert a clean exit; return how long stopping took."""
        self.record_tree()  # again: processes started since (e.g. dramatiq's worker process)
        began = time.monotonic()
        deliver(self.proc)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            msg = f"agentfarm dev still running {STOP_TIMEOUT_S}s after the signal"
            raise self.fail(msg) from None
        took = time.monotonic() - began
        assert code == 0, self.fail(f"agentfarm dev exited with {code}")
        assert not _listening(self.port), f"port {self.port} still accepts connections"
        leftovers = [_describe(p) for p in self.tree if _alive(p)]
        assert not leftovers, self.fail(f"processes left behind: {leftovers}")
        assert "farm stopped" in self.log()
        return took


def _clean_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV_PREFIXES)}
    env["AGENTFARM_HTTP_PORT"] = str(port)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., DevRun]]:
    """Start ``agentfarm dev`` in tmp_path (each call a new run on the same data directory)."""
    runs: list[DevRun] = []
    workdir = tmp_path / "farm"
    workdir.mkdir()

    def start(port: int | None = None) -> DevRun:
        port = port or _free_port()
        log_path = tmp_path / f"dev-{len(runs) + 1}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agentfarm.cli", "dev"],
                cwd=workdir, env=_clean_env(port), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group, like a shell's foreground job: killpg(SIGINT) is Ctrl-C.
                start_new_session=True,
            )  # fmt: skip
        run = DevRun(workdir, port, log_path, proc, time.monotonic())
        runs.append(run)
        return run

    yield start
    for run in runs:  # a failed test must not leave a farm running
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                run.proc.kill()
        for proc in run.tree:
            if _alive(proc):
                proc.kill()


def _read_until_waiting(base_url: str, token: str, chat_id: str) -> list[dict[str, Any]]:
    url = base_url.replace("http://", "ws://") + f"/api/experimental/chats/{chat_id}/stream"
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    with connect(url, additional_headers={"Coder-Session-Token": token}) as ws:
        while time.monotonic() < deadline:
            frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            assert frame["type"] in ("data", "ping"), frame
            for event in frame.get("data") or []:
                events.append(event)
                if event["type"] == "status" and event["status"]["status"] == "waiting":
                    return events
    raise AssertionError(f"no waiting status; got {[e['type'] for e in events]}")


def _assistant_text(events: list[dict[str, Any]]) -> str:
    final = [e for e in events if e["type"] == "message" and e["message"]["role"] == "assistant"]
    assert final, [e["type"] for e in events]
    return "".join(p["text"] for p in final[-1]["message"]["content"] if p["type"] == "text")


def _chat(run: DevRun, token: str, text: str) -> tuple[str, list[dict[str, Any]]]:
    """Create a chat over HTTP (default organization) and follow it to ``waiting``."""
    headers = {"Coder-Session-Token": token}
    body = {"content": [{"type": "text", "text": text}]}
    resp = httpx.post(f"{run.base_url}/api/experimental/chats", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    chat_id = resp.json()["id"]
    return chat_id, _read_until_waiting(run.base_url, token, chat_id)


def _ctrl_c(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group


def test_dev_runs_a_chat_and_stops_cleanly_on_sigterm_and_ctrl_c(
    launch: Callable[..., DevRun],
) -> None:
    # --- cold start: initdb, migrations, seed, first admin token ---------------------------
    first = launch()
    first.wait_healthy()
    data_dir = first.data_dir
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    ports = json.loads((data_dir / "ports.json").read_text())
    assert set(ports) == {"postgres", "redis"}
    assert ports["postgres"] != 5432 and ports["redis"] != 6379
    token = (data_dir / "admin-token").read_text().strip()
    assert token and f"(new: {token})" in first.log()

    first.record_tree()
    names = "\n".join(first.tree_names())
    for expected in (" api ", " worker", "dramatiq", " scheduler", "scripted_llm", "redis-server"):
        assert expected in names, names
    assert str(data_dir / "postgres") in names, names

    models = httpx.get(
        f"{first.base_url}/api/experimental/chats/models", headers={"Coder-Session-Token": token}
    )
    assert models.status_code == 200, models.text
    compat = [p for p in models.json()["providers"] if p["provider"] == "openai-compat"]
    assert compat and compat[0]["available"] is True, models.json()
    assert [m["model"] for m in compat[0]["models"]] == ["scripted"]

    chat_id, events = _chat(first, token, "[[reply: hello from dev]]")
    kinds = [e["type"] for e in events]
    statuses = [e["status"]["status"] for e in events if e["type"] == "status"]
    assert kinds[0] == "status", kinds  # the stream opens with a snapshot of the chat
    assert "running" in statuses or statuses[0] == "waiting", statuses
    assert "message_part" in kinds or "message" in kinds, kinds
    assert _assistant_text(events) == "hello from dev"

    # A second launcher on the same data directory must refuse, touching nothing.
    farm_processes = psutil.Process(first.proc.pid).children()
    rival = launch()
    assert rival.proc.wait(timeout=STOP_TIMEOUT_S) == 1, rival.log()
    assert "another agentfarm dev" in rival.log(), rival.log()
    assert all(_alive(p) for p in farm_processes), first.tree_names()
    assert httpx.get(f"{first.base_url}/healthz").status_code == 200

    first_stop = first.stop(lambda proc: proc.send_signal(signal.SIGTERM))

    # --- warm restart on the same directory and port; stopped by Ctrl-C ---------------------
    second = launch(first.port)
    second.wait_healthy()
    assert (data_dir / "admin-token").read_text().strip() == token
    assert "(new:" not in second.log() and "admin token:" in second.log()
    second.record_tree()
    headers = {"Coder-Session-Token": token}
    old = httpx.get(f"{second.base_url}/api/experimental/chats/{chat_id}", headers=headers)
    assert old.status_code == 200 and old.json()["status"] == "waiting", old.text
    # The model server listens on a new port now; the seed must have pointed the provider at it.
    _, events = _chat(second, token, "[[reply: after restart]]")
    assert _assistant_text(events) == "after restart"

    second_stop = second.stop(_ctrl_c)

    print(
        f"\nagentfarm dev: cold start {first.healthy_after_s:.1f}s, "
        f"SIGTERM stop {first_stop:.1f}s, warm start {second.healthy_after_s:.1f}s, "
        f"Ctrl-C stop {second_stop:.1f}s"
    )


def test_dev_fails_fast_when_its_port_is_taken(launch: Callable[..., DevRun]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = launch(taken.getsockname()[1])
        assert run.proc.wait(timeout=STOP_TIMEOUT_S) == 1, run.log()
    assert "cannot serve on" in run.log(), run.log()
    assert "agentfarm is serving" not in run.log()
    assert not (run.data_dir / "postgres").exists()  # nothing was started
