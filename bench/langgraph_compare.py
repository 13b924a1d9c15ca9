"""agentfarm against a LangGraph dev server (issue 8 (g)): idle pickup and single-step turns/s.

    make run               # in another terminal: the farm on :3000
    make bench-langgraph   # builds .venv-langgraph (bench/langgraph-requirements.txt), runs this
    # or, once .venv-langgraph exists:
    .venv/bin/python bench/langgraph_compare.py [--pickups 100] [--turns 1000] [--concurrency 16]

The script starts ``langgraph dev`` itself from ``.venv-langgraph`` (LangGraph never enters the
project's venv): in-memory runtime, the graph in ``bench/langgraph_app`` (one node, langchain_core's
``FakeListChatModel`` answering "ok" at once), ``--no-reload``, as many concurrent jobs as the
farm's worker has threads, on a free loopback port, from a scratch copy of the app (its
``.langgraph_api`` files land there), offline (no tracing, analytics, version check or browser),
and stops it at the end. The farm's model is the scripted one: ``[[reply: ok]]`` answers at once.

Both systems are measured in this one run, by the same client (httpx on asyncio):

1. Idle pickup: one client, one run at a time, a random 200-500 ms idle gap after each run
   completes, agentfarm and LangGraph samples alternating. Timed from just before the POST
   that starts the run to
   - running: the first sign at the client that a worker executes the run. agentfarm: the
     chat's ``status: running`` event on its SSE stream (opened beforehand, as a UI does);
     LangGraph: the first ``tasks`` event (the node started) of ``POST /threads/{id}/runs/stream``;
   - first token: agentfarm's first ``message_part``; LangGraph's first ``messages`` event.
2. Throughput: C lanes, each owning one chat / one thread, send the next turn as soon as their
   previous one is complete. agentfarm: ``POST …/messages``, then ``status: waiting`` on the
   chat's SSE stream; LangGraph: ``POST /threads/{id}/runs/wait`` returns. The N turns run in
   halves, agentfarm, LangGraph, LangGraph, agentfarm, so a drift in the shared machine's load
   hits both alike: N over the summed wall time of a system's halves (first send to last
   completion), and the CPU time its server processes used meanwhile, per turn (agentfarm:
   API, worker, scheduler, scripted model, Redis and Postgres; LangGraph: its one process).
   Every chat / thread has had a turn or two before it is timed.

What differs: ``langgraph dev`` keeps threads, runs and checkpoints in its process's memory
(pickled to ``.langgraph_api`` every 10 s), with no Postgres or Redis, so a run is durable only
as of the last flush; its queue looks for pending runs every 0.5 s when it found none the last
time (``langgraph_runtime_inmem.ops.Runs.next``), which is what its idle pickup shows. Its
dev-mode blocking-call detector (blockbuster) stays on, as ``langgraph dev`` has it. The farm's
model answers over HTTP from another process (its TTFT, printed, is in the farm's figures); the
fake model is a function call. A LangGraph server on Postgres and Redis is not measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import farmlib, overhead  # noqa: E402

APP_DIR = ROOT / "bench" / "langgraph_app"
GRAPH = "reply"  # the graph id in bench/langgraph_app/langgraph.json
TEXT = "[[reply: ok]]"
# langgraph dev must not reach out: no tracing, no CLI analytics, no PyPI version check.
OFFLINE_ENV = {
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
}
# Keys that would turn on LangSmith reporting or the license beacon.
ONLINE_KEYS = (
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
    "LANGGRAPH_CLOUD_LICENSE_KEY",
    "LANGSMITH_CONTROL_PLANE_API_KEY",
)


Turn = Callable[[], Awaitable[bool]]  # one lane's next turn; True if it completed fine


@dataclass
class Timing:
    """Seconds from the POST to each signal; ``running``/``token`` are None if never seen."""

    running: float | None
    token: float | None
    done: float
    ok: bool


class FarmChat:
    """One farm chat with its SSE stream open; ``turn`` sends a message and times it."""

    def __init__(self, http: httpx.AsyncClient, chat_id: str) -> None:
        self.http = http
        self.chat_id = chat_id
        self.events: asyncio.Queue[tuple[str, str | None, float]] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self.events.get(), 30)  # the snapshot: the relay is subscribed

    async def close(self) -> None:
        if self.reader:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader

    async def _read(self) -> None:
        url = f"/api/experimental/chats/{self.chat_id}/stream"
        headers = {"Accept": "text/event-stream"}
        timeout = httpx.Timeout(60, read=None)
        async with self.http.stream("GET", url, headers=headers, timeout=timeout) as response:
            response.raise_for_status()
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind in ("status", "message_part"):
                    status = json.loads(line[6:])["status"]["status"] if kind == "status" else None
                    self.events.put_nowait((kind, status, time.perf_counter()))

    async def turn(self) -> Timing:
        while not self.events.empty():  # what the previous turn left behind
            self.events.get_nowait()
        sent = time.perf_counter()
        response = await self.http.post(
            f"/api/experimental/chats/{self.chat_id}/messages", json=farmlib.say(TEXT)
        )
        response.raise_for_status()
        running = token = None
        while True:
            kind, status, at = await asyncio.wait_for(self.events.get(), 60)
            if kind == "message_part":
                token = token or at - sent
            elif status == "running":
                running = running or at - sent
            elif status == "error" or (status == "waiting" and (running or token)):
                return Timing(running, token, at - sent, status == "waiting")

    async def ok_turn(self) -> bool:
        return (await self.turn()).ok


async def farm_chats(http: httpx.AsyncClient, count: int) -> list[FarmChat]:
    """``count`` chats whose first turn is done, each with its SSE stream open."""
    ids = []
    for _ in range(count):
        response = await http.post("/api/experimental/chats", json=farmlib.say(TEXT))
        response.raise_for_status()
        ids.append(response.json()["id"])
    deadline = time.monotonic() + 120
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for chat_id in list(pending):
            chat = (await http.get(f"/api/experimental/chats/{chat_id}")).json()
            if chat["status"] in ("waiting", "error"):
                pending.discard(chat_id)
        await asyncio.sleep(0.1)
    if pending:
        raise SystemExit(f"{len(pending)} farm chats did not finish their first turn")
    await asyncio.sleep(1.0)  # titles and other side jobs of the creates settle
    chats = [FarmChat(http, chat_id) for chat_id in ids]
    await asyncio.gather(*(chat.open() for chat in chats))
    return chats


def _run_body(stream_mode: list[str] | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "assistant_id": GRAPH,
        "input": {"messages": [{"role": "user", "content": TEXT}]},
    }
    if stream_mode:
        body["stream_mode"] = stream_mode
    return body


async def langgraph_threads(http: httpx.AsyncClient, count: int) -> list[str]:
    """``count`` threads, each with one finished run (as the farm chats have)."""
    threads = []
    for _ in range(count):
        response = await http.post("/threads", json={})
        response.raise_for_status()
        threads.append(response.json()["thread_id"])
    await asyncio.gather(*(langgraph_wait(http, thread) for thread in threads))
    return threads


async def langgraph_wait(http: httpx.AsyncClient, thread_id: str) -> bool:
    """One run to completion; True if its answer is the model's "ok"."""
    response = await http.post(f"/threads/{thread_id}/runs/wait", json=_run_body())
    return response.status_code == 200 and response.json()["messages"][-1]["content"] == "ok"


