"""Engine and session factory, built at process boot (never at import)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

_engine: Engine | None = None
_sessionmaker: sessionmaker[Session] | None = None


def normalize_url(url: str) -> str:
    """Accept plain ``postgres://``/``postgresql://`` URLs and select the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# A pooled connection idle for longer than this is pinged before use. A hot connection is
# not: SQLAlchemy's pool_pre_ping cost one round trip on every checkout (three per turn),
# while a connection broken under load fails its statement, which invalidates the pool.
PING_AFTER_IDLE_S = 2.0


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    """A pooled engine for one process."""
    engine = create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
    )

    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        """Ping a connection that sat idle; a dead one makes the pool connect afresh."""
        if time.monotonic() - record.info.get("idle_since", 0.0) <= PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("ping failed")

    event.listen(engine, "connect", _mark_idle)
    event.listen(engine, "checkin", _mark_idle)
    event.listen(engine, "checkout", ping_if_idle)
    return engine


def _mark_idle(dbapi_connection: Any, record: Any, *_: Any) -> None:
    if record is not None:
        record.info["idle_since"] = time.monotonic()


def init_engine(url: str, **kwargs: int) -> Engine:
    """Build this process's engine and session factory (idempotent for the same URL)."""
    global _engine, _sessionmaker
    if _engine is not None and str(_engine.url) == str(make_url_safe(url)):
        return _engine
    dispose_engine()
    _engine = make_engine(url, **kwargs)
    _sessionmaker = sessionmaker(bind=_engine, class_=Session, expire_on_commit=False)
    return _engine


def make_url_safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(normalize_url(url)))


def dispose_engine() -> None:
    """Close every pooled connection (process shutdown, tests)."""
    global _engine, _sessionmaker
    if _engine is not None:
        _engine.dispose()
    _engine = None
    _sessionmaker = None


def get_engine() -> Engine:
    """The engine built by :func:`init_engine`."""
    if _engine is None:
        raise RuntimeError("database engine not initialised; call models.db.init_engine() first")
    return _engine


def new_session() -> Session:
    """A new session; the caller owns the transaction."""
    if _sessionmaker is None:
        raise RuntimeError("database engine not initialised; call models.db.init_engine() first")
    return _sessionmaker()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any exception."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
