"""Retention purge on a real Postgres: 50,000 messages over 1,000 chats, exactly the right rows
go, in batches within their budget, a doomed chat cannot be unarchived, and a purge killed
mid-way (a real worker, SIGKILLed inside a batch) loses only that batch and is finished by the
next send.

The purge is global, so these tests run on a database of their own (migrated here), never on
the session's shared one; only the endpoint test uses the shared API server.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dramatiq
import pytest
import redis as redis_lib
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.db import make_engine
from models.migrate import upgrade
from models.retention import PURGE_LOCK_KEY, PurgeBatch, purge_batch, set_retention_days
from tests.fixtures.farm import make_caller, start_worker

CHATS = 1000
MESSAGES_PER_CHAT = 50
# 3 makes the expired chats' rows end 392 rows short of a batch boundary, so the chat rows
# themselves go in two batches: the order (children before roots) is then observable.
TOOL_CALLS_PER_CHAT = 3
# Chat n's kind is n % 10: (archived, days since updated_at, parent is chat n - 1).
KINDS = {
    0: (True, 45, False),  # expired root (with child 1)
    1: (True, 45, True),  # expired child, archived with its root
    2: (True, 40, False),  # expired
    3: (True, 31, False),  # expired, just past the 30-day window
    4: (True, 29, False),  # kept: archived just inside the window
    5: (True, 2, False),  # kept: recently archived
    6: (False, 200, False),  # kept: active, idle for long (with child 7)
    7: (False, 200, True),  # kept: active child
    8: (False, 0, False),  # kept: active (with child 9)
    9: (True, 40, True),  # expired: a child archived on its own; its active root stays
}
QUEUED_KINDS = (0, 5, 8)  # one queued follow-up each


@dataclass(frozen=True)
class FileSpec:
    days_old: int
    links: tuple[int, ...] = ()  # chat numbers linked through chat_file_links
    parts: tuple[int, ...] = ()  # chat numbers whose first message has a file part for it
    expires: bool = False  # with the default 30-day window


FILES = {
    "orphan-old": FileSpec(60, expires=True),
    "orphan-young": FileSpec(5),
    "linked-to-expired-only": FileSpec(60, links=(0, 12), expires=True),
    "shared-with-active": FileSpec(60, links=(20, 36)),
    "shared-with-recent-archive": FileSpec(60, links=(22, 44)),
    "shared-with-active-child": FileSpec(60, links=(31, 47)),
    "unlinked-part-in-active": FileSpec(60, parts=(58,)),
    "part-in-expired": FileSpec(60, links=(63,), parts=(63,), expires=True),
    "part-in-recent-archive": FileSpec(60, parts=(75,)),
    "young-linked-to-expired": FileSpec(5, links=(80,)),
    "linked-to-expired-child": FileSpec(60, links=(99,), expires=True),
}
CHILD_TABLES = ("chat_messages", "chat_tool_calls", "chat_queued_messages", "chat_file_links")


@dataclass
class Dataset:
    chats: dict[int, uuid.UUID]
    files: dict[str, uuid.UUID]
    process_id: str
    counts: dict[str, int] = field(default_factory=dict)

    def chat_ids(self, expired: bool, days: int = 30) -> set[uuid.UUID]:
        return {
            cid
            for n, cid in self.chats.items()
            if (KINDS[n % 10][0] and KINDS[n % 10][1] > days) == expired
        }

    @property
    def children(self) -> dict[uuid.UUID, uuid.UUID]:
        return {cid: self.chats[n - 1] for n, cid in self.chats.items() if KINDS[n % 10][2]}


@pytest.fixture(scope="module")
def purge_db(scratch_database: Callable[[], str]) -> Iterator[tuple[str, Engine]]:
    url = scratch_database()
    upgrade(url)
    engine = make_engine(url, pool_size=3, max_overflow=2)
    yield url, engine
    engine.dispose()


def fill(engine: Engine) -> Dataset:
    """A fresh data set: 1,000 chats x 50 messages, tool calls, queued messages, files."""
    with engine.begin() as conn:
        x = conn.execute
        x(sa.text("TRUNCATE organizations, users, chat_providers, site_configs CASCADE"))
        org = x(sa.text("INSERT INTO organizations (name) VALUES ('retention') RETURNING id"))
        org_id = org.scalar_one()
        owners = x(
            sa.text(
                "INSERT INTO users (username, email) SELECT 'u' || g, 'u' || g || '@example.com'"
                " FROM generate_series(0, 1) g RETURNING id"
            )
        ).scalars()
        owner_ids = list(owners)
        x(sa.text("INSERT INTO chat_providers (provider) VALUES ('openai')"))
        cfg = x(
            sa.text(
                "INSERT INTO chat_model_configs (provider, model, context_limit)"
                " VALUES ('openai', 'gpt', 128000) RETURNING id"
            )
        ).scalar_one()
        x(
            sa.text(
                """
                INSERT INTO chats (organization_id, owner_id, last_model_config_id, title,
                                   archived, created_at, updated_at)
                SELECT :org, (:owners)[1 + (g / 10) % 2], :cfg, 'chat ' || g,
                       (:archived)[1 + g % 10], now() - interval '300 days',
                       now() - make_interval(days => (:days)[1 + g % 10])
                  FROM generate_series(0, :n - 1) g
                """
            ),
            {
                "org": org_id,
                "owners": owner_ids,
                "cfg": cfg,
                "archived": [KINDS[k][0] for k in range(10)],
                "days": [KINDS[k][1] for k in range(10)],
                "n": CHATS,
            },
        )
        rows = x(sa.text("SELECT substr(title, 6)::int, id FROM chats")).all()
        chats = {n: cid for n, cid in rows}
        children = [{"c": cid, "p": chats[n - 1]} for n, cid in chats.items() if KINDS[n % 10][2]]
        x(
            sa.text("UPDATE chats SET parent_chat_id = :p, root_chat_id = :p WHERE id = :c"),
            children,
        )
        x(
            sa.text(
                """
                INSERT INTO chat_messages (chat_id, role, content, created_at)
                SELECT c.id, (ARRAY['user', 'assistant'])[1 + m % 2]::chat_message_role,
                       jsonb_build_array(jsonb_build_object('type', 'text', 'text', 'm' || m)),
                       c.created_at + m * interval '1 second'
                  FROM chats c CROSS JOIN generate_series(1, :m) m
                """
            ),
            {"m": MESSAGES_PER_CHAT},
        )
        x(
            sa.text(
                """
                INSERT INTO chat_tool_calls (chat_id, generation, step_key, position,
                                             tool_call_id, tool_name, status)
                SELECT c.id, 1, 'step-1', s, 'call-' || s, 'execute', 'done'
                  FROM chats c CROSS JOIN generate_series(1, :t) s
                """
            ),
            {"t": TOOL_CALLS_PER_CHAT},
        )
        queued = [{"c": cid} for n, cid in chats.items() if n % 10 in QUEUED_KINDS]
        x(sa.text("INSERT INTO chat_queued_messages (chat_id) VALUES (:c)"), queued)
        files = {name: _add_file(conn, org_id, chats, spec) for name, spec in FILES.items()}
        process_id = _add_workspace_process(conn, org_id, owner_ids[0], chats[0])
    return Dataset(chats, files, process_id, counts=table_counts(engine))


def _add_file(conn: sa.Connection, org_id: uuid.UUID, chats: dict[int, uuid.UUID],
              spec: FileSpec) -> uuid.UUID:  # fmt: skip
    owner = conn.execute(
        sa.text("SELECT owner_id FROM chats WHERE id = :c"),
        {"c": chats[(spec.links + spec.parts + (0,))[0]]},
    ).scalar_one()
    file_id = conn.execute(
        sa.text(
            "INSERT INTO chat_files (owner_id, organization_id, name, mimetype, data, created_at)"
            " VALUES (:o, :org, 'f.txt', 'text/plain', 'x', now() - make_interval(days => :d))"
            " RETURNING id"
        ),
        {"o": owner, "org": org_id, "d": spec.days_old},
    ).scalar_one()
    for n in spec.links:
        conn.execute(
            sa.text("INSERT INTO chat_file_links (chat_id, file_id) VALUES (:c, :f)"),
            {"c": chats[n], "f": file_id},
        )
    for n in spec.parts:
        # As the API stores it: {type: file, file_id, media_type, name} in a user message.
        conn.execute(
            sa.text(
                "UPDATE chat_messages SET content = content || jsonb_build_array("
                "jsonb_build_object('type', 'file', 'file_id', CAST(:f AS text),"
                " 'media_type', 'text/plain', 'name', 'f.txt'))"
                " WHERE id = (SELECT min(id) FROM chat_messages"
                " WHERE chat_id = :c)"
            ),
            {"c": chats[n], "f": file_id},
        )
    return file_id


def _add_workspace_process(conn: sa.Connection, org_id: uuid.UUID, owner: uuid.UUID,
                           chat_id: uuid.UUID) -> str:  # fmt: skip
    """A workspace process started by an expiring chat (its FK is ON DELETE SET NULL)."""
    template = conn.execute(
        sa.text("INSERT INTO templates (organization_id, name) VALUES (:o, 't') RETURNING id"),
        {"o": org_id},
    ).scalar_one()
    workspace = conn.execute(
        sa.text(
            "INSERT INTO workspaces (owner_id, organization_id, template_id, name, host,"
            " directory) VALUES (:u, :o, :t, 'w', 'local', '/tmp/w') RETURNING id"
        ),
        {"u": owner, "o": org_id, "t": template},
    ).scalar_one()
    conn.execute(
        sa.text(
            "INSERT INTO workspace_processes (id, workspace_id, chat_id, host, command)"
            " VALUES ('proc-1', :w, :c, 'local', 'sleep 1')"
        ),
        {"w": workspace, "c": chat_id},
    )
    return "proc-1"


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("chats", "chat_files", *CHILD_TABLES)
        }


def rows_of(engine: Engine, chat_ids: set[uuid.UUID]) -> dict[str, int]:
    """Rows of each child table that belong to ``chat_ids``."""
    with engine.connect() as conn:
        return {
            t: conn.execute(
                sa.text(f"SELECT count(*) FROM {t} WHERE chat_id = ANY(:ids)"),
                {"ids": list(chat_ids)},
            ).scalar_one()
            for t in CHILD_TABLES
        }


def assert_consistent(engine: Engine, data: Dataset) -> None:
    """What must hold between any two batches: kept chats are whole, and no surviving child
    lost its root (children go before their root)."""
    kept = data.chat_ids(expired=False)
    assert rows_of(engine, kept) == data_rows(data, kept)
    with engine.connect() as conn:
        surviving = dict(
            conn.execute(
                sa.text("SELECT id, root_chat_id FROM chats WHERE id = ANY(:ids)"),
                {"ids": list(data.children)},
            ).all()
        )
    assert {c: r for c, r in surviving.items() if r != data.children[c]} == {}


def data_rows(data: Dataset, chat_ids: set[uuid.UUID]) -> dict[str, int]:
    """Child rows ``chat_ids`` had when the data set was made."""
    numbers = [n for n, cid in data.chats.items() if cid in chat_ids]
    links = sum(data.chats[n] in chat_ids for spec in FILES.values() for n in spec.links)
    return {
        "chat_messages": len(numbers) * MESSAGES_PER_CHAT,
        "chat_tool_calls": len(numbers) * TOOL_CALLS_PER_CHAT,
        "chat_queued_messages": sum(n % 10 in QUEUED_KINDS for n in numbers),
        "chat_file_links": links,
    }


def assert_purged_exactly(engine: Engine, data: Dataset, days: int = 30) -> dict[str, int]:
    """The final state: exactly the expired chats (with their rows) and files are gone.
    Returns the rows that went, by table."""
    expired, kept = data.chat_ids(expired=True, days=days), data.chat_ids(expired=False, days=days)
    with engine.connect() as conn:
        chats = set(conn.execute(sa.text("SELECT id FROM chats")).scalars())
        files = set(conn.execute(sa.text("SELECT id FROM chat_files")).scalars())
        process_chat = conn.execute(
            sa.text("SELECT chat_id FROM workspace_processes WHERE id = :p"), {"p": data.process_id}
        ).scalar_one()
    assert chats == kept
    assert rows_of(engine, expired) == dict.fromkeys(CHILD_TABLES, 0)
    assert rows_of(engine, kept) == data_rows(data, kept)
    assert {n for n, fid in data.files.items() if fid not in files} == expected_files(days)
    assert process_chat is None  # SET NULL, the process row stays
    after = table_counts(engine)
    return {t: data.counts[t] - after[t] for t in after if data.counts[t] != after[t]}


def expected_files(days: int) -> set[str]:
    if days == 30:
        return {name for name, spec in FILES.items() if spec.expires}

    # Computed from the rules for other windows: old enough, and no kept chat references it.
    def kept(n: int) -> bool:
        archived, age, _ = KINDS[n % 10]
        return not archived or age <= days

    return {
        name
        for name, spec in FILES.items()
        if spec.days_old > days and not any(kept(n) for n in spec.links + spec.parts)
    }


def run_batch(engine: Engine, batch_size: int = 1000, page_order: bool | None = None) -> PurgeBatch:
    with Session(engine) as session:
        batch = purge_batch(session, batch_size=batch_size, page_order=page_order)
        session.commit()
    return batch


@pytest.mark.parametrize("page_order", [True, False], ids=["page-order", "by-chat-index"])
def test_purge_deletes_exactly_the_expired_rows_in_batches(
    purge_db: tuple[str, Engine], page_order: bool
) -> None:
    """Both ways a table is swept (page order where the doomed rows are dense, the chat index
    where they are sparse) delete exactly the same rows."""
    _, engine = purge_db
    data = fill(engine)
    assert data.counts["chat_messages"] == CHATS * MESSAGES_PER_CHAT

    batches: list[PurgeBatch] = []
    while not batches or batches[-1].full:
        batches.append(run_batch(engine, batch_size=300, page_order=page_order))
        assert batches[-1].total <= 300
        assert_consistent(engine, data)
        assert len(batches) < 400, "the purge does not converge"

    gone = assert_purged_exactly(engine, data)
    expired = data.chat_ids(expired=True)
    assert gone == {
        "chats": len(expired),
        "chat_files": len(expected_files(30)),
        **data_rows(data, expired),
    }
    totals: dict[str, int] = {}
    for batch in batches:
        for table, rows in batch.deleted.items():
            totals[table] = totals.get(table, 0) + rows
    assert totals == gone
    # Every batch but the last stopped on a budget; the last found nothing more.
    assert [b.full for b in batches] == [True] * (len(batches) - 1) + [False]
    # The expired chats themselves go over several batches, children first (checked by
    # assert_consistent after each batch).
    assert len([b for b in batches if "chats" in b.deleted]) >= 2
    assert run_batch(engine).total == 0


def test_window_setting_off_switch_and_one_purge_at_a_time(purge_db: tuple[str, Engine]) -> None:
    _, engine = purge_db
    data = fill(engine)
    with Session(engine) as session:
        set_retention_days(session, 0)
        session.commit()
    assert run_batch(engine).total == 0
    assert table_counts(engine) == data.counts

    with Session(engine) as session:
        set_retention_days(session, 35)
        session.commit()
    with engine.connect() as holder:  # another purge batch in flight
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PURGE_LOCK_KEY})
        busy = run_batch(engine)
        holder.rollback()
    assert busy.busy and busy.total == 0
    assert table_counts(engine) == data.counts

    while run_batch(engine).full:
        pass
    # 35 days: chats archived 31 days ago stay, and so do the files they reference.
    assert_purged_exactly(engine, data, days=35)
    assert "part-in-expired" not in expected_files(35)


def test_a_few_expired_chats_in_a_big_table_go_through_the_index(
    purge_db: tuple[str, Engine],
) -> None:
    """Two expired chats among 50,000 messages: the purge deletes their rows through the chat
    index instead of reading the big tables' pages in order (the steady state of a farm
    whose chats expire a few at a time); only one-page tables are read whole."""
    _, engine = purge_db
    data = fill(engine)
    doomed = {data.chats[2], data.chats[12]}  # kind 2: expired roots without children
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE chats SET updated_at = now() WHERE NOT (id = ANY(:ids))"),
            {"ids": list(doomed)},
        )
    batches = [run_batch(engine)]
    while batches[-1].full:
        batches.append(run_batch(engine))
    with engine.connect() as conn:
        messages_pages = conn.execute(
            sa.text("SELECT pg_relation_size('chat_messages') / 8192")
        ).scalar_one()
    assert messages_pages > 500 and sum(b.blocks for b in batches) < 10
    gone: dict[str, int] = {}
    for batch in batches:
        for table, rows in batch.deleted.items():
            gone[table] = gone.get(table, 0) + rows
    expected = {"chats": 2, **{t: n for t, n in data_rows(data, doomed).items() if n}}
    assert {t: n for t, n in gone.items() if t != "chat_files"} == expected
    assert rows_of(engine, doomed) == dict.fromkeys(CHILD_TABLES, 0)


def test_a_doomed_chat_cannot_be_unarchived(purge_db: tuple[str, Engine]) -> None:
    """Once a cycle has doomed the expired chats (its first batch), unarchiving one is refused
    with a 400 and changes nothing; a chat archived inside the window can still come back."""
    from models.chat.tables import Chat
    from models.chat.updates import set_archived
    from models.errors import BadRequest

    _, engine = purge_db
    data = fill(engine)
    first = run_batch(engine, batch_size=10)
    assert first.full and first.total == 10
    expired_root, recent = data.chats[2], data.chats[5]  # kinds 2 (40 days) and 5 (2 days)
    with Session(engine) as session:
        chat = session.get(Chat, expired_root)
        assert chat is not None and chat.archived
        with pytest.raises(BadRequest) as info:
            set_archived(session, chat, False)
        assert info.value.message == "Chat is past its retention period and is being deleted."
        session.rollback()
        kept = session.get(Chat, recent)
        assert kept is not None
        set_archived(session, kept, False)
        session.commit()
    with Session(engine) as session:
        assert session.get(Chat, expired_root).archived  # type: ignore[union-attr]
        assert not session.get(Chat, recent).archived  # type: ignore[union-attr]
    while run_batch(engine).full:
        pass
    with Session(engine) as session:
        assert session.get(Chat, expired_root) is None
        assert session.get(Chat, recent) is not None


def _redis_url(client: redis_lib.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def _wait(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _purged_metric(directory: Path) -> dict[str, int]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {
        s.labels["table"]: int(s.value)
        for metric in registry.collect()
        if metric.name == "agentfarm_purged_rows"
        for s in metric.samples
        if s.name == "agentfarm_purged_rows_total"
    }


def _tool_call_deletes(engine: Engine, *, waiting: bool) -> int:
    """Backends whose (last) statement deletes tool calls; with ``waiting``, only those
    waiting for a lock."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND query LIKE '%DELETE FROM chat_tool_calls%'"
                " AND (NOT :waiting OR wait_event_type = 'Lock')"
            ),
            {"waiting": waiting},
        ).scalar_one()


