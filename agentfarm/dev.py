"""``agentfarm dev``: the whole farm on one machine, on embedded defaults.

Starts (when no URL is configured) an embedded Postgres and Redis under the data directory,
runs migrations, seeds the default organization, an admin user and token, and the scripted
model server as the ``openai-compat`` provider, then supervises the API shim, one worker
process serving every queue, and the scheduler. Ctrl-C, SIGTERM or SIGHUP (a closed terminal)
stops the children first, then the model server and the embedded databases; a second Ctrl-C
kills what is still stopping.

Every child runs in its own session, so a terminal's Ctrl-C reaches only the launcher, which
decides the order. On Linux the children also get SIGTERM should the launcher itself die
(``PR_SET_PDEATHSIG``); the embedded servers then keep running and the next ``agentfarm dev``
adopts them. One launcher at a time may use a data directory (``<data_dir>/dev.lock``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import NoReturn, Protocol

from agentfarm.admin import seed_dev, write_secret_file
from agentfarm.embedded import EmbeddedPostgres, EmbeddedRedis
from agentfarm.settings import Settings, get_settings, reset_settings_cache
from models.crypto import generate_key

log = logging.getLogger("agentfarm.dev")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MODEL_SERVER = "scripted-llm"
FARM_STOP_GRACE_S = 20.0  # api, worker, scheduler; the worker persists interrupted steps
MODEL_SERVER_STOP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class _Server(Protocol):
    def stop(self) -> None: ...


class FarmExit(Exception):
    """Ends the launcher: a stop was requested (code 0) or something failed (non-zero)."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _encryption_key(data_dir: Path) -> str:

    path = data_dir / "encryption.key"
    if not path.exists():
        write_secret_file(path, generate_key() + "\n")
    return path.read_text().strip()


