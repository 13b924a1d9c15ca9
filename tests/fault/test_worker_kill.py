"""Worker processes are SIGKILLed in the middle of steps, 20 times at random moments, while
other workers stay alive; every turn still completes with exactly its messages.

Runs on the session farm with the farm's own worker paused (SIGSTOP, as the single-thread
subagent test does) and workers of its own: four to start with, a fresh one started after
each kill. Each kill picks a worker that holds a chat (``chats.worker_id``, matched to the id
the worker logged at boot). Recovery is what production does: the scheduler's
``chat.recover_stale`` (sent here every half second instead of every minute) returns a chat
whose heartbeat is 3 s old to pending and sends a new step; a tool call the dead worker was
running is finished as interrupted (never silently run twice). The recovery time of each
kill (until every chat the dead worker held moves on) is printed, never asserted.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from models import db
from tests.fault.support import TOOL, check_transcript, describe, tool_turn, transcripts
from tests.fixtures.farm import Caller, Farm, WorkerProc, start_worker
from tests.fixtures.fault_farm import worker_id_of

KILLS = 20
CHATS = 6
ROUNDS = 4  # tool rounds per turn: 5 model steps
STALE_S = "3"
INITIAL_WORKERS = 4  # and one more started after each kill (they boot in the background)


@dataclass
class Worker:
    proc: WorkerProc
    worker_id: uuid.UUID


@dataclass
class WorkerPool:
    """Worker processes of this test; replacements boot in the background."""

    env: dict[str, str]
    directory: Path
    live: list[Worker] = field(default_factory=list)
    booting: list[Future[Worker]] = field(default_factory=list)
    dead: list[Worker] = field(default_factory=list)
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4))
    started: int = 0
    boot_times: list[float] = field(default_factory=list)

    def spawn(self) -> None:
        self.started += 1
        directory = self.directory / f"worker-{self.started}"
        self.booting.append(self.executor.submit(self._boot, directory))

    def _boot(self, directory: Path) -> Worker:
        started = time.monotonic()
        proc = start_worker(self.env, directory, hosts="", threads=4)
        worker = Worker(proc, worker_id_of(proc))
        self.boot_times.append(time.monotonic() - started)
        return worker

    def refresh(self) -> None:
        for future in [f for f in self.booting if f.done()]:
            self.booting.remove(future)
            self.live.append(future.result())

    def holder(self, worker_id: uuid.UUID) -> Worker | None:
        return next((w for w in self.live if w.worker_id == worker_id), None)

    def kill(self, worker: Worker) -> None:
        os.killpg(worker.proc.proc.pid, signal.SIGKILL)  # the worker and its children
        worker.proc.proc.wait(timeout=10)
        self.live.remove(worker)
        self.dead.append(worker)

    def stop(self) -> None:
        for future in self.booting:
            self.live.append(future.result(timeout=120))
        self.executor.shutdown()
        for worker in self.live:  # all at once: each may take its shutdown timeout
            worker.proc.proc.terminate()
        for worker in self.live:
            worker.proc.stop()


@pytest.fixture
def own_workers(farm: Farm, tmp_path: Path) -> Iterator[WorkerPool]:
    group = farm.worker.proc.pid  # the farm's worker runs in its own session: pgid == pid
    os.killpg(group, signal.SIGSTOP)
    env = {**farm.env, "AGENTFARM_STALE_AFTER_S": STALE_S, "AGENTFARM_WORKER_METRICS_PORT": "0"}
    pool = WorkerPool(env, tmp_path)
    try:
        for _ in range(INITIAL_WORKERS):
            pool.spawn()
        for future in list(pool.booting):
            future.result(timeout=120)
        pool.refresh()
        yield pool
    finally:
        pool.stop()
        os.killpg(group, signal.SIGCONT)


@dataclass
class Kill:
    at: float
    worker_id: uuid.UUID
    # chat id -> (messages at the kill, when it moved on)
    held: dict[str, tuple[int, float | None]]

    def recovered_after(self) -> float | None:
        times = [t for _, t in self.held.values()]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None) - self.at


STATE_SQL = sa.text(
    """
    SELECT c.id, c.status::text AS status, c.worker_id,
           (SELECT count(*) FROM chat_messages m WHERE m.chat_id = c.id) AS messages,
           (SELECT array_agg(DISTINCT tc.worker_id) FROM chat_tool_calls tc
             WHERE tc.chat_id = c.id AND tc.status = 'running') AS tool_workers
      FROM chats c WHERE c.id = ANY(:ids)
    """
)


def _state(chat_ids: list[str]) -> dict[str, sa.Row]:  # type: ignore[type-arg]
    with db.get_engine().connect() as conn:
        return {str(r.id): r for r in conn.execute(STATE_SQL, {"ids": chat_ids})}


def _send_recovery(stop: threading.Event) -> None:
    from agentfarm.tasks import catalog

    while not stop.wait(0.5):
        catalog.RECOVER_STALE.send()


@pytest.mark.timeout(300)
def test_workers_killed_mid_step_lose_and_duplicate_nothing(
    own_workers: WorkerPool, caller: Caller
) -> None:
    seed = int(os.environ.get("AGENTFARM_TEST_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    pool = own_workers
    turns: dict[str, list[tuple[str, str]]] = {}

    def start_turn(chat_id: str | None, n: int, c: int) -> str:
        final = f"chat {c} turn {n} done: " + " ".join(f"w{i}" for i in range(30))
        text = tool_turn(final, rounds=ROUNDS, delay_ms=40)
        if chat_id is None:
            chat_id = caller.create_chat(text)["id"]
        else:
            caller.send(chat_id, text)
        turns.setdefault(chat_id, []).append((text, final))
        return chat_id

    stop_recovery = threading.Event()
    recovery = threading.Thread(target=_send_recovery, args=(stop_recovery,), daemon=True)
    recovery.start()
    started = time.monotonic()
    chat_ids = [start_turn(None, 1, c) for c in range(CHATS)]
    kills: list[Kill] = []
    last_kill = 0.0
    next_kill = time.monotonic() + rng.uniform(0.2, 1.2)
    deadline = time.monotonic() + 200
    try:
        while True:
            assert time.monotonic() < deadline, f"not done: {len(kills)} kills, {_state(chat_ids)}"
            now = time.monotonic()
            state = _state(chat_ids)
            pool.refresh()
            for kill in kills:  # a held chat moved on: another worker, a new message, or idle
                for chat_id, (count, moved) in kill.held.items():
                    row = state[chat_id]
                    if moved is None and (
                        row.messages > count
                        or row.status == "waiting"
                        or (row.worker_id is not None and row.worker_id != kill.worker_id)
                    ):
                        kill.held[chat_id] = (count, now)
            idle = [c for c in chat_ids if state[c].status == "waiting"]
            if len(kills) < KILLS:
                for chat_id in idle:  # keep every chat busy until the last kill
                    start_turn(chat_id, len(turns[chat_id]) + 1, chat_ids.index(chat_id))
            elif len(idle) == len(chat_ids) and all(k.recovered_after() is not None for k in kills):
                break
            if len(kills) < KILLS and now >= next_kill and len(pool.live) >= 2:
                holders = {r.worker_id for r in state.values() if r.status == "running"}
                targets = [w for w in pool.live if w.worker_id in holders]
                if targets:
                    victim = rng.choice(targets)
                    held = {
                        c: (r.messages, None)
                        for c, r in state.items()
                        if r.worker_id == victim.worker_id
                        or victim.worker_id in (r.tool_workers or [])
                    }
                    pool.kill(victim)
                    kills.append(Kill(time.monotonic(), victim.worker_id, held))
                    pool.spawn()
                    next_kill = time.monotonic() + rng.uniform(0.2, 1.2)
                    if len(kills) == KILLS:
                        last_kill = time.monotonic() - started
            time.sleep(0.05)
    finally:
        stop_recovery.set()
        recovery.join(timeout=5)
    elapsed = time.monotonic() - started

    with db.get_engine().connect() as conn:
        rows = transcripts(conn, chat_ids)
    interrupted = sum(check_transcript(rows[c], turns[c], rounds=ROUNDS) for c in chat_ids)
    assert len(kills) == KILLS and all(k.held for k in kills)
    recoveries = [k.recovered_after() or 0.0 for k in kills]
    n_turns = sum(len(t) for t in turns.values())
    print(
        f"\nworker kills (seed {seed}): {KILLS} kills in {last_kill:.1f}s, all turns done at "
        f"{elapsed:.1f}s; {n_turns} turns of "
        f"{ROUNDS + 1} steps on {CHATS} chats all complete, {interrupted} tool calls reported "
        f"interrupted; {sum(len(k.held) for k in kills)} held chats; recovery "
        f"{describe(recoveries)}; worker boot {describe(pool.boot_times)}"
    )


def _stale_turn(chat_id: str, text: str, *, tool_call: str | None) -> int:
    """Make a chat look as if its turn's worker died ten minutes ago: a new user message,
    and (with ``tool_call``) the step that called ``list_templates`` with the call still
    queued (its ``tool.run`` message lost). Returns the turn's generation."""
    with db.session_scope() as session:
        generation = session.execute(
            sa.text(
                "UPDATE chats SET status = 'running', worker_id = NULL,"
                " generation = generation + 1, heartbeat_at = now() - interval '10 minutes',"
                " updated_at = now() - interval '10 minutes' WHERE id = :id RETURNING generation"
            ),
            {"id": chat_id},
        ).scalar_one()
        content = json.dumps([{"type": "text", "text": text}])
        session.execute(
            sa.text(
                "INSERT INTO chat_messages (chat_id, role, content) "
                "VALUES (:id, 'user', CAST(:content AS jsonb))"
            ),
            {"id": chat_id, "content": content},
        )
        if tool_call is not None:
            step = f"{generation}:1"
            part = {"type": "tool-call", "tool_call_id": tool_call, "tool_name": TOOL, "args": {}}
            session.execute(
                sa.text(
                    "INSERT INTO chat_messages (chat_id, role, content, step_key) "
                    "VALUES (:id, 'assistant', CAST(:content AS jsonb), :step)"
                ),
                {"id": chat_id, "content": json.dumps([part]), "step": step},
            )
            session.execute(
                sa.text(
                    "INSERT INTO chat_tool_calls (chat_id, generation, step_key, position,"
                    " tool_call_id, tool_name, args) VALUES (:id, :g, :step, 0, :call, :tool,"
                    " '{}'::jsonb)"
                ),
                {"id": chat_id, "g": generation, "step": step, "call": tool_call, "tool": TOOL},
            )
    return int(generation)


