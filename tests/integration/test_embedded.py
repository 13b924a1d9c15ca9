"""Embedded PostgreSQL and Redis: start, connect over TCP, stop cleanly, restart on same ports."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import psycopg
import pytest
import redis

from agentfarm.embedded import EmbeddedPostgres, EmbeddedRedis, start_embedded

SERVER_NAMES = {"postgres", "redis-server", "pg_ctl"}


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _servers_mentioning(path: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        if proc.info["name"] in SERVER_NAMES and proc.info["status"] != psutil.STATUS_ZOMBIE:
            if any(str(path) in arg for arg in proc.info["cmdline"] or []):
                found.append(proc)
    return found


def _pg_conninfo(url: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{_port(url)}/agentfarm"


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(5)
    return proc.pid


def test_start_stop_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / ".agentfarm"
    pg, rd = start_embedded(data_dir)
    try:
        assert pg.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        assert pg.url.endswith("/agentfarm")
        assert rd.url.startswith("redis://127.0.0.1:") and rd.url.endswith("/0")
        pg_port, rd_port = _port(pg.url), _port(rd.url)

        with psycopg.connect(_pg_conninfo(pg.url), connect_timeout=5) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table survivor (id int primary key)")
            conn.execute("insert into survivor values (42)")

        client = redis.Redis.from_url(rd.url)
        try:
            assert client.ping()
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        finally:
            client.close()

        # A second handle (e.g. a new `agentfarm dev` after a crash) reuses the running servers.
        assert EmbeddedPostgres(data_dir).start() == pg.url
        assert EmbeddedRedis(data_dir).start() == rd.url

        postmaster_file = data_dir / "postgres" / "postmaster.pid"
        postmaster_lines = postmaster_file.read_text().splitlines()
        postmaster = psutil.Process(int(postmaster_lines[0]))
        server_pids = [postmaster.pid, *(c.pid for c in postmaster.children(recursive=True))]
        server_pids.append(int((data_dir / "redis" / "redis.pid").read_text()))
    finally:
        rd.stop()
        pg.stop()

    rd.stop()  # safe twice
    pg.stop()
    assert not _accepts(pg_port)
    assert not _accepts(rd_port)
    assert [pid for pid in server_pids if _alive(pid)] == []
    assert _servers_mentioning(data_dir) == []

    # A crashed run leaves a postmaster.pid behind whose process is gone.
    postmaster_lines[0] = str(_dead_pid())
    postmaster_file.write_text("\n".join(postmaster_lines) + "\n")

    pg, rd = start_embedded(data_dir)
    try:
        assert (_port(pg.url), _port(rd.url)) == (pg_port, rd_port)
        with psycopg.connect(_pg_conninfo(pg.url), connect_timeout=5) as conn:
            assert conn.execute("select id from survivor").fetchall() == [(42,)]
    finally:
        rd.stop()
        pg.stop()
    assert not _accepts(pg_port)
    assert _servers_mentioning(data_dir) == []


def test_taken_port_falls_back_to_a_free_one(tmp_path: Path) -> None:
    rd = EmbeddedRedis(tmp_path)
    port = _port(rd.start())
    rd.stop()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        rd = EmbeddedRedis(tmp_path)
        try:
            assert _port(rd.start()) != port
        finally:
            rd.stop()


def test_long_data_dir_puts_socket_under_tmp(tmp_path: Path) -> None:
    data_dir = tmp_path / ("x" * 80) / ".agentfarm"  # pgdata socket path > 107 bytes
    pg = EmbeddedPostgres(data_dir)
    try:
        with psycopg.connect(_pg_conninfo(pg.start()), connect_timeout=5) as conn:
            row = conn.execute("show unix_socket_directories").fetchone()
        assert row is not None and row[0].startswith("/tmp/agentfarm-pg-")
        assert len(row[0]) < 40
    finally:
        pg.stop()
    assert not Path(row[0]).exists()
    assert _servers_mentioning(data_dir) == []


@pytest.mark.parametrize("cls", [EmbeddedPostgres, EmbeddedRedis])
def test_url_before_start_raises(
    tmp_path: Path, cls: type[EmbeddedPostgres | EmbeddedRedis]
) -> None:
    with pytest.raises(RuntimeError):
        _ = cls(tmp_path).url
