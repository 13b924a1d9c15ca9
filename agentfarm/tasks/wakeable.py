"""A Dramatiq Redis broker whose idle consumers wake up as soon as a message is enqueued.

Stock :class:`dramatiq.brokers.redis.RedisBroker` consumers poll: when a fetch finds
nothing they ``time.sleep`` with an exponential backoff that grows up to the worker
timeout (1000 ms by default), so an idle worker notices a new message only after
~250 ms at the median.  :class:`WakeableRedisBroker` keeps Dramatiq's storage layout,
Lua script and polling loop, and adds a wake-up channel per queue:

* **Enqueue side.**  Every ``enqueue`` (and ``requeue``) dispatch is sent in one
  non-transactional pipeline together with ``LPUSH``/``LTRIM``/``PEXPIRE`` on the
  queue's wake key ``<namespace>:__wake__.<queue_name>``.  That is still a single
  network round trip, the list never holds more than ``wake_max_tokens`` tokens and
  it expires ``WAKE_KEY_TTL_MS`` after the last enqueue.
* **Consumer side.**  When a fetch returns nothing, the consumer waits with ``BLPOP``
  on its wake key instead of ``time.sleep``; the BLPOP timeout is Dramatiq's own
  backoff, capped at ``min(idle_wait_ms, worker_timeout)``.  So with no traffic the
  consumer still re-polls (and thus heartbeats and runs queue maintenance) at least
  every ``worker_timeout``, exactly like the stock consumer, and a wake token ends the
  wait immediately.  Tokens live in a list rather than in pub/sub, so a token pushed
  between a consumer's empty fetch and its ``BLPOP`` is not lost, and each token wakes
  at most one consumer (no thundering herd).
* **Saturated consumers** (``prefetch`` messages outstanding) do not ``BLPOP``: a
  consumer that could not fetch anyway must not swallow a token meant for an idle
  consumer elsewhere.  They wait on an in-process event that ``ack``/``nack`` set, so
  they refetch as soon as a worker thread frees a slot.
* **Delayed messages.**  Delayed messages are enqueued on ``<queue>.DQ`` and wake that
  queue's delay consumer.  When the delay consumer's thread moves a due message to the
  real queue it calls ``broker.enqueue``, which wakes the real queue's consumer.  The
  consumer remembers the ETAs of the delayed messages it handed out and never blocks
  past the earliest one, so delayed messages run on time even though Redis only
  enforces ``BLPOP`` timeouts on its timer tick (100 ms with the default ``hz 10``).

Producers must use this broker as well: messages enqueued by a stock ``RedisBroker``
carry no wake token, and a consumer then notices them only on its next re-poll (at
most ``min(idle_wait_ms, worker_timeout)`` plus one Redis timer tick later).

Requires Redis >= 6 (fractional ``BLPOP`` timeouts).

Private Dramatiq internals this module relies on (verified by
:func:`check_dramatiq_internals`, which the constructor calls, and by the guard test in
``tests/integration/test_fast_redis.py``; re-check them on every Dramatiq upgrade):

1. ``dramatiq.brokers.redis._RedisConsumer`` is subclassed.  We rely on its constructor
   ``(broker, queue_name, prefetch, timeout)``, on the instance attributes ``broker``,
   ``queue_name``, ``prefetch``, ``timeout`` (ms), ``message_cache`` (list of encoded
   messages), ``queued_message_ids`` (set of message ids), ``misses`` (backoff
   counter) and ``logger``, on the ``outstanding_message_count`` property, and we
   reuse its ``ack``/``nack``/``requeue``.  ``__next__`` is re-implemented here.
2. ``RedisBroker.consumer_class`` is the hook ``RedisBroker.consume`` uses to build
   consumers.
3. ``RedisBroker.scripts["dispatch"]`` is a :class:`redis.commands.core.Script` that
   ``RedisBroker._dispatch`` calls as ``script(args=[command, timestamp, queue_name,
   ...], keys=[namespace])``; ``dispatch.lua`` reads ``ARGV[1]`` as the command and
   ``ARGV[3]`` as the queue name, and names its commands ``"enqueue"``/``"requeue"``.
   We wrap that entry to pipeline the wake-up with the dispatch call.
4. ``RedisBroker.do_fetch(queue_name, count)`` (resolved through ``__getattr__``)
   returns a list of encoded messages.
5. ``dramatiq.worker.ConsumerThread`` calls ``handle_delayed_messages()`` after every
   item (including ``None``) yielded by the consumer, treats messages with a numeric
   ``options["eta"]`` (ms since the epoch) as delayed, and moves due ones to the real
   queue with ``broker.enqueue``.
6. ``dramatiq.common.compute_backoff(attempts, max_backoff=...)`` returns
   ``(attempts, backoff_ms)``.
"""