def test_a_chat_waiting_for_its_tool_calls_is_not_stale(farm: Farm, caller: Caller) -> None:
    """Between steps a chat's heartbeat is not refreshed: its unfinished tool calls carry it.
    The sweeper must repair the calls (re-send a lost one), not start a new step, which would
    prompt the model with tool calls that have no results (found by the kill test above)."""
    from agentfarm.tasks import catalog

    waiting, control = (caller.create_chat("[[reply: first]]")["id"] for _ in range(2))
    for chat_id in (waiting, control):
        caller.wait_status(chat_id, "waiting")
    turn = tool_turn("the call came back", rounds=1)
    generation = _stale_turn(waiting, turn, tool_call="call_lost_message")
    _stale_turn(control, "[[reply: swept]]", tool_call=None)

    def state(chat_id: str) -> sa.Row:  # type: ignore[type-arg]
        return _state([chat_id])[chat_id]

    before = state(waiting).messages
    # The control chat (stale, no calls) is swept and answered; the other one is left alone.
    deadline = time.monotonic() + 30
    while state(control).status != "waiting":
        assert time.monotonic() < deadline, "the stale control chat was never recovered"
        catalog.RECOVER_STALE.send()
        time.sleep(0.3)
    held = state(waiting)
    assert (held.status, held.messages) == ("running", before)
    with db.get_engine().connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT generation FROM chats WHERE id = :id"), {"id": waiting}
            ).scalar_one()
            == generation
        )

    # Once the queued call is older than the lost-message window it is re-sent, runs, and
    # the turn goes on in the same generation.
    with db.session_scope() as session:
        session.execute(
            sa.text(
                "UPDATE chat_tool_calls SET created_at = now() - interval '10 minutes'"
                " WHERE chat_id = :id"
            ),
            {"id": waiting},
        )
    deadline = time.monotonic() + 30
    while state(waiting).status != "waiting":
        assert time.monotonic() < deadline, f"the lost call was never re-sent: {state(waiting)}"
        catalog.RECOVER_STALE.send()
        time.sleep(0.3)
    with db.get_engine().connect() as conn:
        rows = transcripts(conn, [waiting])[waiting]
    assert check_transcript(rows[2:], [(turn, "the call came back")], rounds=1) == 0
    assert rows[-1].step_key == f"{generation}:2"
