"""Integration tests for :mod:`agentfarm.tasks.wakeable` against a real Redis (DB 15).

Run with::

    cd /work/main && /tmp/probe-venv/bin/pytest tests/integration/test_fast_redis.py -q \
        -p no:cacheprovider

Every test flushes Redis DB 15 before and after itself and touches no other database.
Timing assertions are deliberately loose (an order of magnitude above the expected
values) so that they catch a return to polling behaviour, not a slow CI machine.
"""

from __future__ import annotations

import inspect
import logging
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dramatiq
import pytest
import redis
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.worker import ConsumerThread

# The project is not necessarily installed into the test environment.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from agentfarm.tasks.wakeable import (  # noqa: E402
    TESTED_DRAMATIQ_VERSIONS,
    WAKE_KEY_TTL_MS,
    WakeableRedisBroker,
    check_dramatiq_internals,
    wake_key,
)

REDIS_URL = "redis://127.0.0.1:6379/15"
NAMESPACE = "agentfarm-test"
WORKER_TIMEOUT_MS = 1000


@pytest.fixture
def rdb() -> Iterator[redis.Redis]:
    """A client on Redis DB 15, flushed before and after the test."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as e:  # pragma: no cover - environment problem
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {e}")
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def make_broker(rdb: redis.Redis) -> Iterator[Callable[..., WakeableRedisBroker]]:
    """Factory for brokers on DB 15; closes them (and their sockets) at teardown."""
    brokers: list[WakeableRedisBroker] = []

    def make(**kwargs: object) -> WakeableRedisBroker:
        broker = WakeableRedisBroker(url=REDIS_URL, namespace=NAMESPACE, **kwargs)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()
        broker.client.connection_pool.disconnect()


@pytest.fixture
def no_worker_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if Dramatiq logged an error (e.g. a crashed consumer thread)."""
    caplog.set_level(logging.WARNING, logger="dramatiq")
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@contextmanager
def running_worker(broker: dramatiq.Broker, *, threads: int = 2, prefetch: int | None = None):
    """Run an in-process Dramatiq worker on ``broker`` for the duration of the block."""
    broker.emit_after("process_boot")
    worker = Worker(broker, worker_threads=threads, worker_timeout=WORKER_TIMEOUT_MS)
    if prefetch is not None:
        worker.queue_prefetch = prefetch
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(timeout=10_000)


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` every 5 ms until it holds or ``timeout_s`` elapses."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_dramatiq_internals_guard(rdb: redis.Redis) -> None:
    """Fails loudly when the Dramatiq internals the broker relies on change.

    If this fails after a Dramatiq upgrade, re-review every item in the
    ``agentfarm.tasks.wakeable`` module docstring against the new Dramatiq source, adapt the
    broker, then add the version to ``TESTED_DRAMATIQ_VERSIONS``.
    """
    assert dramatiq.__version__ in TESTED_DRAMATIQ_VERSIONS, (
        f"dramatiq {dramatiq.__version__} has not been reviewed for WakeableRedisBroker"
    )
    check_dramatiq_internals()

    # 1. Consumer state the re-implemented __next__ reads and writes.
    consumer = _RedisConsumer(object(), "q", 3, 1000)
    assert consumer.message_cache == []
    assert consumer.queued_message_ids == set()
    assert consumer.misses == 0
    assert (consumer.prefetch, consumer.timeout, consumer.queue_name) == (3, 1000, "q")
    assert consumer.outstanding_message_count == 0
    assert hasattr(consumer, "logger")
    stock_next = inspect.getsource(_RedisConsumer.__next__)
    assert "self.broker.do_fetch(" in stock_next
    assert "compute_backoff(self.misses, max_backoff=self.timeout)" in stock_next

    # 2./3./4. How RedisBroker builds consumers and invokes the dispatch script.
    assert "self.consumer_class(self, queue_name, prefetch, timeout)" in inspect.getsource(
        RedisBroker.consume
    )
    stock = RedisBroker(url=REDIS_URL, namespace=NAMESPACE)
    check_dramatiq_internals(stock)
    calls: list[tuple[list[object], list[object]]] = []
    stock.scripts["dispatch"] = lambda keys, args: calls.append((list(keys), list(args)))
    stock.do_enqueue("some_queue", "message-id", b"payload")
    stock.client.connection_pool.disconnect()
    assert len(calls) == 1
    keys, args = calls[0]
    assert keys == [NAMESPACE]
    assert (args[0], args[2]) == ("enqueue", "some_queue")
    assert args[-2:] == ["message-id", b"payload"]

    # 5. The consumer thread moves due delayed messages back with broker.enqueue and
    #    handles delayed messages after every item, including None.
    delayed_src = inspect.getsource(ConsumerThread.handle_delayed_messages)
    assert "self.broker.enqueue(" in delayed_src
    run_src = inspect.getsource(ConsumerThread.run)
    assert "for message in self.consumer:" in run_src
    assert "self.handle_delayed_messages()" in run_src
    assert '"eta" in message.options' in inspect.getsource(ConsumerThread.handle_message)


def test_internals_guard_detects_a_changed_dispatch_script(rdb: redis.Redis) -> None:
    stock = RedisBroker(url=REDIS_URL, namespace=NAMESPACE)
    stock.scripts["dispatch"] = stock.client.register_script("local cmd = ARGV[1]")
    with pytest.raises(RuntimeError, match="dispatch.lua no longer contains"):
        check_dramatiq_internals(stock)
    stock.client.connection_pool.disconnect()


def test_enqueue_pushes_bounded_wake_tokens(
    rdb: redis.Redis, make_broker: Callable[..., WakeableRedisBroker]
) -> None:
    """Many enqueues with no consumer keep the wake key short and expiring."""
    broker = make_broker(wake_max_tokens=8)

    @dramatiq.actor(queue_name="bounded", broker=broker)
    def noop() -> None:
        pass

    for i in range(500):
        if i % 5:
            noop.send()
        else:
            noop.send_with_options(delay=60_000)

    assert rdb.llen(f"{NAMESPACE}:bounded") == 400
    assert rdb.hlen(f"{NAMESPACE}:bounded.DQ.msgs") == 100
    for queue_name in ("bounded", "bounded.DQ"):
        key = wake_key(NAMESPACE, queue_name)
        assert 1 <= rdb.llen(key) <= 8
        assert 0 < rdb.pttl(key) <= WAKE_KEY_TTL_MS


def test_enqueue_recovers_from_missing_script(
    rdb: redis.Redis, make_broker: Callable[..., WakeableRedisBroker]
) -> None:
    """A NOSCRIPT reply on the pipelined EVALSHA falls back to loading the script."""
    broker = make_broker()

    @dramatiq.actor(queue_name="noscript", broker=broker)
    def noop() -> None:
        pass

    wrapped = broker.scripts["dispatch"]._script
    real_sha = wrapped.sha
    wrapped.sha = "0" * 40  # unknown to the server: forces NOSCRIPT without SCRIPT FLUSH
    noop.send()
    assert wrapped.sha == real_sha
    assert rdb.llen(f"{NAMESPACE}:noscript") == 1
    assert rdb.llen(wake_key(NAMESPACE, "noscript")) >= 1


def test_socket_timeout_shorter_than_idle_wait_is_rejected(rdb: redis.Redis) -> None:
    with pytest.raises(ValueError, match="socket_timeout"):
        WakeableRedisBroker(host="127.0.0.1", port=6379, db=15, socket_timeout=0.5)
    broker = WakeableRedisBroker(host="127.0.0.1", port=6379, db=15, socket_timeout=5)
    broker.client.close()
    # No socket_timeout given: redis-py's own default (5 s in redis-py 8) is what the BLPOP
    # would run into, so a longer idle wait is refused too.
    with pytest.raises(ValueError, match="socket_timeout"):
        WakeableRedisBroker(host="127.0.0.1", port=6379, db=15, idle_wait_ms=6000)
    broker = WakeableRedisBroker(host="127.0.0.1", port=6379, db=15, idle_wait_ms=4000)
    broker.client.close()


@pytest.mark.usefixtures("no_worker_errors")
def test_all_messages_processed_exactly_once(
    make_broker: Callable[..., WakeableRedisBroker],
) -> None:
    """200 messages over two queues, a quarter of them delayed by 50 ms."""
    broker = make_broker()
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def record(token: str) -> None:
        with lock:
            seen[token] += 1

    alpha = dramatiq.actor(record, actor_name="alpha", queue_name="alpha", broker=broker)
    beta = dramatiq.actor(record, actor_name="beta", queue_name="beta", broker=broker)
    # Zero retries: a failure must show up as a missing message, not as a late one.
    alpha.options["max_retries"] = beta.options["max_retries"] = 0

    expected = {f"m{i}" for i in range(200)}
    with running_worker(broker):
        time.sleep(1.2)  # let the consumers go idle
        for i in range(200):
            actor = alpha if i % 2 else beta
            if i % 4 == 0:
                actor.send_with_options(args=(f"m{i}",), delay=50)
            else:
                actor.send(f"m{i}")
        assert wait_until(lambda: len(seen) == 200, 15), sorted(expected - set(seen))
        time.sleep(0.3)  # give a duplicate delivery the chance to show up

    assert set(seen) == expected
    assert all(count == 1 for count in seen.values()), {k: v for k, v in seen.items() if v > 1}


@pytest.mark.usefixtures("no_worker_errors")
def test_idle_worker_waits_on_its_wake_list(
    make_broker: Callable[..., WakeableRedisBroker], rdb: redis.Redis
) -> None:
    """An idle consumer is parked in a BLPOP on its wake list, not asleep, when a message
    arrives, and the enqueue's wake token ends that BLPOP: the mechanism behind the few-ms
    pickup bench/pickup.py measures (the stock broker sleeps in a backoff of up to
    worker_timeout)."""
    broker = make_broker()
    started: list[float] = []
    done = threading.Event()

    @dramatiq.actor(queue_name="pickup", broker=broker, max_retries=0)
    def probe(sent: float) -> None:
        started.append(time.perf_counter() - sent)
        done.set()

    def parked() -> bool:
        return any(c.get("cmd") == "blpop" and c.get("db") == "15" for c in rdb.client_list())

    gaps = random.Random(20).sample(range(300, 700), 10)
    with running_worker(broker, threads=1):
        for gap_ms in gaps:
            time.sleep(gap_ms / 1000)
            assert wait_until(parked, 5), "the idle consumer is not blocked on its wake list"
            done.clear()
            probe.send(time.perf_counter())
            assert done.wait(5), "message was not processed"

    assert len(started) == len(gaps)
    print(f"pickup median {statistics.median(started) * 1000:.1f} ms (a figure, not a check)")


@pytest.mark.usefixtures("no_worker_errors")
def test_delayed_message_runs_close_to_its_eta(
    make_broker: Callable[..., WakeableRedisBroker],
) -> None:
    """A delayed message sent to an idle worker runs soon after its delay expires."""
    broker = make_broker()
    ran: list[float] = []
    done = threading.Event()

    @dramatiq.actor(queue_name="later", broker=broker, max_retries=0)
    def later(sent: float) -> None:
        ran.append(time.perf_counter() - sent)
        done.set()

    with running_worker(broker):
        time.sleep(1.2)
        for _ in range(3):
            done.clear()
            later.send_with_options(args=(time.perf_counter(),), delay=200)
            assert done.wait(5)
            time.sleep(0.3)

    assert all(t >= 0.2 for t in ran), ran
    assert statistics.median(ran) < 0.6, ran  # stock: 200 ms + up to ~1 s of polling


def test_saturated_consumer_does_not_take_wake_tokens(
    rdb: redis.Redis, make_broker: Callable[..., WakeableRedisBroker]
) -> None:
    """With no free prefetch slot a consumer waits for an ack, not on the wake key.

    Otherwise it would swallow the token meant for an idle consumer in another process,
    leaving the message in Redis until that consumer's next re-poll.
    """
    broker = make_broker()

    @dramatiq.actor(queue_name="sat", broker=broker)
    def noop() -> None:
        pass

    noop.send()
    consumer = broker.consume("sat", prefetch=1, timeout=300)
    first = next(consumer)
    assert first is not None  # found by the fetch; the token is still in the list
    noop.send()
    key = wake_key(NAMESPACE, "sat")
    assert rdb.llen(key) == 2

    assert next(consumer) is None  # saturated: waited without touching the wake key
    assert rdb.llen(key) == 2
    assert rdb.llen(f"{NAMESPACE}:sat") == 1

    consumer.misses = 20  # the longest backoff, so only the ack can end the wait early
    threading.Timer(0.05, consumer.ack, args=(first,)).start()
    started = time.monotonic()
    assert next(consumer) is None
    assert time.monotonic() - started < 0.25  # woken by the ack, not the 300 ms timeout
    second = next(consumer)
    assert second is not None and second.message_id != first.message_id
    consumer.ack(second)
    consumer.close()


@pytest.mark.usefixtures("no_worker_errors")
def test_saturated_consumer_leaves_wakeups_to_idle_consumers(
    make_broker: Callable[..., WakeableRedisBroker],
) -> None:
    """Two workers (as if two processes) share a queue; one is busy, one idle.

    The busy worker has no free prefetch slot, so it must not take the wake token; the
    idle worker gets it and starts the message right away.
    """
    release = threading.Event()
    slow_ran_on: list[str] = []
    fast_runs: list[tuple[str, float]] = []
    fast_done = threading.Event()
    busy_broker, idle_broker = make_broker(), make_broker()

    for name, broker in (("busy", busy_broker), ("idle", idle_broker)):

        def slow(name: str = name) -> None:
            slow_ran_on.append(name)
            release.wait(20)

        def fast(sent: float, name: str = name) -> None:
            fast_runs.append((name, time.perf_counter() - sent))
            fast_done.set()

        dramatiq.actor(slow, actor_name="slow", queue_name="shared", broker=broker)
        dramatiq.actor(fast, actor_name="fast", queue_name="shared", broker=broker)

    try:
        with running_worker(busy_broker, threads=1, prefetch=1):
            busy_broker.get_actor("slow").send()
            assert wait_until(lambda: bool(slow_ran_on), 5)
            with running_worker(idle_broker, threads=1, prefetch=1):
                time.sleep(1.2)  # both consumers settle into their idle/saturated waits
                for _ in range(3):
                    fast_done.clear()
                    busy_broker.get_actor("fast").send(time.perf_counter())
                    assert fast_done.wait(5)
                    time.sleep(0.3)
                release.set()
    finally:
        release.set()

    assert slow_ran_on == ["busy"]
    assert [name for name, _ in fast_runs] == ["idle"] * 3
    latencies = [latency for _, latency in fast_runs]
    assert statistics.median(latencies) < 0.2, latencies
