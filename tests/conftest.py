"""Suite-wide fixtures: real Postgres, real Redis, the scripted model server, a real farm.

Servers: ``AGENTFARM_TEST_DATABASE_URL`` / ``AGENTFARM_TEST_REDIS_URL`` when set (CI points
them at the machine's Postgres and Redis), else embedded ones started for the session. Every
session gets a brand-new database (migrated with alembic) and its own Redis database index.
Tests never inherit the developer's ``AGENTFARM_*`` environment.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
from sqlalchemy.engine import make_url

# Drop the developer's agentfarm settings before anything reads them.
for _name in list(os.environ):
    if _name.startswith("AGENTFARM_") and not _name.startswith("AGENTFARM_TEST_"):
        del os.environ[_name]
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

pytest_plugins = [
    "tests.fixtures.db_session",
    "tests.fixtures.farm",
    "tests.fixtures.providers",
    "tests.fixtures.usage",
    "tests.fixtures.mcp_servers",
]


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="session")
def server_urls(embedded_dir: Path) -> Iterator[tuple[str, str]]:
    """(postgres server URL, redis server URL) — external if configured, else embedded."""
    pg_url = os.environ.get("AGENTFARM_TEST_DATABASE_URL")
    redis_url = os.environ.get("AGENTFARM_TEST_REDIS_URL")
    started = []
    if not pg_url or not redis_url:
        from agentfarm.embedded import EmbeddedPostgres, EmbeddedRedis

        if not pg_url:
            pg = EmbeddedPostgres(embedded_dir)
            pg_url = pg.start()
            started.append(pg)
        if not redis_url:
            rd = EmbeddedRedis(embedded_dir)
            redis_url = rd.start()
            started.append(rd)
    yield pg_url, redis_url
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def database_url(server_urls: tuple[str, str]) -> Iterator[str]:
    """A fresh, migrated database for this test session (dropped afterwards)."""
    from models.db import normalize_url
    from models.migrate import upgrade

    server = make_url(normalize_url(server_urls[0]))
    name = f"agentfarm_test_{uuid.uuid4().hex[:10]}"
    admin = server.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(False)
    upgrade(url)
    yield url
    from models import db

    db.dispose_engine()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def scratch_database(server_urls: tuple[str, str]) -> Iterator[callable]:  # type: ignore[valid-type]
    """Factory of empty, unmigrated databases (migration tests); all dropped at the end."""
    from models.db import normalize_url

    server = make_url(normalize_url(server_urls[0]))
    admin = server.set(drivername="postgresql", database="postgres").render_as_string(False)
    made: list[str] = []

    def make() -> str:
        name = f"agentfarm_scratch_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return server.set(database=name).render_as_string(False)

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _redis_db_url(base: str, index: int) -> str:
    head = base.rsplit("/", 1)[0] if base.count("/") >= 3 else base.rstrip("/")
    return f"{head}/{index}"


@pytest.fixture(scope="session")
def redis_url(server_urls: tuple[str, str]) -> str:
    """The Redis database the farm under test uses (flushed at session start)."""
    base = server_urls[1]
    index = int(os.environ.get("AGENTFARM_TEST_REDIS_DB", "9"))
    url = _redis_db_url(base, index)
    redis_lib.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def scratch_redis(server_urls: tuple[str, str]) -> Iterator[redis_lib.Redis]:
    """A flushed Redis database for tests that use Redis directly (not the farm's)."""
    index = int(os.environ.get("AGENTFARM_TEST_REDIS_DB", "9")) + 1
    client = redis_lib.Redis.from_url(_redis_db_url(server_urls[1], index))
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