async def langgraph_streamed(http: httpx.AsyncClient, thread_id: str) -> Timing:
    running = token = None
    ok = True
    sent = time.perf_counter()
    body = _run_body(["tasks", "messages-tuple"])
    async with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("event: "):
                continue
            kind, at = line[7:], time.perf_counter() - sent
            if kind == "tasks":
                running = running or at
            elif kind == "messages":
                token = token or at
            elif kind == "error":
                ok = False
    return Timing(running, token, time.perf_counter() - sent, ok and token is not None)


async def pickups(
    farm: FarmChat, lg_http: httpx.AsyncClient, lg_thread: str, samples: int
) -> tuple[list[Timing], list[Timing]]:
    """Alternate one farm run and one LangGraph run, each after an idle gap."""
    for _ in range(3):  # warm-up
        await farm.turn()
        await langgraph_streamed(lg_http, lg_thread)
    farm_out, lg_out = [], []
    for _ in range(samples):
        await asyncio.sleep(random.uniform(0.2, 0.5))
        farm_out.append(await farm.turn())
        await asyncio.sleep(random.uniform(0.2, 0.5))
        lg_out.append(await langgraph_streamed(lg_http, lg_thread))
    return farm_out, lg_out


async def lanes(turns: list[Turn], total: int) -> tuple[float, int]:
    """``total`` turns over the lanes, each sending its next as soon as its previous one is
    complete: (seconds, failed turns)."""
    left = total
    failed = 0

    async def lane(turn: Turn) -> None:
        nonlocal left, failed
        while left > 0:
            left -= 1
            failed += not await turn()

    started = time.perf_counter()
    await asyncio.gather(*(lane(turn) for turn in turns))
    return time.perf_counter() - started, failed


