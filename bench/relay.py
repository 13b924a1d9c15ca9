"""One shim process relaying N concurrent SSE streams (issue 8 (c)): events/s delivered and
delivery lag, for N up to 1,000.

    make run   # in another terminal (one API process)
    .venv/bin/python bench/relay.py [--streams 100 500 1000] [--chats 20] [--rate 200]

N SSE clients follow C chats (N/C each). Events are written straight into the chats' Redis
streams (as a worker's step does), each carrying its send time, at ``--rate`` events/s in
total; every client records when each event arrives. Lag = arrival - send (same machine's
clock). Clients and API share this machine's cores, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import farmlib


async def follow(
    http: httpx.AsyncClient,
    chat_id: str,
    lags: list[float],
    ready: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    async with http.stream(
        "GET",
        f"/api/experimental/chats/{chat_id}/stream",
        headers={"Accept": "text/event-stream"},
    ) as response:
        ready.set()
        async for line in response.aiter_lines():
            if stop.is_set():
                return
            if line.startswith("data:") and '"bench_sent"' in line:
                event = json.loads(line[5:])
                sent = event["message_part"]["part"]["bench_sent"]
                lags.append(time.time() - sent)


async def run(
    args: argparse.Namespace, streams: int, chat_ids: list[str]
) -> tuple[float, list[float]]:
    headers = {"Coder-Session-Token": farmlib.token(args)}
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    lags: list[float] = []
    stop = asyncio.Event()
    r = aioredis.from_url(farmlib.redis_url(args))
    async with httpx.AsyncClient(
        base_url=args.api, headers=headers, timeout=httpx.Timeout(60, read=None), limits=limits
    ) as http:
        readies = [asyncio.Event() for _ in range(streams)]
        tasks = [
            asyncio.create_task(follow(http, chat_ids[i % len(chat_ids)], lags, readies[i], stop))
            for i in range(streams)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readies)), 120)
        await asyncio.sleep(1.0)
        interval = 1.0 / args.rate
        started = time.perf_counter()
        sent = 0
        while time.perf_counter() - started < args.seconds:
            chat = chat_ids[sent % len(chat_ids)]
            part = {"type": "text", "text": "x", "bench_sent": time.time()}
            event = {"type": "message_part", "chat_id": chat,
                     "message_part": {"role": "assistant", "part": part}}  # fmt: skip
            await r.xadd(f"chat:{chat}:events", {"e": json.dumps(event)}, maxlen=10000)
            sent += 1
            delay = started + sent * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        expected = sent * (streams // len(chat_ids))
        deadline = time.perf_counter() + 10
        while len(lags) < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await r.aclose()
    return len(lags) / elapsed, lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    farmlib.farm_args(parser)
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s written in total")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with farmlib.client(args) as http:
        chat_ids = []
        for _ in range(args.chats):
            chat = http.post("/api/experimental/chats", json=farmlib.say("[[reply: relay]]"))
            chat_ids.append(chat.json()["id"])
        for chat_id in chat_ids:
            farmlib.wait_idle(http, chat_id)
    print(f"{args.chats} chats, {args.rate:.0f} events/s written, {args.seconds:.0f} s per run")
    print(f"{'streams':>8} {'delivered ev/s':>15} {'lag p50':>9} {'lag p99':>9} {'lag max':>9}")
    for n in args.streams:
        rate, lags = asyncio.run(run(args, n, chat_ids))
        if not lags:
            print(f"{n:>8} nothing delivered")
            continue
        p50, p99, worst = farmlib.percentiles(lags)
        print(
            f"{n:>8} {rate:>15.0f} {p50 * 1000:>7.1f}ms {p99 * 1000:>7.1f}ms {worst * 1000:>7.1f}ms"
        )


if __name__ == "__main__":
    main()
