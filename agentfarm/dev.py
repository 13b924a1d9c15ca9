"""``agentfarm dev``: the whole farm on one machine, on embedded defaults.

Starts (when no URL is configured) an embedded Postgres and Redis under the data directory,
runs migrations, seeds the default organization, an admin user and token, and the scripted
model server as the ``openai-compat`` provider, then supervises the API shim, one worker
process serving every queue, and the scheduler. Ctrl-C or SIGTERM stops the children first,
then the model server and the embedded databases.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from agentfarm.settings import Settings, get_settings, reset_settings_cache

log = logging.getLogger("agentfarm.dev")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _encryption_key(data_dir: Path) -> str:
    from models.crypto import generate_key

    path = data_dir / "encryption.key"
    if not path.exists():
        path.write_text(generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


class DevFarm:
    """Owns every process of a dev farm and stops them in reverse order."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.embedded: list[object] = []
        self.stop_requested = threading.Event()

    def prepare(self) -> dict[str, str]:
        """Start what is missing, migrate, seed; returns the environment for the children."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if not self.settings.encryption_keys:
            env["AGENTFARM_ENCRYPTION_KEYS"] = _encryption_key(self.data_dir)
        if not self.settings.database_url or not self.settings.redis_url:
            from agentfarm.embedded import EmbeddedPostgres, EmbeddedRedis

            if not self.settings.database_url:
                pg = EmbeddedPostgres(self.data_dir)
                env["AGENTFARM_DATABASE_URL"] = pg.start()
                self.embedded.append(pg)
            if not self.settings.redis_url:
                rd = EmbeddedRedis(self.data_dir)
                env["AGENTFARM_REDIS_URL"] = rd.start()
                self.embedded.append(rd)
        metrics_dir = self.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        env["AGENTFARM_DATA_DIR"] = str(self.data_dir)
        os.environ.update(env)
        reset_settings_cache()
        return env

    def start_model_server(self, env: dict[str, str]) -> str:
        port = self.settings.scripted_llm_port or free_port()
        self._spawn(
            "scripted-llm",
            [sys.executable, "-m", "agentfarm.scripted_llm", "--port", str(port)],
            env,
        )
        _wait_for_port(port, timeout=15)
        return f"http://127.0.0.1:{port}/v1"

    def seed(self, model_base_url: str) -> str | None:
        """Migrate and seed; returns the admin token when it was created just now."""
        from agentfarm.admin import seed_dev

        return seed_dev(get_settings(), model_base_url)

    def start_farm(self, env: dict[str, str]) -> None:
        cli = [sys.executable, "-m", "agentfarm.cli"]
        port = str(self.settings.http_port)
        self._spawn("api", [*cli, "api", "--host", self.settings.http_host, "--port", port], env)
        threads = str(self.settings.worker_threads)
        self._spawn("worker", [*cli, "worker", "--processes", "1", "--threads", threads], env)
        self._spawn("scheduler", [*cli, "scheduler"], env)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        # Own session: the launcher decides the order in which things stop on Ctrl-C.
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        self.children.append((name, proc))
        log.info("started %s", name, extra={"pid": proc.pid})

    def supervise(self) -> int:
        """Wait until asked to stop or until a child dies; returns the exit code."""
        while not self.stop_requested.wait(0.5):
            for name, proc in self.children:
                code = proc.poll()
                if code is not None:
                    log.error("%s exited with code %s; stopping the farm", name, code)
                    return code or 1
        return 0

    def shutdown(self) -> None:
        """Stop children (newest first), then the embedded servers."""
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                proc.kill()
                proc.wait(timeout=5)
        for server in reversed(self.embedded):
            server.stop()  # type: ignore[attr-defined]


def _wait_for_port(port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def run_dev() -> int:
    """Entry point of ``agentfarm dev``."""
    farm = DevFarm(get_settings())
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: farm.stop_requested.set())
    code = 1
    try:
        env = farm.prepare()
        farm.settings = get_settings()
        model_url = farm.start_model_server(env)
        token = farm.seed(model_url)
        farm.start_farm(env)
        _wait_for_port(farm.settings.http_port, timeout=60)
        _banner(farm.settings, token)
        code = farm.supervise()
    finally:
        farm.shutdown()
        log.info("farm stopped")
    return code


def _banner(settings: Settings, token: str | None) -> None:
    token_file = settings.data_dir / "admin-token"
    lines = [
        "",
        f"agentfarm is serving on http://{settings.http_host}:{settings.http_port}",
        f"  admin token: {token_file}" + (f"  (new: {token})" if token else ""),
        "  try:",
        f"    TOKEN=$(cat {token_file})",
        f'    curl -s -H "Coder-Session-Token: $TOKEN" -d \'{{"content":[{{"type":"text",'
        f'"text":"hello"}}]}}\' http://{settings.http_host}:{settings.http_port}'
        "/api/experimental/chats",
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
