"""Pickup latency, idle CPU and throughput: stock ``RedisBroker`` vs ``WakeableRedisBroker``.

For each broker this starts a real worker with the Dramatiq CLI in a subprocess
(``python -m dramatiq bench.pickup:setup_worker --processes 1 --threads 4``), then:

1. waits until the worker has been idle for ``--idle-before`` seconds, sends ``--samples``
   messages one at a time with a random 20-300 ms gap after each was picked up, and
   reports the pickup latency (actor start minus send time, both ``time.time()``);
2. sends ``--cold-samples`` more, each after ``--idle-before`` seconds of idleness;
3. measures the CPU used by the worker's process tree over ``--idle-cpu-seconds`` of no
   traffic, as a percentage of one core;
4. sends ``--burst`` no-op messages as fast as possible and reports end-to-end
   messages per second (first send to last ack).

Every key lives under a fresh namespace (``afbench-<pid>-<broker>``) and is deleted at
the end; nothing else in the Redis database is touched.  The whole run stops sampling
when ``--time-budget`` seconds have passed, so it stays bounded.

Usage::

    /tmp/probe-venv/bin/python bench/pickup.py --redis-url redis://127.0.0.1:6379/15
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dramatiq
import psutil
import redis
from dramatiq.brokers.redis import RedisBroker

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "afbench"
UNCONSUMED = "afbench_unconsumed"
ENV_KIND = "AFBENCH_BROKER"
ENV_URL = "AFBENCH_REDIS_URL"
ENV_NAMESPACE = "AFBENCH_NAMESPACE"
KINDS = ("stock", "wakeable")


def results_key(namespace: str) -> str:
    """The list the pickup actor pushes its latencies (seconds) onto."""
    return f"{namespace}:bench-results"


def build_broker(kind: str, url: str, namespace: str) -> RedisBroker:
    """Build the broker under test, with the bench actors declared on it."""
    if kind == "wakeable":
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from agentfarm.tasks.wakeable import WakeableRedisBroker

        broker: RedisBroker = WakeableRedisBroker(url=url, namespace=namespace)
    elif kind == "stock":
        broker = RedisBroker(url=url, namespace=namespace)
    else:
        raise ValueError(f"unknown broker kind {kind!r}")

    client = redis.Redis.from_url(url)
    key = results_key(namespace)

    def pickup(sent: float) -> None:
        client.rpush(key, time.time() - sent)

    def noop(index: int) -> None:
        pass

    dramatiq.actor(pickup, actor_name="pickup", queue_name=QUEUE, broker=broker, max_retries=0)
    dramatiq.actor(noop, actor_name="noop", queue_name=QUEUE, broker=broker, max_retries=0)
    # Same no-op on a queue no worker listens to: measures the bare enqueue cost.
    dramatiq.actor(
        noop, actor_name="noop_unconsumed", queue_name=UNCONSUMED, broker=broker, max_retries=0
    )
    return broker


def setup_worker() -> None:
    """Entry point for the Dramatiq CLI: build the broker named by the environment."""
    broker = build_broker(os.environ[ENV_KIND], os.environ[ENV_URL], os.environ[ENV_NAMESPACE])
    dramatiq.set_broker(broker)


@dataclass
class Result:
    """What one broker measured."""

    kind: str
    pickups_ms: list[float] = field(default_factory=list)
    cold_pickups_ms: list[float] = field(default_factory=list)
    idle_cpu_pct: float = float("nan")
    idle_cpu_worker_pct: float = float("nan")
    enqueue_per_s: float = float("nan")
    enqueue_alone_per_s: float = float("nan")
    burst_per_s: float = float("nan")
    truncated: bool = False


class WorkerProcess:
    """A ``python -m dramatiq`` subprocess (own session, so its whole tree can be stopped)."""

    def __init__(self, kind: str, url: str, namespace: str, threads: int) -> None:
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.update({ENV_KIND: kind, ENV_URL: url, ENV_NAMESPACE: namespace})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        cmd = [
            sys.executable,
            "-m",
            "dramatiq",
            "bench.pickup:setup_worker",
            "--processes",
            "1",
            "--threads",
            str(threads),
            "--path",
            str(ROOT),
            "--queues",
            QUEUE,
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.proc.pid)

    def tree(self) -> list[psutil.Process]:
        """The CLI's main process and its children (the worker process)."""
        return [self.ps, *self.ps.children(recursive=True)]

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds (user + system) used so far by the whole tree and by the children."""
        total = children = 0.0
        for proc in self.tree():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            used = times.user + times.system
            total += used
            if proc.pid != self.ps.pid:
                children += used
        return total, children

    def output_tail(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p50 of 100 values is the 50th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def run_one(kind: str, args: argparse.Namespace, deadline: float, rng: random.Random) -> Result:
    """Start a worker for ``kind``, measure everything, stop it and delete its keys."""
    namespace = f"afbench-{os.getpid()}-{kind}"
    client = redis.Redis.from_url(args.redis_url)
    broker = build_broker(kind, args.redis_url, namespace)
    pickup, noop = broker.get_actor("pickup"), broker.get_actor("noop")
    result = Result(kind)
    worker = WorkerProcess(kind, args.redis_url, namespace, args.threads)
    key = results_key(namespace)

    def one_pickup() -> float:
        pickup.send(time.time())
        popped = client.blpop([key], timeout=10)
        if popped is None:
            raise RuntimeError(f"{kind} worker did not process a message:\n{worker.output_tail()}")
        return float(popped[1]) * 1000

    try:
        # Warm-up: the first message also proves the worker has booted.
        pickup.send(time.time())
        if client.blpop([key], timeout=30) is None:
            raise RuntimeError(f"{kind} worker did not start:\n{worker.output_tail()}")

        time.sleep(args.idle_before)
        for _ in range(args.samples):
            if time.monotonic() > deadline:
                result.truncated = True
                break
            result.pickups_ms.append(one_pickup())
            time.sleep(rng.uniform(0.020, 0.300))

        for _ in range(args.cold_samples):
            if time.monotonic() > deadline:
                result.truncated = True
                break
            time.sleep(args.idle_before)
            result.cold_pickups_ms.append(one_pickup())

        time.sleep(args.idle_before)
        total0, children0 = worker.cpu_seconds()
        started = time.monotonic()
        time.sleep(args.idle_cpu_seconds)
        total1, children1 = worker.cpu_seconds()
        elapsed = time.monotonic() - started
        result.idle_cpu_pct = 100 * (total1 - total0) / elapsed
        result.idle_cpu_worker_pct = 100 * (children1 - children0) / elapsed

        unconsumed = broker.get_actor("noop_unconsumed")
        started = time.monotonic()
        for index in range(args.burst):
            unconsumed.send(index)
        result.enqueue_alone_per_s = args.burst / (time.monotonic() - started)

        started = time.monotonic()
        for index in range(args.burst):
            noop.send(index)
        result.enqueue_per_s = args.burst / (time.monotonic() - started)
        broker.join(QUEUE, interval=2, timeout=60_000)
        result.burst_per_s = args.burst / (time.monotonic() - started)
    finally:
        worker.stop()
        broker.close()
        broker.client.connection_pool.disconnect()
        for stale in client.scan_iter(match=f"{namespace}:*", count=1000):
            client.delete(stale)
        client.close()
    return result


def _fmt(value: float) -> str:
    return f"{value:8.1f}" if value == value else "     n/a"


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    """Print the comparison table."""
    print()
    print(
        f"Worker: real `python -m dramatiq` CLI subprocess, --processes 1 --threads "
        f"{args.threads}, worker_timeout 1000 ms (Dramatiq default); Redis {args.redis_url}"
    )
    print(
        f"Warm pickups: {args.samples} sends, random 20-300 ms idle gap after each pickup. "
        f"Cold pickups: each after {args.idle_before:.1f} s idle."
    )
    print()
    header = (
        f"{'broker':<10} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f"  {'cold n':>6} {'cold p50':>8} {'cold max':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        p = r.pickups_ms
        print(
            f"{r.kind:<10} {len(p):>4} {_fmt(_percentile(p, 50))} {_fmt(_percentile(p, 90))} "
            f"{_fmt(_percentile(p, 99))} {_fmt(max(p, default=float('nan')))}"
            f"  {len(r.cold_pickups_ms):>6} {_fmt(_percentile(r.cold_pickups_ms, 50))} "
            f"{_fmt(max(r.cold_pickups_ms, default=float('nan')))}"
            + ("  (truncated by --time-budget)" if r.truncated else "")
        )
    print()
    header = (
        f"{'broker':<10} {'idle CPU % tree':>15} {'idle CPU % worker':>17}"
        f" {'enqueue/s alone':>15} {'enqueue/s burst':>15} {'burst msg/s':>11}"
    )
    print(f"Idle CPU over {args.idle_cpu_seconds:.0f} s without traffic, in % of one core.")
    print(
        f"enqueue/s alone: {args.burst} sends to a queue no worker consumes.  burst: "
        f"{args.burst} no-op messages to the worker; enqueue/s while it works, and msg/s "
        "from first send to last ack."
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.kind:<10} {r.idle_cpu_pct:>15.2f} {r.idle_cpu_worker_pct:>17.2f}"
            f" {r.enqueue_alone_per_s:>15.0f} {r.enqueue_per_s:>15.0f} {r.burst_per_s:>11.0f}"
        )
    if len(results) == 2 and results[0].burst_per_s == results[0].burst_per_s:
        ratio = results[1].burst_per_s / results[0].burst_per_s
        print(f"\nburst throughput {results[1].kind}/{results[0].kind}: {ratio:.2f}x")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for both brokers and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--samples", type=int, default=100, help="warm pickups per broker")
    parser.add_argument("--cold-samples", type=int, default=5, help="pickups after idling")
    parser.add_argument("--idle-before", type=float, default=1.5, help="idle seconds")
    parser.add_argument("--idle-cpu-seconds", type=float, default=5.0)
    parser.add_argument("--burst", type=int, default=2000, help="no-op messages to time")
    parser.add_argument("--threads", type=int, default=4, help="worker threads")
    parser.add_argument(
        "--time-budget", type=float, default=100.0, help="stop sampling after this many seconds"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--brokers", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args(argv)

    redis.Redis.from_url(args.redis_url).ping()
    rng = random.Random(args.seed)
    started = time.monotonic()
    # Each broker gets an equal share of the sampling budget; the fixed costs (worker
    # start and stop, idle CPU, burst) come on top and take ~15 s per broker.
    share = args.time_budget / len(args.brokers)
    results: list[Result] = []
    for position, kind in enumerate(args.brokers):
        deadline = started + share * (position + 1)
        print(f"measuring {kind} ...", file=sys.stderr, flush=True)
        results.append(run_one(kind, args, deadline, rng))
    print_table(results, args)
    print(f"\ntotal wall time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
