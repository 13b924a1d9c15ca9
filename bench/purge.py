"""Retention purge on 1,000,000 messages: rows purged per table, rows/s, longest transaction.

Fills a scratch database (created on the server of ``--database-url`` /
``AGENTFARM_DATABASE_URL``, or on an embedded Postgres started for the run when neither is
set; the configured database itself is never touched) with chats in four kinds, by
``n % 10`` of the chat number:

    0-3  archived 60 days ago   -> expire (1 is a child of 0: a subagent tree)
    4-5  archived 3 days ago    -> kept (recently archived)
    6-7  active, idle 90 days   -> kept (never archived)
    8-9  active, recent         -> kept (9 is a child of 8)

Each chat has ``--messages-per-chat`` messages (100 by default, so 10,000 chats make 1M),
one tool call per ten messages, and every fifth chat a queued follow-up. Files (one per five
chats, 90 % of them older than the window) are linked to chats of every kind, and the first
message of chats 2 and 7 carries a file part. Then the purge runs through the real function
(``models.retention.purge_batch``), one committed transaction per batch, and the script
prints what it deleted, how fast, and the longest batch transaction (the DESIGN.md target:
no lock held over 1 s).

    .venv/bin/python bench/purge.py                       # embedded Postgres
    AGENTFARM_DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv/bin/python bench/purge.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.db import make_engine, normalize_url
from models.migrate import upgrade
from models.retention import DEFAULT_BATCH_SIZE, DEFAULT_RETENTION_DAYS, purge_batch

FILL = [
    # Owners, an organization and a model config for the chats to point at.
    """INSERT INTO organizations (name, display_name, is_default)
       VALUES ('bench', 'Bench', true)""",
    """INSERT INTO users (username, email)
       SELECT 'bench-' || g, 'bench-' || g || '@example.com' FROM generate_series(0, 19) g""",
    """CREATE TEMP TABLE bench_users AS
       SELECT (row_number() OVER (ORDER BY username) - 1)::int AS k, id FROM users""",
    """INSERT INTO chat_providers (provider) VALUES ('openai')""",
    """INSERT INTO chat_model_configs (provider, model, context_limit, is_default)
       VALUES ('openai', 'bench', 128000, true)""",
    """CREATE TEMP TABLE bench_chats AS
       SELECT g AS n, gen_random_uuid() AS id FROM generate_series(0, %(chats)s - 1) g""",
    """CREATE UNIQUE INDEX ON bench_chats (n)""",
    """INSERT INTO chats (id, organization_id, owner_id, last_model_config_id, title, archived,
                          parent_chat_id, root_chat_id, created_at, updated_at)
       SELECT c.id, (SELECT id FROM organizations), u.id, (SELECT id FROM chat_model_configs),
              'bench chat ' || c.n, c.n %% 10 < 6, p.id, p.id, now() - interval '120 days',
              now() - CASE WHEN c.n %% 10 < 4 THEN interval '60 days'
                           WHEN c.n %% 10 < 6 THEN interval '3 days'
                           WHEN c.n %% 10 < 8 THEN interval '90 days'
                           ELSE interval '1 hour' END
         FROM bench_chats c JOIN bench_users u ON u.k = c.n %% 20
         LEFT JOIN bench_chats p ON c.n %% 10 IN (1, 9) AND p.n = c.n - 1""",
    """CREATE TEMP TABLE bench_files AS
       SELECT g AS k, gen_random_uuid() AS id FROM generate_series(0, %(chats)s / 5 - 1) g""",
    """INSERT INTO chat_files (id, owner_id, organization_id, name, mimetype, data, created_at)
       SELECT f.id, u.id, (SELECT id FROM organizations), 'notes-' || f.k || '.txt',
              'text/plain', convert_to(repeat('x', 2048), 'UTF8'),
              now() - CASE WHEN f.k %% 10 = 0 THEN interval '1 day' ELSE interval '100 days' END
         FROM bench_files f JOIN bench_users u ON u.k = f.k %% 20""",
    """INSERT INTO chat_file_links (chat_id, file_id)
       SELECT c.id, f.id FROM bench_files f JOIN bench_chats c ON c.n = (f.k * 3) %% %(chats)s""",
    """INSERT INTO chat_messages (chat_id, role, content, input_tokens, output_tokens,
                                  total_cost_micros, created_at)
       SELECT c.id,
              (ARRAY['user', 'assistant', 'tool', 'assistant'])[1 + m %% 4]::chat_message_role,
              jsonb_build_array(jsonb_build_object('type', 'text', 'text',
                  'message ' || m || ' of chat ' || c.n || ': ' || repeat('lorem ipsum ', 12)))
              || CASE WHEN m = 1 AND c.n %% 5 = 2 THEN jsonb_build_array(jsonb_build_object(
                     'type', 'file', 'file_id', f.id::text, 'media_type', 'text/plain',
                     'name', 'notes.txt')) ELSE '[]'::jsonb END,
              CASE WHEN m %% 4 = 1 THEN 1200 END, CASE WHEN m %% 4 = 1 THEN 300 END,
              CASE WHEN m %% 4 = 1 THEN 4200 END,
              now() - interval '120 days' + m * interval '1 minute'
         FROM bench_chats c CROSS JOIN generate_series(1, %(per_chat)s) m
         LEFT JOIN bench_files f ON c.n %% 5 = 2 AND f.k = (c.n / 5) %% (%(chats)s / 5)""",
    """INSERT INTO chat_tool_calls (chat_id, generation, step_key, position, tool_call_id,
                                    tool_name, args, status, result)
       SELECT c.id, 1, 'step-' || s, 0, 'call-' || s, 'execute', '{"command": "ls"}', 'done',
              '{"output": "README.md\\nsrc\\n", "exit_code": 0}'
         FROM bench_chats c CROSS JOIN generate_series(1, greatest(%(per_chat)s / 10, 1)) s""",
    """INSERT INTO chat_queued_messages (chat_id, content)
       SELECT c.id, '[{"type": "text", "text": "and then?"}]' FROM bench_chats c
        WHERE c.n %% 5 = 3""",
]

TABLES = ("chats", "chat_messages", "chat_tool_calls", "chat_queued_messages",
          "chat_file_links", "chat_files")  # fmt: skip


def scratch_database(server_url: str) -> tuple[str, str]:
    """Create an empty database next to ``server_url``'s; returns (its URL, admin URL)."""
    server = make_url(normalize_url(server_url))
    admin = server.set(drivername="postgresql").render_as_string(False)
    name = f"agentfarm_bench_purge_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.set(database=name).render_as_string(False), admin


