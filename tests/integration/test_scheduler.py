"""Two real ``agentfarm scheduler`` processes against the test Postgres and Redis: only the
leader sends, each job once per interval; SIGKILLing the leader hands leadership to the other
within the lock-check interval; both answer /healthz and /metrics.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_lib

from tests.fixtures.farm import free_port

POLL_S = 0.5
EVERY_S = 1.0
JOBS = {"chat.recover_stale", "insights.refresh", "retention.purge", "usage.rollup",
        "workspace.autostop"}  # fmt: skip


@dataclass
class Scheduler:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2)
        except httpx.TransportError:
            return None

    def health(self) -> dict[str, Any] | None:
        resp = self.get("/healthz")
        return resp.json() if resp is not None and resp.status_code == 200 else None

    def is_leader(self) -> bool:
        health = self.health()
        return bool(health and health["leader"])

    def sends(self) -> list[tuple[str, str]]:
        """(job, message id) of every send this process logged."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "job sent":
                out.append((event["job"], event["message_id"]))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def wait_for(what: str, check: Callable[[], bool], timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.02)


@pytest.fixture
def scheduler_env(database_url: str, scratch_redis: redis_lib.Redis) -> dict[str, str]:
    kw = scratch_redis.connection_pool.connection_kwargs
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENTFARM_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    return {
        **env,
        "AGENTFARM_DATABASE_URL": database_url,
        "AGENTFARM_REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}",
        "AGENTFARM_BROKER_NAMESPACE": f"sched-{uuid.uuid4().hex[:8]}",
        "AGENTFARM_SCHEDULER_LOCK_KEY": str(random.randrange(1, 2**40)),
        "AGENTFARM_SCHEDULER_POLL_S": str(POLL_S),
        "AGENTFARM_RECOVER_STALE_EVERY_S": str(EVERY_S),
        "AGENTFARM_WORKSPACE_AUTOSTOP_EVERY_S": str(EVERY_S),
        "AGENTFARM_RETENTION_PURGE_EVERY_S": str(EVERY_S),
        "AGENTFARM_USAGE_ROLLUP_EVERY_S": str(EVERY_S),
        "AGENTFARM_INSIGHTS_REFRESH_EVERY_S": str(EVERY_S),
        "AGENTFARM_LOG_JSON": "true",
    }


@pytest.fixture
def schedulers(scheduler_env: dict[str, str], tmp_path: Path) -> Iterator[list[Scheduler]]:
    started = []
    for name in ("a", "b"):
        port = free_port()
        log_path = tmp_path / f"scheduler-{name}.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agentfarm.cli", "scheduler"],
                env={**scheduler_env, "AGENTFARM_SCHEDULER_PORT": str(port)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(Scheduler(proc, port, log_path))
    yield started
    for scheduler in started:
        scheduler.stop()


def queued(client: redis_lib.Redis, namespace: str) -> dict[str, dict[str, Any]]:
    """Messages waiting on the scheduled queue, by message id (the hash is keyed by the
    broker's per-enqueue id)."""
    bodies = [json.loads(v) for v in client.hgetall(f"{namespace}:scheduled.msgs").values()]
    return {body["message_id"]: body for body in bodies}


def test_one_leader_sends_each_job_once_per_interval_and_hands_over(
    schedulers: list[Scheduler], scheduler_env: dict[str, str], scratch_redis: redis_lib.Redis
) -> None:
    namespace = scheduler_env["AGENTFARM_BROKER_NAMESPACE"]
    for s in schedulers:
        wait_for("the scheduler's /healthz", lambda s=s: s.health() is not None, 60, s.log_path)
    wait_for("a leader", lambda: any(s.is_leader() for s in schedulers), 10)
    leader, standby = sorted(schedulers, key=lambda s: not s.is_leader())
    wait_for(
        "three sends of every job",
        lambda: all(sum(job == j for job, _ in leader.sends()) >= 3 for j in JOBS),
        30,
        leader.log_path,
    )

    # Only the leader sent, and what it sent is exactly what is on the queue.
    messages = queued(scratch_redis, namespace)
    sent = leader.sends()
    assert standby.sends() == []
    assert {job for job, _ in sent} == JOBS
    assert {mid for _, mid in sent} <= set(messages)
    assert {m["actor_name"] for m in messages.values()} == JOBS
    # Once per interval: a job's sends are no denser than its interval allows (two senders
    # would double them).
    for job in JOBS:
        stamps = sorted(m["message_timestamp"] / 1000 for m in messages.values()
                        if m["actor_name"] == job)  # fmt: skip
        assert len(stamps) <= (stamps[-1] - stamps[0]) / EVERY_S + 2, (job, stamps)

    health = leader.health()
    assert health is not None and health["status"] == "ok" and health["role"] == "leader"
    assert set(health["jobs"]) == JOBS
    assert all(j["last_success_at"] and j["every_s"] == EVERY_S for j in health["jobs"].values())
    standby_health = standby.health()
    assert standby_health is not None and standby_health["role"] == "standby"
    leader_metrics = leader.get("/metrics")
    assert leader_metrics is not None and leader_metrics.status_code == 200
    assert "agentfarm_scheduler_leader 1.0" in leader_metrics.text
    for job in JOBS:
        assert f'agentfarm_scheduler_last_success_timestamp_seconds{{job="{job}"}}' in (
            leader_metrics.text
        )
    standby_metrics = standby.get("/metrics")
    assert standby_metrics is not None and "agentfarm_scheduler_leader 0.0" in standby_metrics.text

    # SIGKILL the leader: Postgres frees its lock, the standby takes it on its next poll.
    os.killpg(leader.proc.pid, signal.SIGKILL)
    # (The bound adds slack for a loaded machine; the design bound is one poll interval.)
    wait_for("the standby to lead", standby.is_leader, POLL_S + 1.5, standby.log_path)
    wait_for(
        "the new leader's sends",
        lambda: {job for job, _ in standby.sends()} == JOBS,
        15,
        standby.log_path,
    )
    assert {mid for _, mid in standby.sends()} <= set(queued(scratch_redis, namespace))

    # SIGTERM stops the scheduler cleanly.
    standby.proc.terminate()
    assert standby.proc.wait(timeout=15) == 0