def test_purge_killed_mid_batch_resumes(
    purge_db: tuple[str, Engine],
    farm_env: dict[str, str],
    scratch_redis: redis_lib.Redis,
    tmp_path: Path,
) -> None:
    url, engine = purge_db
    data = fill(engine)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        **farm_env,
        "AGENTFARM_DATABASE_URL": url,
        "AGENTFARM_REDIS_URL": _redis_url(scratch_redis),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "AGENTFARM_RETENTION_BATCH_SIZE": "1000",  # several batches over this data set
    }
    from agentfarm.tasks.broker import build_broker

    broker = build_broker(env["AGENTFARM_REDIS_URL"])
    purge_message = dramatiq.Message(
        queue_name="scheduled", actor_name="retention.purge", args=(), kwargs={}, options={}
    )
    expired = data.chat_ids(expired=True)
    # The purge sweeps the expired chats' rows table by table (file links, messages, queued
    # messages, tool calls), in page order. The tool calls of the chats archived 31 days ago
    # (kind 3), held by this transaction, stop it inside the batch that reaches the first of
    # them, once the batches before it have committed.
    held = {cid for n, cid in data.chats.items() if n % 10 == 3}
    holder = engine.connect()
    holder.execute(
        sa.text("SELECT id FROM chat_tool_calls WHERE chat_id = ANY(:ids) FOR UPDATE"),
        {"ids": list(held)},
    )
    first = start_worker(env, tmp_path / "w1", hosts="", queues=["scheduled"])
    try:
        broker.enqueue(purge_message.copy())  # the scheduler's send
        _wait(
            "the purge to block inside a batch",
            lambda: _tool_call_deletes(engine, waiting=True) > 0,
        )
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        holder.rollback()
        holder.close()
        first.stop()
    # The orphaned backend finishes its statement, finds its client gone and rolls back.
    _wait("the killed batch to roll back", lambda: _tool_call_deletes(engine, waiting=False) == 0)

    # Mid-way: whole batches committed (rows gone = rows the worker counted after each
    # commit, in full batches), the killed batch left nothing behind (every held chat is
    # there with every tool call; batches that committed before it may have taken some of
    # their messages), and every surviving child still has its root.
    killed_run = _purged_metric(metrics_dir)
    now = table_counts(engine)
    assert {t: data.counts[t] - now[t] for t in now if data.counts[t] != now[t]} == killed_run
    assert sum(killed_run.values()) >= 1000 and sum(killed_run.values()) % 1000 == 0
    assert rows_of(engine, held)["chat_tool_calls"] == len(held) * TOOL_CALLS_PER_CHAT
    with engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM chats WHERE id = ANY(:ids)"), {"ids": list(held)}
        ).scalar_one()
    assert left == len(held) and now["chats"] == CHATS  # chats go after the sweep
    assert_consistent(engine, data)

    # The next scheduled send, to a restarted worker, finishes the job in one chain.
    expected = {
        "chats": len(expired),
        "chat_files": len(expected_files(30)),
        **data_rows(data, expired),
    }
    second = start_worker(env, tmp_path / "w2", hosts="", queues=["scheduled"])
    try:
        broker.enqueue(purge_message.copy())
        # Both workers' counters together: every row exactly once.
        _wait("the purge to finish", lambda: _purged_metric(metrics_dir) == expected)
    finally:
        second.stop()
        broker.close()
    assert assert_purged_exactly(engine, data) == expected


def test_retention_days_endpoint(api_server: str) -> None:
    owner = make_caller(api_server, roles=["owner"])
    member = make_caller(api_server)
    path = "/api/experimental/chats/config/retention-days"
    try:
        assert member.http.get(path).json() == {"retention_days": 30}
        assert member.http.put(path, json={"retention_days": 7}).status_code == 403
        for bad in (-1, 3651):
            resp = owner.http.put(path, json={"retention_days": bad})
            assert resp.status_code == 400
            assert resp.json()["message"] == "Retention days must be between 0 and 3650."
        assert owner.http.put(path, json={"retention_days": "soon"}).status_code == 400
        for good in (0, 3650, 7):
            assert owner.http.put(path, json={"retention_days": good}).status_code == 204
            assert member.http.get(path).json() == {"retention_days": good}
        anonymous = member.http.get(path, headers={"Coder-Session-Token": ""})
        assert anonymous.status_code == 401
    finally:
        owner.http.put(path, json={"retention_days": 30})
        owner.http.close()
        member.http.close()
