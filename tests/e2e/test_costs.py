"""Cost reports through the API: ``/cost/users`` and ``/cost/{user}/summary`` against a known
data set written straight into chat_messages (explicit timestamps in a window of 2001 that no
other test writes to), compared with the same figures computed here in Python."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from models import db
from models.identity.bootstrap import create_user, default_organization
from models.identity.tokens import create_token
from tests.fixtures.farm import Caller, Farm
from tests.fixtures.providers import CHATS

START = datetime(2001, 1, 1, tzinfo=UTC)
END = datetime(2001, 2, 1, tzinfo=UTC)
WINDOW = {"start_date": "2001-01-01T00:00:00Z", "end_date": "2001-02-01T00:00:00Z"}
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
WIRE = {
    "input_tokens": "total_input_tokens",
    "output_tokens": "total_output_tokens",
    "cache_read_tokens": "total_cache_read_tokens",
    "cache_creation_tokens": "total_cache_creation_tokens",
}


@dataclass
class Msg:
    chat: str  # key into the data set's chats
    model: str  # key into its model configs
    at: datetime
    cost: int | None
    tokens: tuple[int | None, int | None, int | None, int | None]  # as TOKENS
    runtime_ms: int | None = None
    role: str = "assistant"
    deleted: bool = False


def day(n: int, hour: int = 12) -> datetime:
    return START + timedelta(days=n, hours=hour)


# Chats: a1 and a2 are user a's roots, a1k a subagent of a1; b1 is user b's.
CHAT_OWNERS = {"a1": "a", "a1k": "a", "a2": "a", "b1": "b", "c1": "c"}
CHAT_PARENT = {"a1k": "a1"}
MESSAGES = [
    Msg("a1", "priced", day(0), 1500, (1000, 250, None, None), 1200),
    Msg("a1", "priced", day(3), 900, (600, 150, 300, 40), 800, deleted=True),
    Msg("a1k", "priced", day(4), 2100, (1500, 300, None, 100), 2000),
    Msg("a1k", "unpriced", day(4, 13), None, (700, 70, None, None), 500),
    Msg("a2", "unpriced", day(10), None, (50, 5, None, None), 100),
    Msg("a2", "priced", START, 10, (10, None, None, None), None),  # first instant: counted
    Msg("b1", "priced", day(20), 4000, (3000, 500, 1000, None), 3000),
    Msg("b1", "unpriced", day(21), None, (None, 12, None, None), 40),
    # Never counted: outside [START, END), not an assistant message, or no usage at all.
    Msg("a1", "priced", START - timedelta(seconds=1), 7777, (1, 1, None, None), 1),
    Msg("b1", "priced", END, 8888, (1, 1, None, None), 1),
    Msg("a1", "priced", day(5), 999, (999, None, None, None), 1, role="user"),
    Msg("a2", "priced", day(6), None, (None, None, None, None), 70),
    Msg("c1", "priced", END + timedelta(days=400), 5, (5, 5, None, None), 5),
]


@dataclass
class DataSet:
    users: dict[str, Caller]
    chats: dict[str, str]
    models: dict[str, dict[str, Any]]
    tag: str


def _caller(base_url: str, username: str, roles: list[str] | None = None) -> Caller:
    with db.session_scope() as session:
        user = create_user(session, username=username, name=f"Name {username}", roles=roles)
        token = create_token(session, user.id, name="test")
        user_id = user.id
    http = httpx.Client(base_url=base_url, headers={"Coder-Session-Token": token}, timeout=30)
    return Caller(user_id, username, token, http, base_url)


@pytest.fixture
def data(farm: Farm) -> Iterator[DataSet]:
    tag = uuid.uuid4().hex[:8]
    users = {k: _caller(farm.base_url, f"cost-{tag}-{k}") for k in "abc"}
    users["admin"] = _caller(farm.base_url, f"boss-{tag}", ["owner", "member", "agents-access"])
    models = {
        "priced": {"model": f"cost-priced-{tag}", "display_name": f"Priced {tag}"},
        "unpriced": {"model": f"cost-unpriced-{tag}", "display_name": ""},
    }
    chats: dict[str, str] = {}
    with db.session_scope() as session:
        org = default_organization(session).id
        for spec in models.values():
            spec["id"] = session.execute(
                sa.text(
                    "INSERT INTO chat_model_configs (provider, model, display_name, "
                    "context_limit, compression_threshold) "
                    "VALUES ('openai-compat', :m, :d, 1000, 70) RETURNING id"
                ),
                {"m": spec["model"], "d": spec["display_name"]},
            ).scalar_one()
        for key, owner in CHAT_OWNERS.items():
            parent = chats.get(CHAT_PARENT.get(key, ""))
            chats[key] = str(
                session.execute(
                    sa.text(
                        "INSERT INTO chats (organization_id, owner_id, last_model_config_id, "
                        "title, parent_chat_id, root_chat_id) "
                        "VALUES (:o, :u, :m, :t, :p, :p) RETURNING id"
                    ),
                    {"o": org, "u": users[owner].user_id, "m": models["priced"]["id"],
                     "t": f"Chat {key}", "p": parent},
                ).scalar_one()
            )  # fmt: skip
        for m in MESSAGES:
            session.execute(
                sa.text(
                    "INSERT INTO chat_messages (chat_id, model_config_id, role, content, "
                    "input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, "
                    "total_cost_micros, runtime_ms, deleted, created_at) VALUES (:c, :m, "
                    "CAST(:r AS chat_message_role), '[]', :i, :o, :cr, :cw, :cost, :rt, :d, :at)"
                ),
                {"c": chats[m.chat], "m": models[m.model]["id"], "r": m.role, "i": m.tokens[0],
                 "o": m.tokens[1], "cr": m.tokens[2], "cw": m.tokens[3], "cost": m.cost,
                 "rt": m.runtime_ms, "d": m.deleted, "at": m.at},
            )  # fmt: skip
    yield DataSet(users, chats, models, tag)
    for caller in users.values():
        caller.http.close()


def counted() -> list[Msg]:
    """The messages the reports count, by the rules of §1.10, computed independently."""
    return [
        m
        for m in MESSAGES
        if m.role == "assistant"
        and START <= m.at < END
        and (m.cost is not None or any(t is not None for t in m.tokens))
    ]


def figures(msgs: list[Msg]) -> dict[str, int]:
    out = {
        "total_cost_micros": sum(m.cost or 0 for m in msgs),
        "message_count": len(msgs),
        "total_runtime_ms": sum(m.runtime_ms or 0 for m in msgs),
    }
    for i, name in enumerate(TOKENS):
        out[WIRE[name]] = sum(m.tokens[i] or 0 for m in msgs)
    return out


def root_of(chat: str) -> str:
    return CHAT_PARENT.get(chat, chat)


def test_per_user_rollup_equals_a_direct_computation(data: DataSet) -> None:
    admin = data.users["admin"]
    by_user: dict[str, list[Msg]] = defaultdict(list)
    for m in counted():
        by_user[CHAT_OWNERS[m.chat]].append(m)
    expected = [
        {
            "user_id": str(data.users[k].user_id),
            "username": data.users[k].username,
            "name": f"Name {data.users[k].username}",
            "avatar_url": "",
            **figures(msgs),
            "chat_count": len({root_of(m.chat) for m in msgs}),
        }
        for k, msgs in by_user.items()
    ]
    expected.sort(key=lambda u: (-u["total_cost_micros"], u["username"]))
    assert [u["username"] for u in expected] == [data.users["a"].username, data.users["b"].username]

    query = {**WINDOW, "username": f"COST-{data.tag}"}  # case-insensitive substring
    resp = admin.http.get(f"{CHATS}/cost/users", params=query)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {**WINDOW, "count": 2, "users": expected}
    # Pages of one, and a page past the end still reports the total.
    for offset in (0, 1):
        page = admin.http.get(
            f"{CHATS}/cost/users", params={**query, "limit": 1, "offset": offset}
        ).json()
        assert (page["count"], page["users"]) == (2, [expected[offset]])
    past = admin.http.get(f"{CHATS}/cost/users", params={**query, "offset": 5}).json()
    assert (past["count"], past["users"]) == (2, [])
    # The window starts at start_date: one second later, a's message at START is left out.
    later = {**query, "start_date": "2001-01-01T00:00:01Z"}
    users = admin.http.get(f"{CHATS}/cost/users", params=later).json()["users"]
    assert users[0]["total_cost_micros"] == expected[0]["total_cost_micros"] - 10
    assert users[0]["message_count"] == expected[0]["message_count"] - 1


def test_summary_by_model_and_by_chat_equal_a_direct_computation(data: DataSet) -> None:
    a = data.users["a"]
    mine = [m for m in counted() if CHAT_OWNERS[m.chat] == "a"]
    resp = a.http.get(f"{CHATS}/cost/me/summary", params=WINDOW)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    totals = figures(mine)
    del totals["message_count"]
    assert {k: body[k] for k in totals} == totals
    assert body["priced_message_count"] == sum(m.cost is not None for m in mine)
    assert body["unpriced_message_count"] == sum(m.cost is None for m in mine)
    assert (body["start_date"], body["end_date"]) == (WINDOW["start_date"], WINDOW["end_date"])

    by_model = []
    for key in ("priced", "unpriced"):
        spec = data.models[key]
        by_model.append({
            "model_config_id": str(spec["id"]),
            "display_name": spec["display_name"] or spec["model"],  # falls back to the model
            "provider": "openai-compat",
            "model": spec["model"],
            **figures([m for m in mine if m.model == key]),
        })  # fmt: skip
    assert body["by_model"] == sorted(by_model, key=lambda r: -r["total_cost_micros"])

    by_chat = [
        {
            "root_chat_id": data.chats[root],
            "chat_title": f"Chat {root}",
            **figures([m for m in mine if root_of(m.chat) == root]),
        }
        for root in ("a1", "a2")  # a1's subagent a1k is counted under a1
    ]
    assert body["by_chat"] == sorted(by_chat, key=lambda r: -r["total_cost_micros"])
    assert "usage_limit" not in body  # limits are off


def test_default_window_is_the_last_30_days(data: DataSet) -> None:
    c = data.users["c"]
    now = datetime.now(UTC)
    with db.session_scope() as session:
        for at, cost in ((now - timedelta(days=29), 11), (now - timedelta(days=31), 22)):
            session.execute(
                sa.text(
                    "INSERT INTO chat_messages (chat_id, role, content, input_tokens, "
                    "total_cost_micros, created_at) VALUES (:c, 'assistant', '[]', 1, :cost, :at)"
                ),
                {"c": data.chats["c1"], "cost": cost, "at": at},
            )
    body = c.http.get(f"{CHATS}/cost/me/summary").json()
    assert (body["total_cost_micros"], body["priced_message_count"]) == (11, 1)
    end = datetime.fromisoformat(body["end_date"])
    assert datetime.fromisoformat(body["start_date"]) == end - timedelta(days=30)


def test_permissions_and_parameters(data: DataSet, caller: Caller) -> None:
    a, b, admin = data.users["a"], data.users["b"], data.users["admin"]
    # The rollup is for admins only.
    assert a.http.get(f"{CHATS}/cost/users").status_code == 403
    # Users see their own summary (by me, username or id); another user's is hidden (404),
    # with the same answer for a user that does not exist.
    for ref in ("me", a.username, str(a.user_id)):
        assert a.http.get(f"{CHATS}/cost/{ref}/summary", params=WINDOW).status_code == 200
    hidden = a.http.get(f"{CHATS}/cost/{b.username}/summary")
    missing = a.http.get(f"{CHATS}/cost/nobody-{data.tag}/summary")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    # Admins read anybody's.
    theirs = admin.http.get(f"{CHATS}/cost/{b.user_id}/summary", params=WINDOW)
    assert theirs.status_code == 200
    assert theirs.json()["total_cost_micros"] == 4000
    unknown = admin.http.get(f"{CHATS}/cost/{uuid.uuid4()}/summary")
    assert (unknown.status_code, unknown.json()["message"]) == (404, "User not found.")
    # Query parameters: unknown ones, bad dates, reversed windows and bad pages are 400s.
    for path, params, field in (
        (f"{CHATS}/cost/me/summary", {"limit": "1"}, "limit"),
        (f"{CHATS}/cost/users", {"nope": "1"}, "nope"),
        (f"{CHATS}/cost/users", {"start_date": "yesterday"}, "start_date"),
        (f"{CHATS}/cost/users", {"end_date": "2001-01-01T00:00:00"}, "end_date"),  # no offset
        (f"{CHATS}/cost/users", {**WINDOW, "start_date": "2001-03-01T00:00:00Z"}, "start_date"),
        (f"{CHATS}/cost/users", {"limit": "0"}, "limit"),
        (f"{CHATS}/cost/users", {"offset": "-1"}, "offset"),
    ):
        resp = admin.http.get(path, params=params)
        assert resp.status_code == 400, (path, params, resp.text)
        assert resp.json()["message"] == "Query parameters have invalid values."
        assert [v["field"] for v in resp.json()["validations"]] == [field]