from __future__ import annotations

import heapq
import inspect
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from dramatiq.middleware import Middleware
from redis.commands.core import Script
from redis.exceptions import NoScriptError

__all__ = [
    "TESTED_DRAMATIQ_VERSIONS",
    "WAKE_KEY_TTL_MS",
    "WakeableRedisBroker",
    "check_dramatiq_internals",
    "wake_key",
]

logger = logging.getLogger(__name__)

#: Dramatiq versions whose internals were reviewed against this module.
TESTED_DRAMATIQ_VERSIONS: tuple[str, ...] = ("2.2.1",)

#: A wake key expires this long after the last enqueue on its queue.  Stale tokens are
#: harmless (a consumer always fetches before it blocks), so expiry only reclaims memory.
WAKE_KEY_TTL_MS = 60_000

#: Redis checks blocking-command timeouts on its timer tick (1000 / hz ms, 100 ms at the
#: default hz 10), so a ``BLPOP`` may return up to this long after its timeout.  Used to
#: avoid overshooting the ETA of a delayed message.
REDIS_TIMER_SLACK_S = 0.1

#: Dispatch commands that add message ids to a queue's list and therefore wake it.
_WAKING_COMMANDS = frozenset({"enqueue", "requeue"})

#: The token pushed onto wake keys.  Its value is irrelevant.
_WAKE_TOKEN = b"1"

#: Smallest BLPOP timeout we send (0 would mean "block forever").
_MIN_BLPOP_TIMEOUT_S = 0.001


def wake_key(namespace: str, queue_name: str) -> str:
    """Return the Redis key of the wake-up list for ``queue_name``.

    The ``__wake__.`` prefix mirrors Dramatiq's ``__acks__.`` keys, so it cannot collide
    with a queue's own keys (``<namespace>:<queue>``, ``<queue>.msgs``, ``<queue>.XQ``...)
    even for queue names that end in ``.wake``.
    """
    return f"{namespace}:__wake__.{queue_name}"


class _WakingDispatch:
    """Stand-in for ``RedisBroker.scripts["dispatch"]`` that pipelines wake-ups.

    Commands in :data:`_WAKING_COMMANDS` are sent as ``EVALSHA dispatch`` followed by
    ``LPUSH``/``LTRIM``/``PEXPIRE`` on the queue's wake key, in one round trip.  The
    ``EVALSHA`` runs first, so a consumer woken by the ``LPUSH`` finds the message.
    Every other command goes straight to the wrapped script.
    """

    def __init__(self, broker: WakeableRedisBroker, script: Script) -> None:
        self._broker = broker
        self._script = script

    def __call__(self, keys: Sequence[Any] | None = None, args: Sequence[Any] | None = None) -> Any:
        args = list(args or ())
        keys = list(keys or ())
        if not args or args[0] not in _WAKING_COMMANDS:
            return self._script(keys=keys, args=args)

        broker = self._broker
        key = wake_key(broker.namespace, str(args[2]))
        pipe = broker.client.pipeline(transaction=False)
        # Raw EVALSHA rather than ``script(client=pipe)``: the latter makes redis-py send
        # an extra ``SCRIPT EXISTS`` round trip on every pipeline execution.
        pipe.evalsha(self._script.sha, len(keys), *keys, *args)
        pipe.lpush(key, _WAKE_TOKEN)
        pipe.ltrim(key, 0, broker.wake_max_tokens - 1)
        pipe.pexpire(key, WAKE_KEY_TTL_MS)
        result, *wake_results = pipe.execute(raise_on_error=False)

        if isinstance(result, NoScriptError):
            # The script cache was flushed (or this is a new server); the Script object
            # loads the script and retries.  The token we pushed stays valid.
            return self._script(keys=keys, args=args)
        if isinstance(result, Exception):
            raise result
        for error in wake_results:
            if isinstance(error, Exception):
                # The message itself is stored; consumers will find it on their next
                # re-poll.  Raising here would make callers retry a successful enqueue.
                logger.warning("Failed to push a wake token on %r: %s", key, error)
        return result


