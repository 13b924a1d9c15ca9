"""Shared plumbing of the farm benchmarks: where the farm is, its token, its Redis, its worker
processes. Every benchmark runs against a farm that is already up (``make run``, or any farm
given by --api/--token/--redis-url)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

DATA_DIR = Path(os.environ.get("AGENTFARM_DATA_DIR", ".agentfarm"))


def farm_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default="http://127.0.0.1:3000")
    parser.add_argument("--token", default=None, help="default: .agentfarm/admin-token")
    parser.add_argument("--redis-url", default=None, help="default: make run's embedded Redis")


def token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    return (DATA_DIR / "admin-token").read_text().strip()


def redis_url(args: argparse.Namespace) -> str:
    if args.redis_url:
        return str(args.redis_url)
    env = os.environ.get("AGENTFARM_REDIS_URL")
    if env:
        return env
    ports = json.loads((DATA_DIR / "ports.json").read_text())
    return f"redis://127.0.0.1:{ports['redis']}/0"


def database_url(args: argparse.Namespace) -> str:
    """The farm's Postgres: AGENTFARM_DATABASE_URL, else what its worker processes were given."""
    env = os.environ.get("AGENTFARM_DATABASE_URL")
    if env:
        return env
    for pid in worker_pids(redis_url(args)):
        if url := _env(pid).get("AGENTFARM_DATABASE_URL"):
            return url
    raise SystemExit("cannot find the farm's database: set AGENTFARM_DATABASE_URL")


class Counters:
    """Work the farm's Postgres and Redis did, counted by the servers themselves:
    transactions (``pg_stat_database`` commits + rollbacks of the farm's database), Redis
    commands (``INFO commandstats``) and new Redis connections (``INFO stats``).

    Postgres backends flush their counters at most once a second while busy and after ~10 s
    idle, so :meth:`snapshot` waits ``settle_s`` first; this class's own queries are taken
    off the figures.
    """

    def __init__(self, database_url: str, redis_url: str, settle_s: float = 11.0) -> None:
        import psycopg
        import redis

        self.pg = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"),
                                  autocommit=True)  # fmt: skip
        self.redis = redis.Redis.from_url(redis_url)
        self.settle_s = settle_s

    def snapshot(self) -> dict[str, float]:
        time.sleep(self.settle_s)
        self.pg.execute("SELECT pg_stat_clear_snapshot()")
        (xacts,) = self.pg.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()  # type: ignore[misc]
        stats = self.redis.info("commandstats")
        calls = sum(int(v["calls"]) for v in stats.values())  # type: ignore[union-attr]
        conns = int(self.redis.info("stats")["total_connections_received"])  # type: ignore[index]
        return {"pg_xacts": float(xacts), "redis_calls": float(calls), "redis_conns": float(conns)}

    def per_turn(
        self, before: dict[str, float], after: dict[str, float], turns: int
    ) -> dict[str, float]:
        own_pg = 2  # the clear-snapshot and the read of the second snapshot (autocommit)
        own_redis = 2  # the two INFO calls of the first snapshot
        return {
            "pg_transactions_per_turn": (after["pg_xacts"] - before["pg_xacts"] - own_pg) / turns,
            "redis_commands_per_turn": (after["redis_calls"] - before["redis_calls"] - own_redis)
            / turns,
            "redis_connections_per_turn": (after["redis_conns"] - before["redis_conns"]) / turns,
        }

    def close(self) -> None:
        self.pg.close()
        self.redis.close()


def client(args: argparse.Namespace, timeout: float = 60) -> httpx.Client:
    return httpx.Client(
        base_url=args.api, headers={"Coder-Session-Token": token(args)}, timeout=timeout
    )


def say(text: str) -> dict[str, object]:
    return {"content": [{"type": "text", "text": text}]}


def worker_pids(redis_url: str) -> list[int]:
    """PIDs of this farm's Dramatiq worker processes (those whose AGENTFARM_REDIS_URL is the
    farm's; not the parent that forks them)."""
    out = subprocess.run(
        ["pgrep", "-f", "dramatiq workers.main"], capture_output=True, text=True, check=False
    ).stdout.split()
    pids = [int(p) for p in out if _env(int(p)).get("AGENTFARM_REDIS_URL") == redis_url]
    children = [p for p in pids if _ppid(p) in pids]
    return children or pids


def _env(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _ppid(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99, max."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99, ordered[-1]


def wait_idle(http: httpx.Client, chat_id: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chat = http.get(f"/api/experimental/chats/{chat_id}").json()
        if chat["status"] in ("waiting", "error"):
            return dict(chat)
        time.sleep(0.02)
    raise SystemExit(f"chat {chat_id} did not finish within {timeout}s")


class Cpu:
    """CPU seconds used by a set of process trees between ``start`` and ``stop``."""

    def __init__(self, roots: list[psutil.Process]) -> None:
        self.roots = roots
        self.before: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        out = {}
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        times = proc.cpu_times()
                        out[proc.pid] = times.user + times.system
        return out

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> float | None:
        if not self.roots:
            return None
        return sum(t - self.before.get(pid, 0.0) for pid, t in self._now().items())

    def stop_by_role(self) -> dict[str, float]:
        """CPU seconds since ``start`` per farm role (api, worker, scheduler, model, redis,
        postgres, other), from each process's command line."""
        out: dict[str, float] = {}
        for pid, used in self._now().items():
            role = _role(pid)
            out[role] = out.get(role, 0.0) + used - self.before.get(pid, 0.0)
        return out


def _role(pid: int) -> str:
    try:
        cmd = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return "other"
    for needle, role in (("agentfarm.cli api", "api"), ("dramatiq", "worker"),
                         ("agentfarm.cli scheduler", "scheduler"), ("scripted_llm", "model"),
                         ("redis-server", "redis"), ("postgres", "postgres")):  # fmt: skip
        if needle in cmd:
            return role
    return "other"


def _listener(port: int | None) -> psutil.Process | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def farm_processes(api: str) -> list[psutil.Process]:
    """The farm's process trees: the ``agentfarm dev`` launcher that owns the API (or the API
    alone) and the embedded Postgres, which runs detached."""
    roots = []
    if api_proc := _listener(urlsplit(api).port):
        parent = api_proc.parent()
        launcher = parent and "agentfarm" in " ".join(parent.cmdline())
        roots.append(parent if launcher and parent else api_proc)
    with contextlib.suppress(OSError, KeyError, ValueError):
        ports = json.loads((DATA_DIR / "ports.json").read_text())
        if postgres := _listener(int(ports["postgres"])):
            roots.append(postgres)
    return roots