def farm_worker_slots(args: argparse.Namespace) -> int:
    """Processes x threads of the farm's worker (8 with make run), read from its command line."""
    for pid in farmlib.worker_pids(farmlib.redis_url(args)):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if "--threads" in argv:
            procs = int(argv[argv.index("--processes") + 1]) if "--processes" in argv else 1
            return procs * int(argv[argv.index("--threads") + 1])
    return 8


@contextlib.contextmanager
def langgraph_server(binary: Path, jobs: int) -> Iterator[tuple[str, psutil.Process]]:
    """``langgraph dev`` on a free loopback port, from a scratch copy of bench/langgraph_app."""
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: run `make bench-langgraph` (it builds the venv)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = Path(tempfile.mkdtemp(prefix="langgraph-bench-"))
    shutil.copytree(APP_DIR, workdir, dirs_exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ONLINE_KEYS} | OFFLINE_ENV
    argv = [str(binary), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--n-jobs-per-worker", str(jobs), "--config", "langgraph.json"]
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                tail = (workdir / "server.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"langgraph dev exited ({proc.returncode}):\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("langgraph dev did not answer /ok within 90 s")
            time.sleep(0.2)
        yield url, psutil.Process(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Throughput:
    """Turns run so far by one system, their wall time, failures and server CPU seconds."""

    turns: int = 0
    seconds: float = 0.0
    failed: int = 0
    cpu: float | None = 0.0

    async def run(self, turns: list[Turn], count: int, cpu: farmlib.Cpu) -> None:
        cpu.start()
        seconds, failed = await lanes(turns, count)
        used = cpu.stop()
        self.turns += count
        self.seconds += seconds
        self.failed += failed
        self.cpu = None if used is None or self.cpu is None else self.cpu + used


@dataclass
class Results:
    farm_pickups: list[Timing] = field(default_factory=list)
    lg_pickups: list[Timing] = field(default_factory=list)
    farm_turns: Throughput = field(default_factory=Throughput)
    lg_turns: Throughput = field(default_factory=Throughput)
    loads: list[tuple[float, float, float]] = field(default_factory=list)


async def measure(args: argparse.Namespace, lg_url: str, lg_proc: psutil.Process) -> Results:
    out = Results(loads=[os.getloadavg()])
    limits = httpx.Limits(max_connections=4 * args.concurrency + 8)
    headers = {"Coder-Session-Token": farmlib.token(args)}
    farm_http = httpx.AsyncClient(base_url=args.api, headers=headers, timeout=60, limits=limits)
    lg_http = httpx.AsyncClient(base_url=lg_url, timeout=120, limits=limits)
    async with farm_http, lg_http:
        (farm_chat,) = await farm_chats(farm_http, 1)
        (lg_thread,) = await langgraph_threads(lg_http, 1)
        out.farm_pickups, out.lg_pickups = await pickups(
            farm_chat, lg_http, lg_thread, args.pickups
        )
        await farm_chat.close()
        out.loads.append(os.getloadavg())

        chats = await farm_chats(farm_http, args.concurrency)
        farm_lanes: list[Turn] = [chat.ok_turn for chat in chats]
        await lanes(farm_lanes, args.concurrency)  # warm-up: one more turn each
        threads = await langgraph_threads(lg_http, args.concurrency)  # one run each
        lg_lanes: list[Turn] = [functools.partial(langgraph_wait, lg_http, t) for t in threads]
        farm = (out.farm_turns, farm_lanes, farmlib.Cpu(farmlib.farm_processes(args.api)))
        lang = (out.lg_turns, lg_lanes, farmlib.Cpu([lg_proc]))
        half, rest = args.turns // 2, args.turns - args.turns // 2
        # Halves in the order A B B A, so a drift in the machine's load hits both alike.
        for throughput, turns, cpu, count in (
            (*farm, half),
            (*lang, half),
            (*lang, rest),
            (*farm, rest),
        ):
            await throughput.run(turns, count, cpu)
            out.loads.append(os.getloadavg())
        await asyncio.gather(*(chat.close() for chat in chats))
    return out


def _ms(values: list[float | None], which: int) -> float:
    seen = [v for v in values if v is not None]
    return farmlib.percentiles(seen)[which] * 1000 if seen else float("nan")


def report(args: argparse.Namespace, out: Results, model_ttft: float, slots: int) -> None:
    rows: list[tuple[str, float, float, str]] = []
    for label, attr in (("POST -> running", "running"), ("POST -> first token", "token")):
        for name, which in (("p50", 0), ("p99", 1)):
            farm_v = _ms([getattr(t, attr) for t in out.farm_pickups], which)
            lg_v = _ms([getattr(t, attr) for t in out.lg_pickups], which)
            rows.append((f"idle pickup {label} {name}", farm_v, lg_v, "ms"))
    farm, lang = out.farm_turns, out.lg_turns
    rate = f"single-step turns/s (C={args.concurrency})"
    rows.append((rate, farm.turns / farm.seconds, lang.turns / lang.seconds, "/s"))
    nan = float("nan")
    cpu_ms = [(t.cpu if t.cpu is not None else nan) / t.turns * 1000 for t in (farm, lang)]
    rows.append(("server CPU per turn", *cpu_ms, "ms"))

    print(
        f"{args.pickups} idle pickups (gap 200-500 ms) and {args.turns} turns each, at concurrency "
        f"{args.concurrency}; farm worker slots {slots}, LangGraph jobs {args.langgraph_jobs}"
    )
    print(
        f"farm scripted model TTFT p50 {model_ttft * 1000:.2f} ms (measured directly; the "
        f"LangGraph fake model is in-process)"
    )
    print(f"{'measure':<40} {'agentfarm':>12} {'LangGraph dev':>14} {'LangGraph/agentfarm':>20}")
    for label, farm_v, lg_v, unit in rows:
        print(
            f"{label:<40} {farm_v:>9.1f} {unit:<2} {lg_v:>11.1f} {unit:<2} {lg_v / farm_v:>19.2f}x"
        )
    failed = sum(not t.ok for t in out.farm_pickups), sum(not t.ok for t in out.lg_pickups)
    print(f"failed pickups {failed[0]} / {failed[1]}; failed turns {farm.failed} / {lang.failed}")
    loads = ", ".join("/".join(f"{x:.2f}" for x in load) for load in out.loads)
    print(f"load average (1/5/15 min): start, after pickups, after each half A B B A: {loads}")
    print(json.dumps({label: [round(f, 2), round(lg, 2)] for label, f, lg, _ in rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    farmlib.farm_args(parser)
    parser.add_argument("--pickups", type=int, default=100, help="idle pickup samples each")
    parser.add_argument("--turns", type=int, default=1000, help="throughput turns each")
    parser.add_argument("--concurrency", type=int, default=16, help="client lanes each")
    parser.add_argument("--langgraph", type=Path, default=ROOT / ".venv-langgraph/bin/langgraph")
    parser.add_argument(
        "--langgraph-jobs",
        type=int,
        default=None,
        help="langgraph dev --n-jobs-per-worker (default: the farm worker's processes x threads)",
    )
    args = parser.parse_args()

    slots = farm_worker_slots(args)
    args.langgraph_jobs = args.langgraph_jobs or slots
    with farmlib.client(args) as http:
        ttft = overhead.model_ttft(overhead.model_url(http), 50)
    with langgraph_server(args.langgraph, args.langgraph_jobs) as (lg_url, lg_proc):
        out = asyncio.run(measure(args, lg_url, lg_proc))
    report(args, out, sorted(ttft)[len(ttft) // 2], slots)


if __name__ == "__main__":
    main()
