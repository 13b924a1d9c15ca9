"""The scheduler process: APScheduler 3, active only while it holds the leader lock.

The lock is a Postgres session advisory lock on a dedicated connection, so any number of
replicas can run and exactly one fires the jobs; when the leader dies, its connection closes,
Postgres frees the lock and a standby takes over on its next poll.
"""

from __future__ import annotations

import logging
import signal
import threading

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler

from agentfarm.settings import Settings, get_settings
from scheduler.jobs import jobs

log = logging.getLogger("agentfarm.scheduler")


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class LeaderScheduler:
    """Polls for the advisory lock; runs the APScheduler jobs only while leader."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stop = threading.Event()
        self.scheduler: BackgroundScheduler | None = None
        self.conn: psycopg.Connection | None = None

    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - lost the database: step down, retry
                log.warning("scheduler lost its database connection", exc_info=True)
                self._step_down()
            self.stop.wait(self.settings.scheduler_poll_s)
        self._step_down()

    def _tick(self) -> None:
        if self.conn is None or self.conn.closed:
            assert self.settings.database_url
            self.conn = psycopg.connect(_libpq_url(self.settings.database_url), autocommit=True)
        if self.scheduler is None:
            got = self.conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (self.settings.scheduler_lock_key,)
            ).fetchone()
            if got and got[0]:
                self._lead()
        else:
            self.conn.execute("SELECT 1")

    def _lead(self) -> None:
        scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        )
        for job in jobs(self.settings):
            scheduler.add_job(job.send, "interval", seconds=job.every_s, id=job.id)
        scheduler.start()
        self.scheduler = scheduler
        log.info("scheduler is leader", extra={"jobs": [j.id for j in jobs(self.settings)]})

    def _step_down(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
            log.info("scheduler stepped down")
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


def main() -> None:
    """Entry point of ``agentfarm scheduler``."""
    from workers.broker import get_broker

    settings = get_settings()
    get_broker()
    leader = LeaderScheduler(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: leader.stop.set())
    leader.run()