class _WakeableRedisConsumer(_RedisConsumer):
    """A Redis consumer that blocks on its queue's wake key when it finds no messages."""

    def __init__(
        self, broker: WakeableRedisBroker, queue_name: str, prefetch: int, timeout: int
    ) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self.wake_key = wake_key(broker.namespace, queue_name)
        self.idle_wait_s = max(1, min(broker.idle_wait_ms, timeout)) / 1000
        # Set by ack/nack: a saturated consumer waits on this instead of on Redis.
        self._capacity_freed = threading.Event()
        # ETAs (seconds since the epoch) of delayed messages handed to the consumer
        # thread, which acts on them only when this consumer returns control to it.
        self._etas: list[float] = []

    def ack(self, message: MessageProxy) -> None:
        """Acknowledge ``message`` and wake this consumer if it was saturated."""
        try:
            super().ack(message)  # type: ignore[no-untyped-call]
        finally:
            self._capacity_freed.set()

    def nack(self, message: MessageProxy) -> None:
        """Dead-letter ``message`` and wake this consumer if it was saturated."""
        try:
            super().nack(message)  # type: ignore[no-untyped-call]
        finally:
            self._capacity_freed.set()

    def __next__(self) -> MessageProxy | None:
        """Return the next message, or ``None`` after waiting for one in vain.

        Returning ``None`` hands control back to the consumer thread (which then
        re-enqueues due delayed messages and checks for shutdown) before it asks again.
        """
        try:
            while True:
                while self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:
                        # HMGET returns nil for ids whose payload vanished (e.g. purged).
                        self.logger.warning(
                            "Dropping a message id without payload on queue %r.",
                            self.queue_name,
                        )
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    self._remember_eta(message)
                    return MessageProxy(message)

                # Clear before checking capacity so that an ack racing with the check
                # still interrupts the wait below.
                self._capacity_freed.clear()
                free = self.prefetch - self.outstanding_message_count
                if free > 0:
                    self.message_cache = self.broker.do_fetch(self.queue_name, free)
                    if self.message_cache:
                        continue
                self._wait(saturated=free <= 0)
                return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None

    def _remember_eta(self, message: Message[Any]) -> None:
        eta = message.options.get("eta")
        if isinstance(eta, int | float) and not isinstance(eta, bool):
            heapq.heappush(self._etas, eta / 1000)

    def _seconds_to_next_eta(self) -> float | None:
        """Seconds until the earliest pending ETA, or ``None`` if there is none.

        ETAs already due are dropped: the consumer thread re-enqueues every due delayed
        message as soon as this consumer returns, so nobody has to wait for them.
        """
        now = time.time()
        while self._etas and self._etas[0] <= now:
            heapq.heappop(self._etas)
        return self._etas[0] - now if self._etas else None

    def _wait(self, *, saturated: bool) -> None:
        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
        wait_s = min(backoff_ms / 1000, self.idle_wait_s)
        to_eta = self._seconds_to_next_eta()

        if saturated:
            # Could not fetch anyway: don't take a wake token from an idle consumer.
            self._capacity_freed.wait(wait_s if to_eta is None else min(wait_s, to_eta))
        elif to_eta is not None and to_eta < wait_s + REDIS_TIMER_SLACK_S:
            # A BLPOP could overshoot the ETA by a timer tick; block only as long as is
            # safe and sleep precisely for the rest.
            if to_eta - REDIS_TIMER_SLACK_S >= _MIN_BLPOP_TIMEOUT_S:
                self._blpop(to_eta - REDIS_TIMER_SLACK_S)
            else:
                time.sleep(to_eta)
        else:
            self._blpop(wait_s)

    def _blpop(self, timeout_s: float) -> None:
        # The pool hands this call its own connection for the duration of the block;
        # the broker checked that the pool's socket timeout outlasts idle_wait_ms.
        self.broker.client.blpop([self.wake_key], timeout=max(timeout_s, _MIN_BLPOP_TIMEOUT_S))


