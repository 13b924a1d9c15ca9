"""Usage limits: UTC period boundaries on the database, user/group/default precedence, the
configuration API's errors and permissions. Enforcement on turns is in
test_usage_limit_enforcement.py."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa

from models import db
from models.identity.bootstrap import default_organization
from models.identity.tables import Group, GroupMember
from models.usage import limits as usage_limits
from models.usage.limit_config import set_config
from tests.fixtures.farm import Caller
from tests.fixtures.providers import CHATS
from tests.fixtures.usage import HUGE, LIMITS, enable, override, status

# ---------------------------------------------------------------- periods


def test_utc_period_boundaries_on_the_database(caller: Caller) -> None:
    """Last instant of a day/week/month against the first of the next, with messages at
    explicit timestamps; everything runs in one transaction that is rolled back."""
    t = datetime.fromisoformat
    spends = {
        "2026-11-22T23:59:59+00:00": 1,  # Sunday: last second of the previous ISO week
        "2026-11-23T00:00:00+00:00": 10,  # Monday 00:00: first instant of the week
        "2026-11-29T23:59:59.999999+00:00": 100,  # Sunday: last instant of the week
        "2026-11-30T00:00:00+00:00": 1_000,  # Monday: the next week (and still November)
        "2026-12-01T00:00:00+00:00": 10_000,  # first instant of December
        "2026-12-31T23:59:59+00:00": 100_000,  # last second of the year
        "2027-01-01T00:00:00+00:00": 1_000_000,  # first of the next year
    }
    cases = [
        # (period, now, spent, period start, period end)
        ("week", "2026-11-29T23:59:59+00:00", 110, "2026-11-23", "2026-11-30"),
        ("week", "2026-11-30T00:00:00+00:00", 11_000, "2026-11-30", "2026-12-07"),
        ("week", "2026-11-23T00:00:00+00:00", 110, "2026-11-23", "2026-11-30"),
        # 01:00 in UTC+2 is still Sunday 23:00 UTC: periods are UTC.
        ("week", "2026-11-30T01:00:00+02:00", 110, "2026-11-23", "2026-11-30"),
        ("day", "2026-11-29T23:59:59+00:00", 100, "2026-11-29", "2026-11-30"),
        ("day", "2026-11-30T00:00:00+00:00", 1_000, "2026-11-30", "2026-12-01"),
        ("month", "2026-11-30T23:59:59+00:00", 1_111, "2026-11-01", "2026-12-01"),
        ("month", "2026-12-01T00:00:00+00:00", 110_000, "2026-12-01", "2027-01-01"),
        ("month", "2027-01-01T00:00:00+00:00", 1_000_000, "2027-01-01", "2027-02-01"),
    ]
    session = db.new_session()
    try:
        chat_id = session.execute(
            sa.text(
                "INSERT INTO chats (organization_id, owner_id, last_model_config_id) "
                "SELECT :o, :u, id FROM chat_model_configs LIMIT 1 RETURNING id"
            ),
            {"o": default_organization(session).id, "u": caller.user_id},
        ).scalar_one()
        for at, cost in spends.items():
            session.execute(
                sa.text(
                    "INSERT INTO chat_messages (chat_id, role, content, total_cost_micros, "
                    "created_at) VALUES (:c, 'assistant', '[]', :cost, :at)"
                ),
                {"c": chat_id, "cost": cost, "at": t(at)},
            )
        for period, now, spent, start, end in cases:
            set_config(session, HUGE, period)
            got = usage_limits.limit_status(session, caller.user_id, now=t(now))
            assert got is not None
            assert (got.spent_micros, got.period_start, got.period_end) == (
                spent,
                t(f"{start}T00:00:00+00:00"),
                t(f"{end}T00:00:00+00:00"),
            ), (period, now)
    finally:
        session.rollback()
        session.close()


# ---------------------------------------------------------------- configuration


def make_group(org: uuid.UUID, members: list[uuid.UUID]) -> str:
    with db.session_scope() as session:
        group = Group(organization_id=org, name=f"g-{uuid.uuid4().hex[:8]}")
        session.add(group)
        session.flush()
        session.add_all(GroupMember(group_id=group.id, user_id=m) for m in members)
        return str(group.id)


def test_user_override_beats_the_strictest_group_which_beats_the_default(
    limits: Caller, caller: Caller, other_caller: Caller
) -> None:
    admin = limits
    body = enable(admin, 50_000, "week")
    assert body["spend_limit_micros"] == 50_000 and body["period"] == "week"
    assert {"unpriced_model_count", "overrides", "group_overrides", "updated_at"} <= set(body)
    mine = status(caller)
    assert (mine["spend_limit_micros"], mine["limit_source"], mine["period"]) == (
        50_000,
        "default",
        "week",
    )
    assert mine["is_limited"] is True and mine["current_spend"] == 0
    with db.session_scope() as session:
        org = default_organization(session).id
    loose = make_group(org, [caller.user_id])
    strict = make_group(org, [caller.user_id])
    elsewhere = make_group(org, [other_caller.user_id])
    for group, limit in ((loose, 5_000), (strict, 3_000), (elsewhere, 1_000)):
        resp = admin.http.put(
            f"{LIMITS}/group-overrides/{group}", json={"spend_limit_micros": limit}
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["member_count"] == 1 and resp.json()["spend_limit_micros"] == limit
    assert status(caller)["spend_limit_micros"] == 3_000  # the strictest of their groups
    assert status(caller)["limit_source"] == "group"
    try:
        # The Everyone group (id = the organization's id) counts as one of their groups.
        everyone = admin.http.put(
            f"{LIMITS}/group-overrides/{org}", json={"spend_limit_micros": 2_000}
        )
        assert everyone.status_code == 200, everyone.text
        assert everyone.json()["group_name"] == "Everyone"
        assert status(caller)["spend_limit_micros"] == 2_000
    finally:
        assert admin.http.delete(f"{LIMITS}/group-overrides/{org}").status_code == 204
    # A user override wins even when it is looser than the groups.
    override(admin, caller.username, 8_000)
    assert (status(caller)["spend_limit_micros"], status(caller)["limit_source"]) == (8_000, "user")
    listing = admin.http.get(LIMITS).json()
    assert {
        "user_id": str(caller.user_id),
        "username": caller.username,
        "name": "",
        "avatar_url": "",
        "spend_limit_micros": 8_000,
    } in listing["overrides"]
    listed = {g["group_id"]: g["spend_limit_micros"] for g in listing["group_overrides"]}
    assert {loose: 5_000, strict: 3_000, elsewhere: 1_000}.items() <= listed.items()
    assert str(org) not in listed
    assert admin.http.delete(f"{LIMITS}/overrides/{caller.user_id}").status_code == 204
    assert status(caller)["spend_limit_micros"] == 3_000
    # Turned off, nobody is limited, whatever the overrides say.
    assert admin.http.put(LIMITS, json={"spend_limit_micros": None}).status_code == 200
    assert status(caller) == {"is_limited": False, "current_spend": 0}
    assert "spend_limit_micros" not in admin.http.get(LIMITS).json()


def test_configuration_errors_and_permissions(limits: Caller, caller: Caller) -> None:
    admin = limits
    group = make_group(default_org_id(), [])
    cases = [
        ("put", LIMITS, {"spend_limit_micros": 0}, 400, "Spend limit must be greater than 0."),
        ("put", LIMITS, {"spend_limit_micros": 5, "period": "year"}, 400,
         "Invalid chat usage limit period."),
        ("put", f"{LIMITS}/overrides/not%20a%20user", {"spend_limit_micros": 5}, 400,
         "Invalid chat usage limit user ID."),
        ("put", f"{LIMITS}/overrides/nobody-{uuid.uuid4().hex[:6]}", {"spend_limit_micros": 5},
         404, "User not found."),
        ("delete", f"{LIMITS}/overrides/{uuid.uuid4()}", None, 400, "User not found."),
        ("delete", f"{LIMITS}/overrides/{caller.username}", None, 400,
         "Chat usage limit override not found."),
        ("put", f"{LIMITS}/group-overrides/nope", {"spend_limit_micros": 5}, 400,
         "Invalid group ID."),
        ("put", f"{LIMITS}/group-overrides/{group}", {"spend_limit_micros": 0}, 400,
         "Spend limit (in microdollars) must be greater than 0."),
        ("put", f"{LIMITS}/group-overrides/{uuid.uuid4()}", {"spend_limit_micros": 5}, 404,
         "Group not found."),
        ("delete", f"{LIMITS}/group-overrides/{uuid.uuid4()}", None, 400, "Group not found."),
        ("delete", f"{LIMITS}/group-overrides/{group}", None, 400,
         "Chat usage limit group override not found."),
    ]  # fmt: skip
    for method, path, body, code, message in cases:
        kwargs = {"json": body} if body is not None else {}
        resp = admin.http.request(method.upper(), path, **kwargs)
        assert (resp.status_code, resp.json()["message"]) == (code, message), (path, body)
    period = admin.http.put(LIMITS, json={"spend_limit_micros": 5, "period": "year"}).json()
    assert period["detail"] == "Period must be one of: day, week, month."
    # The period defaults to month; "me" names the caller.
    assert enable(admin, 7, "week")["period"] == "week"
    assert admin.http.put(LIMITS, json={"spend_limit_micros": 7}).json()["period"] == "month"
    override(admin, "me", 9)
    assert status(admin)["spend_limit_micros"] == 9
    assert admin.http.delete(f"{LIMITS}/overrides/me").status_code == 204
    # Members may read their own status, nothing else.
    for method, path in (("get", LIMITS), ("put", LIMITS), ("put", f"{LIMITS}/overrides/me"),
                         ("delete", f"{LIMITS}/group-overrides/{group}")):  # fmt: skip
        resp = caller.http.request(method.upper(), path, json={"spend_limit_micros": 1})
        assert resp.status_code == 403, (method, path)
    assert status(caller)["is_limited"] is True


def default_org_id() -> uuid.UUID:
    with db.session_scope() as session:
        return default_organization(session).id


def test_unpriced_model_count(limits: Caller) -> None:
    admin = limits
    before = admin.http.get(LIMITS).json()["unpriced_model_count"]
    resp = admin.http.post(
        f"{CHATS}/model-configs",
        json={"provider": "openai-compat", "model": f"free-{uuid.uuid4().hex[:8]}",
              "context_limit": 1000},
    )  # fmt: skip
    assert resp.status_code == 201 and resp.json()["pricing_source"] == "unpriced"
    assert admin.http.get(LIMITS).json()["unpriced_model_count"] == before + 1
    assert admin.http.delete(f"{CHATS}/model-configs/{resp.json()['id']}").status_code == 204
    assert admin.http.get(LIMITS).json()["unpriced_model_count"] == before
