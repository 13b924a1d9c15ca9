"""Load: 200 chats at once, each a turn of 5 model steps (4 rounds of a cheap tool call and a
final reply), on the session farm. No request fails and no chat meets an error (no ``error``
status, no ``retry`` or ``error`` event, no dead-lettered message), every chat ends
``waiting`` with exactly its messages, and the queues drain: nothing waiting, delayed or
unacknowledged in any queue. Throughput is printed, never asserted.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa

from agentfarm.chat_stream.events import stream_key
from agentfarm.settings import get_settings
from agentfarm.tasks.farm_state import queue_names
from models import db
from tests.fault.support import check_transcript, tool_turn, transcripts
from tests.fixtures.farm import Caller, Farm

CHATS = 200
ROUNDS = 4  # tool rounds: 5 model steps per turn
DEPTH_RE = re.compile(r'^agentfarm_queue_(depth|delayed)\{queue="([^"]+)"\} (\S+)$', re.M)
STATUS_SQL = sa.text("SELECT status::text, count(*) FROM chats WHERE id = ANY(:ids) GROUP BY 1")


def _backlog(farm: Farm) -> dict[str, int]:
    """Messages waiting, delayed or unacknowledged (``.msgs``: waiting or being processed) in
    every queue, read from Redis, and the shim's depth and delayed gauges from /metrics."""
    namespace = get_settings().broker_namespace
    names = queue_names(farm.redis)
    pipe = farm.redis.pipeline(transaction=False)
    for queue in names:
        key = f"{namespace}:{queue}"
        pipe.llen(key).hlen(f"{key}.msgs").llen(f"{key}.DQ").hlen(f"{key}.DQ.msgs")
    lengths = iter(pipe.execute())
    out = {}
    for queue in names:
        waiting, held, delayed, delayed_held = (next(lengths) for _ in range(4))
        out[f"redis {queue} waiting"] = waiting
        out[f"redis {queue} delayed"] = delayed
        out[f"redis {queue} unacked"] = held + delayed_held
    text = httpx.get(f"{farm.base_url}/metrics", timeout=30).text
    for kind, queue, value in DEPTH_RE.findall(text):
        out[f"metrics {kind} {queue}"] = int(float(value))
    return out


def _dead_letters_since(farm: Farm, since_ms: int) -> int:
    namespace = get_settings().broker_namespace
    pipe = farm.redis.pipeline(transaction=False)
    for queue in queue_names(farm.redis):
        pipe.zcount(f"{namespace}:{queue}.XQ", since_ms, "+inf")  # scored by when it died
    return sum(pipe.execute())


def _event_kinds(farm: Farm, chat_ids: list[str]) -> list[Counter[str]]:
    """How many events of each type each chat's event stream holds."""
    pipe = farm.redis.pipeline(transaction=False)
    for chat_id in chat_ids:
        pipe.xrange(stream_key(chat_id), "-", "+")
    return [
        Counter(json.loads(fields[b"e"])["type"] for _, fields in entries)
        for entries in pipe.execute()
    ]


def _statuses(chat_ids: list[str]) -> dict[str, int]:
    with db.get_engine().connect() as conn:
        return dict(conn.execute(STATUS_SQL, {"ids": chat_ids}).all())


@pytest.mark.timeout(300)
def test_200_concurrent_chats_of_five_steps(farm: Farm, caller: Caller) -> None:
    turns = {i: (tool_turn(f"load chat {i} done", rounds=ROUNDS), f"load chat {i} done")
             for i in range(CHATS)}  # fmt: skip
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    started_ms = int(time.time() * 1000)
    # What earlier tests on this farm left behind (e.g. the unacked message of a workspace
    # host test_tools kills, on a queue nobody reads any more) is not this test's backlog.
    leftover = _backlog(farm)
    started = time.monotonic()
    with (
        httpx.Client(
            base_url=farm.base_url, headers={"Coder-Session-Token": caller.token},
            timeout=60, limits=limits,
        ) as http,
        ThreadPoolExecutor(32) as pool,
    ):  # fmt: skip
        answers = list(pool.map(
            lambda i: http.post(
                "/api/experimental/chats",
                json={"content": [{"type": "text", "text": turns[i][0]}]},
            ),
            range(CHATS),
        ))  # fmt: skip
    refused = [(a.status_code, a.text) for a in answers if a.status_code != 201]
    assert not refused, f"{len(refused)} of {CHATS} chats refused: {refused[:3]}"
    created = time.monotonic()
    chat_ids = [a.json()["id"] for a in answers]
    # While a chat is not done, a message of its turn is queued or being processed: proof that
    # _backlog reads the broker's real keys, so the empty backlog at the end means drained.
    busy = _backlog(farm)
    queued = sum(v - leftover.get(k, 0) for k, v in busy.items() if k.endswith(" unacked"))
    assert queued > 0, busy
    not_done = CHATS - _statuses(chat_ids).get("waiting", 0)

    deadline = time.monotonic() + 240
    while True:
        counts = _statuses(chat_ids)
        assert "error" not in counts, counts
        if counts.get("waiting") == CHATS:
            break
        assert time.monotonic() < deadline, f"chats not done: {counts}"
        time.sleep(0.25)
    finished = time.monotonic()

    with db.get_engine().connect() as conn:
        rows = transcripts(conn, chat_ids)
        failed = conn.execute(
            sa.text("SELECT count(*) FROM chats WHERE id = ANY(:ids) AND last_error IS NOT NULL"),
            {"ids": chat_ids},
        ).scalar_one()
    for i, chat_id in enumerate(chat_ids):
        assert check_transcript(rows[chat_id], [turns[i]], rounds=ROUNDS) == 0
    assert failed == 0, f"{failed} chats carry a last_error"
    # Every message but the first (the create answer carries it) was published once.
    per_chat = _event_kinds(farm, chat_ids)
    kinds = sum(per_chat, Counter())
    assert kinds["retry"] == 0 and kinds["error"] == 0, kinds
    assert all(k["message"] == 2 * ROUNDS + 1 for k in per_chat), kinds

    # The queues drain (the shim's gauges are cached for up to 5 s).
    deadline = time.monotonic() + 60
    while True:
        backlog = _backlog(farm)
        left = {k: v for k, v in backlog.items() if v > leftover.get(k, 0)}
        if not left:
            break
        assert time.monotonic() < deadline, f"queues did not drain: {left} (before: {leftover})"
        time.sleep(0.5)
    assert any(k.startswith("metrics depth") for k in backlog), "no queue gauges on /metrics"
    drained = time.monotonic()
    assert _dead_letters_since(farm, started_ms) == 0, "messages were dead-lettered"

    steps = CHATS * (ROUNDS + 1)
    took = finished - started
    print(
        f"\nload: {CHATS} chats x {ROUNDS + 1} steps: created in {created - started:.1f}s "
        f"({not_done} not done then, {queued} messages queued), all waiting after "
        f"{took:.1f}s ({steps / took:.0f} steps/s, {CHATS * ROUNDS / took:.0f} tool calls/s, "
        f"{CHATS / took:.1f} turns/s); queues empty {drained - finished:.1f}s later; "
        f"{sum(kinds.values())} events"
    )
