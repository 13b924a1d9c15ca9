"""The configuration version (migration 0013) and the workers' cache keyed by it, against a
real, migrated Postgres."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from models import db
from models.site import config_version
from workers.turn.config_cache import ConfigCache


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    yield db.init_engine(database_url)


def _version(engine: sa.Engine) -> int:
    with Session(engine) as session:
        value = config_version.current(session)
    assert value is not None
    return value


def _touch(engine: sa.Engine, table: str) -> None:
    """A committed statement on ``table`` that changes no row (statement triggers still fire)."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET {_column(conn, table)} = {_column(conn, table)}"
                             " WHERE false"))  # fmt: skip


def _column(conn: sa.Connection, table: str) -> str:
    return str(sa.inspect(conn).get_columns(table)[0]["name"])


@pytest.mark.parametrize("table", config_version.VERSIONED_TABLES)
def test_a_write_to_a_configuration_table_moves_the_version_when_it_commits(
    engine: sa.Engine, table: str
) -> None:
    before = _version(engine)
    with engine.connect() as conn:
        conn.execute(sa.text(f"DELETE FROM {table} WHERE false"))
        assert _version(engine) == before  # not committed: nobody may see a new version yet
        conn.rollback()
    assert _version(engine) == before
    _touch(engine, table)
    assert _version(engine) == before + 1


def test_other_tables_leave_the_version_alone(engine: sa.Engine) -> None:
    before = _version(engine)
    _touch(engine, "chats")
    _touch(engine, "chat_messages")
    assert _version(engine) == before


def test_the_cache_answers_until_the_version_moves(engine: sa.Engine) -> None:
    cache = ConfigCache()
    loads: list[str] = []

    def load(value: str) -> str:
        loads.append(value)
        return value

    with Session(engine) as session:
        assert cache.view(session).get("k", lambda: load("a")) == "a"
        assert cache.view(session).get("k", lambda: load("b")) == "a"  # same version: cached
    assert loads == ["a"]
    _touch(engine, "site_configs")
    with Session(engine) as session:
        view = cache.view(session)
        assert view.get("k", lambda: load("c")) == "c"  # a configuration write: loaded again
        assert view.get("k", lambda: load("d")) == "c"
    assert loads == ["a", "c"]


def test_a_failed_load_is_not_kept(engine: sa.Engine) -> None:
    cache = ConfigCache()

    def fail() -> str:
        raise LookupError("no such model config")

    with Session(engine) as session:
        view = cache.view(session)
        with pytest.raises(LookupError):
            view.get("model", fail)
        assert view.get("model", lambda: "found") == "found"


def _set_limits(engine: sa.Engine, on: bool) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE chat_usage_limit_config SET enabled = :on,"
                             " default_limit_micros = 5"), {"on": on})  # fmt: skip


def test_the_api_limit_switch_rides_the_auth_statement_and_follows_each_change(
    engine: sa.Engine,
) -> None:
    """A request's auth statement reads the version; while it is unchanged the usage-limit
    switch costs no statement; a committed change is seen by the next request; a session
    that wrote (or reads its own uncommitted change) never files what it read."""
    from models.identity.bootstrap import create_user
    from models.identity.tokens import create_token, lookup_token_user
    from models.usage import limits

    with Session(engine) as session:
        user = create_user(session, email="cache@example.com", username="cache")
        token = create_token(session, user.id)
        session.commit()

    def request(on_expected: bool) -> int:
        """Auth then the switch, as a chat route does; the statements the switch cost."""
        with Session(engine) as session:
            assert lookup_token_user(session, token) is not None
            seen: list[str] = []

            def count(*args: object) -> None:
                seen.append(str(args[2]))

            sa.event.listen(engine, "before_cursor_execute", count)
            try:
                assert limits.enabled(session) is on_expected
            finally:
                sa.event.remove(engine, "before_cursor_execute", count)
            return len(seen)

    _set_limits(engine, False)
    request(False)  # may fill the cache
    assert request(False) == 0
    _set_limits(engine, True)
    assert request(True) == 1  # a new version: read once
    assert request(True) == 0
    with Session(engine) as session:  # an uncommitted change in a session that authed
        assert lookup_token_user(session, token) is not None
        session.execute(sa.text("UPDATE chat_usage_limit_config SET enabled = false"))
        assert limits.enabled(session) is False  # its own write, read, not filed
        session.rollback()
    assert request(True) == 0
    _set_limits(engine, False)
    assert request(False) == 1
