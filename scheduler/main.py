"""The scheduler process: APScheduler 3, active only while it holds the leader lock.

The lock is a Postgres session advisory lock on a dedicated connection (direct to Postgres:
session locks do not survive transaction pooling), so any number of replicas can run and
exactly one fires the jobs. Every ``scheduler_poll_s`` a standby tries the lock and the
leader checks that its session still holds it. When the leader dies its connection closes,
Postgres frees the lock and a standby takes over on its next poll, within one interval; a
leader that cannot check its lock stops firing at once. Misfires (a paused process, a busy
thread pool) coalesce into one run. A job only sends a message, and every actor is
idempotent, so a send from a partitioned old leader in its last interval is harmless.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler

from agentfarm import metrics
from agentfarm.settings import Settings, get_settings
from agentfarm.tasks.broker import get_broker
from scheduler.health import HealthServer
from scheduler.jobs import Job, jobs

log = logging.getLogger("agentfarm.scheduler")

# A bigint advisory key shows in pg_locks as classid (high half), objid (low half), objsubid 1.
HOLDS_LOCK_SQL = """
    SELECT EXISTS (SELECT 1 FROM pg_locks
                    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                      AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1)
"""


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


@dataclass
class JobRecord:
    """What this process last did with a job (unix times)."""

    every_s: float
    last_run_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None


class LeaderScheduler:
    """Polls for the advisory lock; runs the APScheduler jobs only while leader."""

    def __init__(self, settings: Settings, job_list: list[Job] | None = None):
        self.settings = settings
        self.jobs = job_list if job_list is not None else jobs(settings)
        self.records = {job.id: JobRecord(job.every_s) for job in self.jobs}
        self.stop = threading.Event()
        self.scheduler: BackgroundScheduler | None = None
        self.conn: psycopg.Connection[Any] | None = None
        self.last_check: float | None = None  # monotonic time of the last good lock poll

    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    def run(self) -> None:
        """Poll until ``stop`` is set, then step down."""
        while not self.stop.is_set():
            try:
                self._tick()
                self.last_check = time.monotonic()
            except Exception:
                log.warning("scheduler poll failed; standing by", exc_info=True)
                self._step_down()
            self.stop.wait(self.settings.scheduler_poll_s)
        self._step_down()

    def _tick(self) -> None:
        if self.conn is None or self.conn.closed:
            assert self.settings.database_url
            self.conn = psycopg.connect(
                _libpq_url(self.settings.database_url),
                autocommit=True,
                application_name="agentfarm-scheduler",
                connect_timeout=10,
                # Notice a dead server (or a partition) within ~20 s, not the OS default hours.
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=5,
                keepalives_count=3,
            )
        key = self.settings.scheduler_lock_key
        if self.scheduler is None:
            got = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if got and got[0]:
                self._lead()
            return
        held = self.conn.execute(HOLDS_LOCK_SQL, ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF))
        row = held.fetchone()
        if not (row and row[0]):
            log.warning("scheduler no longer holds the leader lock")
            self._step_down()

    def _lead(self) -> None:
        scheduler = BackgroundScheduler(
            timezone=UTC,
            # A late run still fires (no grace limit), and missed runs coalesce into one.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        for job in self.jobs:
            scheduler.add_job(
                self._fire, "interval", seconds=job.every_s, id=job.id, name=job.id, args=(job,)
            )
        scheduler.start()
        self.scheduler = scheduler
        metrics.SCHEDULER_LEADER.set(1)
        log.info("scheduler is leader", extra={"jobs": {j.id: j.every_s for j in self.jobs}})

    def _fire(self, job: Job) -> None:
        record = self.records[job.id]
        record.last_run_at = time.time()
        try:
            message = job.send()
        except Exception as exc:
            record.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("job send failed", extra={"job": job.id})
            return
        record.last_success_at = time.time()
        record.last_error = None
        metrics.SCHEDULER_LAST_SUCCESS.labels(job.id).set(record.last_success_at)
        log.info(
            "job sent",
            extra={"job": job.id, "message_id": getattr(message, "message_id", None)},
        )

    def _step_down(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
            metrics.SCHEDULER_LEADER.set(0)
            log.info("scheduler stepped down")
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, report): healthy while the lock polls succeed, leader or standby."""
        poll_s = self.settings.scheduler_poll_s
        checked = self.last_check
        healthy = checked is not None and time.monotonic() - checked <= 3 * poll_s + 10
        report = {
            "status": "ok" if healthy else "unavailable",
            "role": "leader" if self.is_leader else "standby",
            "leader": self.is_leader,
            "poll_s": poll_s,
            "jobs": {
                job_id: {
                    "every_s": r.every_s,
                    "last_run_at": _iso(r.last_run_at),
                    "last_success_at": _iso(r.last_success_at),
                    "last_error": r.last_error,
                }
                for job_id, r in self.records.items()
            },
        }
        return healthy, report


def main() -> None:
    """Entry point of ``agentfarm scheduler``."""

    settings = get_settings()
    # "job sent" is the one line per run; APScheduler's own three lines per run are noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    get_broker()
    leader = LeaderScheduler(settings)
    server = None
    if settings.scheduler_port:
        server = HealthServer(leader.health, settings.scheduler_host, settings.scheduler_port)
        try:
            server.start()
            log.info(
                "scheduler serving /healthz and /metrics",
                extra={"address": f"{settings.scheduler_host}:{server.port}"},
            )
        except OSError as exc:
            # Scheduling matters more than the probe; a failing probe makes this visible.
            log.error(
                "scheduler health endpoint disabled: cannot listen on %s:%s (%s)",
                settings.scheduler_host,
                settings.scheduler_port,
                exc,
            )
            server = None
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: leader.stop.set())
    try:
        leader.run()
    finally:
        if server is not None:
            server.close()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())