def _url_host(host: str) -> str:
    """The host to reach a server bound to ``host`` from this machine, as written in a URL."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers_ok(url: str) -> bool:
    try:
        with _no_proxy.open(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:  # refused, timed out, or an HTTP error status (503 until Postgres is up)
        return False


def _die_with_launcher() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes a child get SIGTERM when the launcher dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    launcher = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != launcher:  # the launcher died before prctl took effect
            os._exit(1)

    return preexec


class DevFarm:
    """Owns every process of a dev farm and stops them in reverse order."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.embedded: list[_Server] = []
        self.stop_requested = threading.Event()
        self.force = threading.Event()  # a second stop signal: kill instead of waiting
        self._first_stop_at: float | None = None
        self._lock_fd: int | None = None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: the first signal stops gracefully, a later one forcefully.

        One Ctrl-C under ``make run`` can arrive twice (the terminal signals the launcher, and
        make passes the signal on), so only a signal a second or more after the first counts
        as the impatient second Ctrl-C.
        """
        now = time.monotonic()
        if self._first_stop_at is None:
            self._first_stop_at = now
        elif now - self._first_stop_at >= 1.0:
            self.force.set()
        self.stop_requested.set()

    def check(self) -> None:
        """Raise FarmExit when a stop was requested or a child has exited."""
        if self.stop_requested.is_set():
            raise FarmExit(0, "stop requested")
        for name, proc in self.children:
            code = proc.poll()
            if code is not None:
                raise FarmExit(code or 1, f"{name} exited with code {code}")

    def wait_until(self, ready: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Poll ``ready`` until true; raise FarmExit on a stop, a dead child or the timeout."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check()
            if time.monotonic() > deadline:
                raise FarmExit(1, f"{what} is not ready after {timeout:.0f}s")
            self.stop_requested.wait(0.1)

    def lock_data_dir(self) -> None:
        """Hold ``<data_dir>/dev.lock`` while running: one launcher per data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / "dev.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FarmExit(
                1, f"another agentfarm dev (pid {holder}) is using {self.data_dir}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd  # released by close() in shutdown, or by the kernel if we die

    def check_http_port(self) -> None:
        """Fail fast, before starting anything, when the API's address is taken."""
        host, port = self.settings.http_host, self.settings.http_port
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
                sock.bind(addr)
        except OSError as exc:
            raise FarmExit(
                1,
                f"cannot serve on {host}:{port} ({exc.strerror or exc}); "
                "stop what uses it or set AGENTFARM_HTTP_PORT",
            ) from None

    def prepare(self) -> dict[str, str]:
        """Start the embedded servers that are not configured; returns the children's env."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # The chat routes sit behind Coder's `agents` experiment; a dev farm turns it on
        # unless AGENTFARM_EXPERIMENTS is set.
        env.setdefault("AGENTFARM_EXPERIMENTS", "agents")
        if not self.settings.encryption_keys:
            env["AGENTFARM_ENCRYPTION_KEYS"] = _encryption_key(self.data_dir)
        if not self.settings.database_url or not self.settings.redis_url:
            # Registered before start(): a failed or interrupted start is stopped too.
            if not self.settings.database_url:
                pg = EmbeddedPostgres(self.data_dir)
                self.embedded.append(pg)
                env["AGENTFARM_DATABASE_URL"] = pg.start()
                self.check()
            if not self.settings.redis_url:
                rd = EmbeddedRedis(self.data_dir)
                self.embedded.append(rd)
                env["AGENTFARM_REDIS_URL"] = rd.start()
        metrics_dir = self.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        env["AGENTFARM_DATA_DIR"] = str(self.data_dir)
        os.environ.update(env)
        reset_settings_cache()
        return env

    def start_model_server(self, env: dict[str, str]) -> str:
        """Start the scripted model server; returns its OpenAI-compatible base URL."""
        port = self.settings.scripted_llm_port or free_port()
        self._spawn(
            MODEL_SERVER,
            [sys.executable, "-m", "agentfarm.scripted_llm", "--port", str(port)],
            env,
        )
        self.wait_until(lambda: _accepts(port), timeout=15, what="the scripted model server")
        return f"http://127.0.0.1:{port}/v1"

    def seed(self, model_base_url: str) -> str | None:
        """Migrate and seed; returns the admin token when it was created just now."""

        return seed_dev(get_settings(), model_base_url)

    def start_farm(self, env: dict[str, str]) -> None:
        """Start the API shim, one worker process for every queue, and the scheduler."""
        cli = [sys.executable, "-m", "agentfarm.cli"]
        port = str(self.settings.http_port)
        self._spawn("api", [*cli, "api", "--host", self.settings.http_host, "--port", port], env)
        threads = str(self.settings.worker_threads)
        # The one worker serves every queue and is the workspace host `local` too.
        worker_env = {
            **env,
            "AGENTFARM_WORKSPACE_HOSTS": env.get("AGENTFARM_WORKSPACE_HOSTS") or "local",
        }
        self._spawn(
            "worker", [*cli, "worker", "--processes", "1", "--threads", threads], worker_env
        )
        self._spawn("scheduler", [*cli, "scheduler"], env)

    def wait_until_serving(self) -> None:
        """Wait until our API answers /healthz with 200 (Postgres and Redis reachable)."""
        host, port = _url_host(self.settings.http_host), self.settings.http_port
        url = f"http://{host}:{port}/healthz"
        self.wait_until(lambda: _answers_ok(url), timeout=90, what=f"the API ({url})")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        # Own session: the launcher decides the order in which things stop on Ctrl-C.
        # (preexec_fn is safe here: the launcher runs no other thread.)
        proc = subprocess.Popen(
            argv, env=env, start_new_session=True, preexec_fn=_die_with_launcher()
        )
        self.children.append((name, proc))
        log.info("started %s", name, extra={"pid": proc.pid})

    def supervise(self) -> NoReturn:
        """Wait until asked to stop or until a child dies; always raises FarmExit."""
        while True:
            self.check()
            self.stop_requested.wait(0.5)

    def run(self) -> int:
        """Start everything, supervise, stop everything; returns the exit code."""
        try:
            self.lock_data_dir()
            self.check_http_port()
            env = self.prepare()
            self.settings = get_settings()
            self.check()
            model_url = self.start_model_server(env)
            token = self.seed(model_url)
            self.check()
            self.start_farm(env)
            self.wait_until_serving()
            _banner(self.settings, token)
            self.supervise()
        except FarmExit as exc:
            if exc.code:
                log.error("%s; stopping the farm", exc.reason)
            else:
                log.info("stopping the farm")
            return exc.code
        finally:
            self.shutdown()
            log.info("farm stopped")

    def shutdown(self) -> None:
        """Stop the farm processes (newest first), then the model server, then the servers."""
        if self._first_stop_at is None:  # stopping on our own: any stop signal now forces
            self._first_stop_at = time.monotonic() - 1.0
        self.stop_requested.set()
        farm = [(n, p) for n, p in reversed(self.children) if n != MODEL_SERVER]
        model = [(n, p) for n, p in self.children if n == MODEL_SERVER]
        self._stop(farm, FARM_STOP_GRACE_S)
        self._stop(model, MODEL_SERVER_STOP_GRACE_S)
        for server in reversed(self.embedded):
            try:
                server.stop()
            except Exception:
                log.exception("could not stop %s", type(server).__name__)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _stop(self, children: list[tuple[str, subprocess.Popen[bytes]]], grace: float) -> None:
        """SIGTERM each child, wait up to ``grace`` seconds, then kill its whole group."""
        for _name, proc in children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, proc in children:
            while proc.poll() is None and time.monotonic() < deadline:
                if self.force.is_set():
                    break
                time.sleep(0.05)
            if proc.poll() is None:
                reason = "stop forced" if self.force.is_set() else "did not stop in time"
                log.warning("%s: %s; killing it", name, reason)
            # The child leads its own process group (start_new_session): whatever it left
            # behind there (e.g. dramatiq's worker processes) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_dev() -> int:
    """Entry point of ``agentfarm dev``."""
    farm = DevFarm(get_settings())
    previous = {sig: signal.signal(sig, farm.request_stop) for sig in STOP_SIGNALS}
    try:
        return farm.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _banner(settings: Settings, token: str | None) -> None:
    token_file = settings.data_dir / "admin-token"
    base = f"http://{_url_host(settings.http_host)}:{settings.http_port}"
    lines = [
        "",
        f"agentfarm is serving on {base}",
        f"  admin token: {token_file}" + (f"  (new: {token})" if token else ""),
        "  try:",
        f"    TOKEN=$(cat {token_file})",
        "    curl -s -H \"Coder-Session-Token: $TOKEN\" -H 'Content-Type: application/json' \\",
        f'      -d \'{{"content":[{{"type":"text","text":"hello"}}]}}\' '
        f"{base}/api/experimental/chats",
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
