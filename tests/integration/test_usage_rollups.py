"""Cost rollups on a real Postgres: on random data the rollup tables equal an aggregate
computed here in Python, re-running changes nothing, and every cost figure (reports and the
usage-limit spend) is the same before, during and after rolling up — including for messages
written later into days already rolled up, and for a message whose transaction commits while
a rollup runs.

The rollup is global, so these tests use a database of their own.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.db import make_engine
from models.migrate import upgrade
from models.usage import cost_reports
from models.usage.rollups import pending_count, rollup_batch
from tests.fixtures.rollup_data import (
    DAYS,
    T0,
    TOKENS,
    WIRE,
    Data,
    Msg,
    expected_buckets,
    fill,
    insert,
    random_messages,
    roll_all,
    stored_buckets,
)


@pytest.fixture(scope="module")
def engine(scratch_database: Callable[[], str]) -> Iterator[Engine]:
    url = scratch_database()
    upgrade(url)
    eng = make_engine(url, pool_size=3, max_overflow=2)
    yield eng
    eng.dispose()


@pytest.fixture
def data(engine: Engine) -> Data:
    return fill(engine)


def test_rollups_equal_a_direct_aggregate_and_rerunning_changes_nothing(
    engine: Engine, data: Data
) -> None:
    with Session(engine) as session:
        assert pending_count(session) == sum(
            m.role == "assistant" or m.cost is not None for m in data.msgs
        )
    assert roll_all(engine, 700) > 3  # worked off in several bounded batches
    stored = stored_buckets(engine)
    assert stored == expected_buckets(data)
    with Session(engine) as session:
        assert pending_count(session) == 0
        again = rollup_batch(session, batch_size=700)
        session.commit()
    assert (again.consumed, again.full) == (0, False)
    assert stored_buckets(engine) == stored


# ------------------------------------------------------------------ reports = direct aggregate


def figures(msgs: list[Msg]) -> dict[str, int]:
    out = {
        "total_cost_micros": sum(m.cost or 0 for m in msgs),
        "total_runtime_ms": sum(m.runtime or 0 for m in msgs),
    }
    for i, name in enumerate(TOKENS):
        out[WIRE[name]] = sum(m.tokens[i] or 0 for m in msgs)
    return out


def expected_reports(data: Data, user: uuid.UUID, lo: datetime, hi: datetime) -> dict[str, Any]:
    mine = [m for m in data.msgs if data.owners[m.chat] == user and lo <= m.at < hi]
    counted = [m for m in mine if m.counted]
    by_model: dict[Any, list[Msg]] = defaultdict(list)
    by_root: dict[Any, list[Msg]] = defaultdict(list)
    for m in counted:
        by_model[str(m.model) if m.model else None].append(m)
        by_root[str(data.roots[m.chat])].append(m)
    return {
        "spend": sum(m.cost for m in mine if m.cost is not None),
        "totals": {
            **figures(counted),
            "priced_message_count": sum(m.cost is not None for m in counted),
            "unpriced_message_count": sum(m.cost is None for m in counted),
        },
        "by_model": {k: {**figures(v), "message_count": len(v)} for k, v in by_model.items()},
        "by_chat": {k: {**figures(v), "message_count": len(v)} for k, v in by_root.items()},
        "chat_count": len(by_root),
    }


def actual_reports(session: Session, user: uuid.UUID, lo: datetime, hi: datetime) -> Any:
    def strip(rows: list[dict[str, Any]], key: str) -> dict[Any, Any]:
        drop = (key, "display_name", "provider", "model", "chat_title")
        return {r[key]: {k: v for k, v in r.items() if k not in drop} for r in rows}

    _, users = cost_reports.users_rollup(session, lo, hi, limit=100)
    mine = [u for u in users if u["user_id"] == str(user)]
    return {
        "spend": cost_reports.user_spend(session, user, lo, hi),
        "totals": cost_reports.user_totals(session, user, lo, hi),
        "by_model": strip(cost_reports.user_by_model(session, user, lo, hi), "model_config_id"),
        "by_chat": strip(cost_reports.user_by_chat(session, user, lo, hi), "root_chat_id"),
        "chat_count": mine[0]["chat_count"] if mine else 0,
    }


def windows(rng: random.Random) -> list[tuple[datetime, datetime]]:
    day = timedelta(days=1)
    fixed = [
        (T0, T0 + DAYS * day),
        (T0 + 2 * day, T0 + 5 * day),  # whole days
        (T0 + timedelta(hours=30), T0 + timedelta(hours=31)),  # inside one day
        (T0 - day, T0 + 40 * day),
        (T0 + 3 * day, T0 + 3 * day),  # empty
    ]
    for _ in range(4):  # arbitrary instants: partial days at both edges
        a, b = sorted(rng.randrange(DAYS * 86_400) for _ in range(2))
        fixed.append((T0 + timedelta(seconds=a), T0 + timedelta(seconds=b + 1)))
    return fixed


def assert_reports_match(engine: Engine, data: Data, rng: random.Random) -> None:
    with Session(engine) as session:
        for lo, hi in windows(rng):
            for user in data.users:
                assert actual_reports(session, user, lo, hi) == expected_reports(
                    data, user, lo, hi
                ), (lo, hi)


def test_reports_are_the_same_before_during_and_after_rollups(engine: Engine, data: Data) -> None:
    rng = random.Random(7)
    assert_reports_match(engine, data, rng)  # nothing rolled up: all from the tail
    with Session(engine) as session:
        assert rollup_batch(session, batch_size=1200).full
        session.commit()
    assert_reports_match(engine, data, rng)  # part rolled up
    roll_all(engine, 5000)
    assert_reports_match(engine, data, rng)  # all rolled up
    # Later messages, some of them into days already rolled up (imports, backfills).
    late = random_messages(random.Random(8), data, 400)
    with engine.begin() as conn:
        insert(conn, late)
    data.msgs += late
    assert_reports_match(engine, data, rng)
    roll_all(engine, 5000)
    assert_reports_match(engine, data, rng)
    assert stored_buckets(engine) == expected_buckets(data)


def test_a_message_committed_during_a_rollup_is_counted_once(engine: Engine, data: Data) -> None:
    roll_all(engine, 5000)
    late = Msg(
        sorted(data.owners)[0],
        None,
        "assistant",
        T0 + timedelta(days=3, hours=2),
        777,
        (10, 20, None, None, None, None),
        5,
    )
    with engine.connect() as writer:
        tx = writer.begin()
        insert(writer, [late])  # not committed yet: invisible to the rollup below
        with Session(engine) as session:
            assert rollup_batch(session, batch_size=5000).consumed == 0
            session.commit()
        tx.commit()
    data.msgs.append(late)
    assert_reports_match(engine, data, random.Random(9))  # from the tail
    roll_all(engine, 5000)
    assert stored_buckets(engine) == expected_buckets(data)
    assert_reports_match(engine, data, random.Random(9))


def test_a_purged_chat_leaves_the_reports_but_not_the_spend_ledger(
    engine: Engine, data: Data
) -> None:
    roll_all(engine, 5000)
    chat = next(c for c in sorted(data.owners) if data.roots[c] == c)
    user = data.owners[chat]
    window = (T0, T0 + timedelta(days=DAYS))
    spend_before = expected_reports(data, user, *window)["spend"]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM chats WHERE root_chat_id = :c OR id = :c"), {"c": chat})
    gone = {c for c, r in data.roots.items() if r == chat}
    kept = Data(
        data.owners,
        data.roots,
        data.users,
        data.models,
        [m for m in data.msgs if m.chat not in gone],
    )
    with Session(engine) as session:
        got = actual_reports(session, user, *window)
        leftover = session.execute(
            sa.text("SELECT count(*) FROM usage_chat_days WHERE chat_id = ANY(:ids)"),
            {"ids": list(gone)},
        )
        assert leftover.scalar_one() == 0  # the chat buckets went with their chats
    want = expected_reports(kept, user, *window)
    assert {k: got[k] for k in ("totals", "by_model", "by_chat", "chat_count")} == {
        k: want[k] for k in ("totals", "by_model", "by_chat", "chat_count")
    }
    # The usage-limit spend is a ledger: money spent stays spent.
    assert got["spend"] == spend_before > want["spend"]


def test_whole_days_of_a_window() -> None:
    d = datetime(2030, 1, 5, tzinfo=UTC)
    assert cost_reports.whole_days(d, d + timedelta(days=2)) == (d, d + timedelta(days=2))
    assert cost_reports.whole_days(d + timedelta(hours=1), d + timedelta(days=2, hours=1)) == (
        d + timedelta(days=1),
        d + timedelta(days=2),
    )
    assert cost_reports.whole_days(d + timedelta(hours=1), d + timedelta(hours=23)) is None
