"""Throughput against raw Dramatiq, and worker memory (issue 8 (a), (e)).

    make run   # in another terminal
    .venv/bin/python bench/turns.py [--turns 1000] [--concurrency 16] [--noop 5000]

1. Raw Dramatiq: a stock ``RedisBroker`` worker (``bench/noop_actors.py``) with the farm's
   worker settings (processes × threads) on the farm's own Redis drains N no-op messages:
   messages/s.
2. agentfarm: single-step turns on the running farm, the scripted model answering at once
   (``[[reply: ok]]``): C chats, each sent its next message as soon as the owner's watch
   stream says the previous turn is ``waiting``: completed turns/s, and the ratio to (1).
3. Worker RSS (each worker process of the farm) before and after the turns.
4. CPU per turn of each part of the farm (API, worker, scheduler, scripted model, Redis,
   Postgres) while the turns ran: where a turn's cost goes, next to a no-op message's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import farmlib


def raw_dramatiq(url: str, messages: int, processes: int, threads: int) -> float:
    """No-op messages per second through a stock Dramatiq worker."""
    from dramatiq.brokers.redis import RedisBroker

    env = {**os.environ, "BENCH_REDIS_URL": url, "dramatiq_queue_prefetch": str(threads)}
    root = Path(__file__).resolve().parent.parent
    client = redis.Redis.from_url(url)
    for key in client.scan_iter("bench-noop:*"):
        client.delete(key)
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "bench.noop_actors", "-p", str(processes),
         "-t", str(threads)],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        sys.path.insert(0, str(root))
        os.environ["BENCH_REDIS_URL"] = url
        from bench import noop_actors

        broker: RedisBroker = noop_actors.broker
        noop_actors.noop.send()  # wait until the worker is up
        deadline = time.monotonic() + 60
        while int(client.get(noop_actors.COUNTER) or 0) < 1:
            if time.monotonic() > deadline:
                raise SystemExit("the no-op worker did not start")
            time.sleep(0.05)
        message = noop_actors.noop.message()
        started = time.perf_counter()
        for _ in range(messages):
            broker.enqueue(message.copy())
        while int(client.get(noop_actors.COUNTER) or 0) < messages + 1:
            time.sleep(0.002)
        return messages / (time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


async def farm_turns(
    args: argparse.Namespace,
    total: int,
    concurrency: int,
    on_start: Callable[[], None] = lambda: None,
    on_stop: Callable[[], None] = lambda: None,
) -> float:
    """Completed single-step turns per second; ``on_start``/``on_stop`` (run in a thread: they
    may wait for counters to settle) bracket exactly the timed turns."""
    headers = {"Coder-Session-Token": farmlib.token(args)}
    ws_url = args.api.replace("http", "ws", 1) + "/api/experimental/chats/watch"
    async with httpx.AsyncClient(base_url=args.api, headers=headers, timeout=60) as http:
        async with connect(ws_url, additional_headers=headers, max_queue=None) as ws:
            chats = []
            for _ in range(concurrency):
                resp = await http.post(
                    "/api/experimental/chats", json=farmlib.say("[[reply: ready]]")
                )
                chats.append(resp.json()["id"])
            await _until_idle(http, chats)
            await asyncio.sleep(1.0)  # titles and other side jobs of the creates settle
            while True:  # drain watch events from the warm-up
                try:
                    await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    break
            await asyncio.to_thread(on_start)
            busy: set[str] = set()
            sent = completed = 0
            tasks: set[asyncio.Task[httpx.Response]] = set()

            def send(chat: str) -> None:
                nonlocal sent
                sent += 1
                busy.add(chat)
                task = asyncio.create_task(
                    http.post(f"/api/experimental/chats/{chat}/messages",
                              json=farmlib.say("[[reply: ok]]"))
                )  # fmt: skip
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            started = time.perf_counter()
            for chat in chats:
                send(chat)
            while completed < total:
                event = json.loads(await asyncio.wait_for(ws.recv(), 60))
                chat = event["chat"]["id"]
                if event["kind"] != "status_change" or chat not in busy:
                    continue
                if event["chat"]["status"] not in ("waiting", "error"):
                    continue
                busy.discard(chat)
                completed += 1
                if sent < total:
                    send(chat)
            elapsed = time.perf_counter() - started
            await asyncio.gather(*tasks)
            await asyncio.to_thread(on_stop)
            return total / elapsed


async def _until_idle(http: httpx.AsyncClient, chats: list[str]) -> None:
    deadline = time.monotonic() + 120
    pending = set(chats)
    while pending and time.monotonic() < deadline:
        for chat in list(pending):
            if (await http.get(f"/api/experimental/chats/{chat}")).json()["status"] in (
                "waiting",
                "error",
            ):
                pending.discard(chat)
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    farmlib.farm_args(parser)
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--noop", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=1, help="the farm worker's -p")
    parser.add_argument("--threads", type=int, default=8, help="the farm worker's -t")
    args = parser.parse_args()

    pids = farmlib.worker_pids(farmlib.redis_url(args))
    before = {pid: farmlib.rss_mb(pid) for pid in pids}
    noop_rate = raw_dramatiq(farmlib.redis_url(args), args.noop, args.processes, args.threads)
    cpu = farmlib.Cpu(farmlib.farm_processes(args.api))
    counters = farmlib.Counters(farmlib.database_url(args), farmlib.redis_url(args))
    marks: dict[str, Any] = {}

    def start() -> None:
        marks["before"] = counters.snapshot()
        cpu.start()

    def stop() -> None:
        marks["by_role"] = cpu.stop_by_role()
        marks["after"] = counters.snapshot()

    turn_rate = asyncio.run(farm_turns(args, args.turns, args.concurrency, start, stop))
    by_role: dict[str, float] = marks["by_role"]
    counted = counters.per_turn(marks["before"], marks["after"], args.turns)
    counters.close()
    after = {pid: farmlib.rss_mb(pid) for pid in pids if Path(f"/proc/{pid}").exists()}

    print(f"worker settings: {args.processes} process(es) x {args.threads} threads")
    print(f"{'measure':<44} {'value':>12}")
    print(f"{'raw Dramatiq no-op messages/s':<44} {noop_rate:>12.1f}")
    print(f"{'agentfarm single-step turns/s':<44} {turn_rate:>12.1f}")
    print(f"{'ratio turns/s : no-op msg/s':<44} {turn_rate / noop_rate:>11.1%}")
    per_turn = {role: used * 1000 / args.turns for role, used in by_role.items()}
    if per_turn:
        shown = ", ".join(
            f"{r} {ms:.1f}" for r, ms in sorted(per_turn.items(), key=lambda x: -x[1])
        )
        print(f"CPU ms per turn (timed turns only): total {sum(per_turn.values()):.1f} = {shown}")
    print(f"Postgres transactions per turn (counted): {counted['pg_transactions_per_turn']:.2f}")
    redis_line = (
        f"Redis commands per turn (counted): {counted['redis_commands_per_turn']:.1f}, "
        f"new Redis connections per turn: {counted['redis_connections_per_turn']:.2f}"
    )
    print(redis_line)
    for pid in pids:
        print(f"worker {pid} RSS before / after {args.turns} turns: "
              f"{before[pid]:.0f} MB / {after.get(pid, float('nan')):.0f} MB")  # fmt: skip
    figures = {
        "cpu_ms_per_turn": round(sum(per_turn.values()), 2),
        **{f"cpu_ms_per_turn_{role}": round(ms, 2) for role, ms in per_turn.items()},
        **{k: round(v, 2) for k, v in counted.items()},
        "turns_per_s": round(turn_rate, 1),
        "noop_msgs_per_s": round(noop_rate, 1),
        "worker_rss_mb_after": round(max(after.values(), default=0.0), 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
