"""Per-process cache of what steps derive from the configuration tables.

Every step of every chat resolves the same things: its model config with the provider and the
owner's key, whether usage limits are on, whether computer use may be offered, whether any
admin MCP server is enabled. Each answer is kept under the configuration version it was read
with (``models/config_version.py``: the database bumps it in any transaction that writes those
tables), so a change is seen by the next step that starts after it commits: one read of one
row replaces half a dozen queries, and no TTL or invalidation message can be missed.

Only values that are safe to share between threads belong here: immutable records, or objects
nobody mutates after loading (they are detached from the session that loaded them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlmodel import Session

from agentfarm import metrics
from models.site import config_version
from workers.turn.types import MISSING, Missing

T = TypeVar("T")
MAX_ENTRIES = 4096  # per-owner entries; the whole cache is dropped when it would grow past this


class ConfigCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._values: dict[Hashable, Any] = {}

    def view(self, session: Session, version: int | None | Missing = MISSING) -> ConfigView:
        """A view valid for ``version`` as ``session`` read it (the take reads it in the same
        statement as the chat, see ``models.chat.transitions.take_row``); read here (one row)
        when not given."""
        if isinstance(version, Missing):
            version = config_version.current(session)
        # The engine is part of the stamp: one process can talk to several databases (tests).
        stamp = None if version is None else (id(session.get_bind()), version)
        with self._lock:
            if stamp is None or stamp != self._stamp:
                self._values = {}
                self._stamp = stamp
        return ConfigView(self, stamp)

    def _get(self, stamp: tuple[int, int] | None, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            if stamp is not None and stamp == self._stamp and key in self._values:
                return True, self._values[key]
        return False, None

    def _put(self, stamp: tuple[int, int] | None, key: Hashable, value: Any) -> None:
        with self._lock:
            if stamp is None or stamp != self._stamp:
                return  # the version moved while this was loading: keep nothing
            if len(self._values) >= MAX_ENTRIES:
                self._values = {}
            self._values[key] = value


class ConfigView:
    """Lookups for one version of the configuration."""

    def __init__(self, cache: ConfigCache, stamp: tuple[int, int] | None):
        self._cache = cache
        self._stamp = stamp

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The cached value of ``key``, or ``load()``'s (kept unless it raised)."""
        found, value = self._cache._get(self._stamp, key)
        if found:
            metrics.CONFIG_CACHE.labels("hit").inc()
            return value
        metrics.CONFIG_CACHE.labels("miss").inc()
        value = load()
        self._cache._put(self._stamp, key, value)
        return value


_cache = ConfigCache()


def view(session: Session, version: int | None | Missing = MISSING) -> ConfigView:
    """This process's cache at ``version``, or at the version ``session`` sees now (one row)."""
    return _cache.view(session, version)