class WakeableRedisBroker(RedisBroker):
    """A :class:`~dramatiq.brokers.redis.RedisBroker` whose idle consumers wake on enqueue.

    Wire-compatible with ``RedisBroker`` (same keys, same Lua script); see the module
    docstring for the mechanism and for the Dramatiq internals it relies on.

    Parameters:
      url, middleware, namespace, maintenance_chance, heartbeat_timeout,
      dead_message_ttl, client, **parameters: exactly as for ``RedisBroker``.
      idle_wait_ms: The longest an idle consumer blocks on its wake key before it
        re-polls its queue.  The effective bound is ``min(idle_wait_ms,
        worker_timeout)`` (plus up to one Redis timer tick).
      wake_max_tokens: The most wake tokens kept per queue while no consumer is
        waiting.  Should be at least the number of consumer processes per queue, so
        that a burst can wake all of them.

    Raises:
      ValueError: If the connection pool's ``socket_timeout`` would cut a ``BLPOP`` of
        ``idle_wait_ms`` short, or if an argument is out of range.
      RuntimeError: If the installed Dramatiq lacks the internals listed in the module
        docstring.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        middleware: list[Middleware] | None = None,
        namespace: str = "dramatiq",
        maintenance_chance: int = 1000,
        heartbeat_timeout: int = 60000,
        dead_message_ttl: int = 86400000 * 7,
        client: redis.Redis | None = None,
        idle_wait_ms: int = 1000,
        wake_max_tokens: int = 16,
        **parameters: Any,
    ) -> None:
        if idle_wait_ms < 1:
            raise ValueError("idle_wait_ms must be >= 1")
        if wake_max_tokens < 1:
            raise ValueError("wake_max_tokens must be >= 1")
        super().__init__(  # type: ignore[no-untyped-call]
            url=url,
            middleware=middleware,
            namespace=namespace,
            maintenance_chance=maintenance_chance,
            heartbeat_timeout=heartbeat_timeout,
            dead_message_ttl=dead_message_ttl,
            client=client,
            **parameters,
        )
        check_dramatiq_internals(self)
        self.idle_wait_ms = idle_wait_ms
        self.wake_max_tokens = wake_max_tokens
        self._check_socket_timeout()
        self.scripts["dispatch"] = _WakingDispatch(self, self.scripts["dispatch"])

    @property
    def consumer_class(self) -> type[_WakeableRedisConsumer]:
        """The consumer class ``RedisBroker.consume`` instantiates."""
        return _WakeableRedisConsumer

    def _check_socket_timeout(self) -> None:
        pool = getattr(self.client, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", {})
        if "socket_timeout" in kwargs:
            socket_timeout = kwargs["socket_timeout"]
        elif pool is not None:
            # Not given: the connection class's own default applies (5 s in redis-py 8),
            # which only a connection object knows (building one does not connect).
            socket_timeout = getattr(pool.connection_class(**kwargs), "socket_timeout", None)
        else:
            socket_timeout = None
        needed_s = self.idle_wait_ms / 1000 + 2 * REDIS_TIMER_SLACK_S
        if socket_timeout is not None and socket_timeout < needed_s:
            raise ValueError(
                f"socket_timeout={socket_timeout}s would interrupt the wake-up BLPOP; "
                f"use socket_timeout >= {needed_s:.2f}s (or None), or lower idle_wait_ms."
            )


def check_dramatiq_internals(broker: RedisBroker | None = None) -> None:
    """Raise :class:`RuntimeError` if a Dramatiq internal this module uses has changed.

    Cheap structural checks only (no Python source inspection), so the broker
    constructor runs it.  Given a freshly built (not yet wrapped) ``broker``, it also
    checks the dispatch script that broker will run.  The guard test in
    ``tests/integration/test_fast_redis.py`` additionally checks behaviour and the
    pinned Dramatiq version.
    """
    problems: list[str] = []

    params = list(inspect.signature(_RedisConsumer.__init__).parameters)
    if params != ["self", "broker", "queue_name", "prefetch", "timeout"]:
        problems.append(f"_RedisConsumer.__init__ parameters changed: {params}")
    if not isinstance(getattr(_RedisConsumer, "outstanding_message_count", None), property):
        problems.append("_RedisConsumer.outstanding_message_count is no longer a property")
    for name in ("ack", "nack", "requeue"):
        if not callable(getattr(_RedisConsumer, name, None)):
            problems.append(f"_RedisConsumer.{name} is missing")
    if not isinstance(getattr(RedisBroker, "consumer_class", None), property):
        problems.append("RedisBroker.consumer_class is no longer a property")
    if not callable(getattr(RedisBroker, "_dispatch", None)):
        problems.append("RedisBroker._dispatch is missing")

    script = getattr(broker, "scripts", {}).get("dispatch") if broker is not None else None
    if broker is not None and not isinstance(script, Script):
        problems.append('RedisBroker.scripts["dispatch"] is not a redis Script')
    elif script is not None:
        source = script.script.encode() if isinstance(script.script, str) else script.script
        for needle in (
            b"local command = ARGV[1]",
            b"local queue_name = ARGV[3]",
            b'command == "enqueue"',
            b'command == "requeue"',
            b'command == "fetch"',
        ):
            if needle not in source:
                problems.append(f"dispatch.lua no longer contains {needle.decode()!r}")

    backoff_params = inspect.signature(compute_backoff).parameters
    if "max_backoff" not in backoff_params:
        problems.append("dramatiq.common.compute_backoff lost its max_backoff parameter")

    if problems:
        raise RuntimeError(
            f"WakeableRedisBroker does not support dramatiq {dramatiq.__version__} "
            f"(reviewed: {', '.join(TESTED_DRAMATIQ_VERSIONS)}): " + "; ".join(problems)
        )