def drop_database(admin: str, url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


def fill(url: str, chats: int, per_chat: int) -> dict[str, int]:
    """Insert the data set; returns row counts per table."""
    # Formatted here, not bound: CREATE TABLE AS takes no parameters (both values are ints).
    params = {"chats": int(chats), "per_chat": int(per_chat)}
    with psycopg.connect(libpq(url)) as conn:
        for statement in FILL:
            conn.execute(statement % params)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


def run_purge(url: str, batch_size: int) -> tuple[Counter[str], list[float], float]:
    """Purge to the end, one committed batch per transaction: (rows by table, batch seconds,
    total seconds)."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    purged: Counter[str] = Counter()
    durations: list[float] = []
    started = time.perf_counter()
    try:
        while True:
            t0 = time.perf_counter()
            with Session(engine) as session:
                batch = purge_batch(session, batch_size=batch_size)
                session.commit()
            durations.append(time.perf_counter() - t0)
            purged.update(batch.deleted)
            if not batch.full:
                break
    finally:
        engine.dispose()
    return purged, durations, time.perf_counter() - started


def expired_left(url: str) -> int:
    with psycopg.connect(libpq(url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM chats WHERE archived AND updated_at < now() - make_interval("
            "days => %s)",
            (DEFAULT_RETENTION_DAYS,),
        ).fetchone()
        return int(row[0]) if row else -1


def report(
    before: dict[str, int],
    after: dict[str, int],
    purged: Counter[str],
    durations: list[float],
    total_s: float,
    fill_s: float,
    batch_size: int,
) -> dict[str, float]:
    rows = sum(purged.values())
    print(f"\nfilled in {fill_s:.1f} s; purged with batches of at most {batch_size} rows\n")
    print(f"{'table':<22}{'before':>12}{'purged':>12}{'after':>12}")
    for table in TABLES:
        print(f"{table:<22}{before[table]:>12,}{purged.get(table, 0):>12,}{after[table]:>12,}")
    ordered = sorted(durations)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    longest = ordered[-1]
    print(f"\n{'rows purged':<34}{rows:>12,}")
    print(f"{'batches (transactions)':<34}{len(durations):>12,}")
    print(f"{'total seconds':<34}{total_s:>12.2f}")
    print(f"{'rows/s':<34}{rows / total_s:>12,.0f}")
    print(f"{'batch transaction p50 (ms)':<34}{statistics.median(durations) * 1000:>12.1f}")
    print(f"{'batch transaction p99 (ms)':<34}{p99 * 1000:>12.1f}")
    verdict = "under" if longest < 1.0 else "OVER"
    print(
        f"{'longest batch transaction (ms)':<34}{longest * 1000:>12.1f}  ({verdict} the 1 s target)"
    )
    return {
        "rows_purged": rows,
        "rows_per_s": round(rows / total_s),
        "batches": len(durations),
        "batch_size": batch_size,
        "batch_p50_ms": round(statistics.median(durations) * 1000, 1),
        "batch_p99_ms": round(p99 * 1000, 1),
        "longest_batch_ms": round(longest * 1000, 1),
    }


def main() -> int:
    server_url = ARGS.database_url or os.environ.get("AGENTFARM_DATABASE_URL")
    embedded = None
    if not server_url:
        from agentfarm.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="agentfarm-bench-purge-")))
        print("starting an embedded Postgres ...", flush=True)
        server_url = embedded.start()
    url, admin = scratch_database(server_url)
    try:
        upgrade(url)
        print(f"filling {ARGS.chats:,} chats x {ARGS.messages_per_chat} messages ...", flush=True)
        t0 = time.perf_counter()
        before = fill(url, ARGS.chats, ARGS.messages_per_chat)
        fill_s = time.perf_counter() - t0
        print("purging ...", flush=True)
        purged, durations, total_s = run_purge(url, ARGS.batch_size)
        with psycopg.connect(libpq(url)) as conn:
            after = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]
        figures = report(before, after, purged, durations, total_s, fill_s, ARGS.batch_size)
        left = expired_left(url)
        print(f"{'expired chats left':<34}{left:>12,}")
        print(json.dumps({**figures, "expired_chats_left": left}))
        return 0 if left == 0 else 1
    finally:
        if not ARGS.keep:
            drop_database(admin, url)
        if embedded is not None:
            embedded.stop()
            shutil.rmtree(embedded.data_dir, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", help="server to create the scratch database on")
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--messages-per-chat", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    return parser.parse_args()


if __name__ == "__main__":
    ARGS = parse_args()
    sys.exit(main())
