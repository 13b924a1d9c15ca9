"""Engine and session factory, built at process boot (never at import)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
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


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    """A pooled engine for one process."""
    return create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


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
