"""Usage limits enforced on the farm: §1.9's 409 on every guarded action, a refused subagent
spawn, a turn stopped at the step boundary where its owner reached the cap, and concurrent
turns of one user held to one step each past it.

Spend comes from real turns on a priced model config (1 USD per 1M input tokens, 2 per 1M
output) whose scripted answers report ``[[usage: prompt=1000 completion=500]]``: every step
costs exactly 2,000 micro-dollars.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from models import db
from tests.fixtures.farm import Caller
from tests.fixtures.providers import CHATS
from tests.fixtures.usage import enable, override, status

USAGE = "[[usage: prompt=1000 completion=500]]"
STEP_COST = 1000 * 1 + 500 * 2


def next_month_start(now: datetime) -> str:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return f"{year:04d}-{month:02d}-01T00:00:00Z"


def rounds(n: int) -> str:
    """A turn of n tool rounds (one list_templates call each: a platform tool that needs no
    workspace), then a reply; every model call reports the same usage."""
    tags = ["tool"] + [f"tool{k}" for k in range(2, n + 1)]
    calls = " ".join(f"[[{t}: list_templates {{}}]]" for t in tags)
    return f"{calls} [[after_tools: done]] {USAGE}"


def assistant_costs(chat_id: str) -> list[int | None]:
    with db.session_scope() as session:
        rows = session.execute(
            sa.text(
                "SELECT total_cost_micros FROM chat_messages WHERE chat_id = :c "
                "AND role = 'assistant' ORDER BY id"
            ),
            {"c": chat_id},
        ).all()
    return [r[0] for r in rows]


def user_spend(user_id: uuid.UUID) -> int:
    with db.session_scope() as session:
        return int(
            session.execute(
                sa.text(
                    "SELECT coalesce(sum(m.total_cost_micros), 0) FROM chat_messages m "
                    "JOIN chats c ON c.id = m.chat_id WHERE c.owner_id = :u"
                ),
                {"u": user_id},
            ).scalar_one()
        )


def limit_message(spent: int, limit: int) -> str:
    resets = next_month_start(datetime.now(UTC))
    return (
        f"Chat usage limit exceeded. Spent {spent} of your personal {limit} micro-dollar "
        f"limit per month; it resets at {resets}."
    )


def test_the_409_body_on_create_send_edit_promote_and_regenerate(
    limits: Caller, caller: Caller, other_caller: Caller, priced_model: str
) -> None:
    enable(limits)
    spent_chat = caller.create_chat(f"[[reply: hi]] {USAGE}", model_config_id=priced_model)
    caller.wait_status(spent_chat["id"], "waiting")
    busy = caller.create_chat("[[stall_ms: 30000]] [[reply: slow]]")
    caller.wait_status(busy["id"], "running")
    queued = caller.send(busy["id"], "a follow-up")["queued_message"]
    first_user_message = next(
        m for m in caller.messages(spent_chat["id"])["messages"] if m["role"] == "user"
    )
    messages_before = len(caller.messages(spent_chat["id"])["messages"])
    override(limits, caller.username, STEP_COST - 500)
    expected = {
        "message": "Chat usage limit exceeded.",
        "spent_micros": STEP_COST,
        "limit_micros": STEP_COST - 500,
        "resets_at": next_month_start(datetime.now(UTC)),
    }
    text = {"content": [{"type": "text", "text": "more"}]}
    chat, busy_id = spent_chat["id"], busy["id"]
    attempts = {
        "create": caller.http.post(CHATS, json=text),
        "send": caller.http.post(f"{CHATS}/{chat}/messages", json=text),
        "edit": caller.http.patch(f"{CHATS}/{chat}/messages/{first_user_message['id']}", json=text),
        "promote": caller.http.post(f"{CHATS}/{busy_id}/queue/{queued['id']}/promote"),
        "regenerate": caller.http.post(f"{CHATS}/{chat}/title/regenerate"),
    }
    for action, resp in attempts.items():
        assert (resp.status_code, resp.json()) == (409, expected), action
    # Nothing happened: no new chat, no new message, the follow-up is still queued.
    assert len(caller.http.get(CHATS).json()) == 2
    assert len(caller.messages(chat)["messages"]) == messages_before
    assert [q["id"] for q in caller.messages(busy_id)["queued_messages"]] == [queued["id"]]
    assert status(caller) == {
        "is_limited": True,
        "period": "month",
        "spend_limit_micros": STEP_COST - 500,
        "current_spend": STEP_COST,
        "period_start": datetime.now(UTC).strftime("%Y-%m-01T00:00:00Z"),
        "period_end": expected["resets_at"],
        "limit_source": "user",
    }
    # The cap is this user's: another user (under the default) still gets on.
    other = other_caller.create_chat("[[reply: fine]]")
    other_caller.wait_status(other["id"], "waiting")
    assert caller.http.post(f"{CHATS}/{busy_id}/interrupt").status_code == 200


def test_a_spawn_over_the_limit_fails_as_a_tool_result(
    limits: Caller, caller: Caller, priced_model: str
) -> None:
    enable(limits)
    override(limits, caller.username, STEP_COST)  # the first step reaches the cap
    # Brackets escaped, so the root's directive parser leaves the child's own alone.
    prompt = json.dumps({"prompt": "[[reply: child]]"}).replace("[", "\\[").replace("]", "\\]")
    chat = caller.create_chat(
        f"[[tool: spawn_agent {prompt}]] [[after_tools: spawned]] {USAGE}",
        model_config_id=priced_model,
    )
    final = caller.wait_status(chat["id"], "error", "waiting", timeout=60)
    (tool_message,) = [m for m in caller.messages(chat["id"])["messages"] if m["role"] == "tool"]
    (result,) = tool_message["content"]
    assert result["is_error"] is True
    assert result["result"] == {"error": limit_message(STEP_COST, STEP_COST)}
    assert final["children"] == []
    # The next step was refused too: the turn ended at that boundary.
    assert final["status"] == "error"
    assert final["last_error"] == (
        limit_message(STEP_COST, STEP_COST) + " The turn was stopped before step 2."
    )


def test_a_turn_that_reaches_the_cap_stops_at_the_next_step(
    limits: Caller, caller: Caller, priced_model: str
) -> None:
    enable(limits)
    limit = 2 * STEP_COST + 1000  # reached during step 3
    override(limits, caller.username, limit)
    chat = caller.create_chat(rounds(5), model_config_id=priced_model)
    final = caller.wait_status(chat["id"], "error", "waiting", timeout=60)
    assert final["status"] == "error"
    assert final["last_error"] == (
        limit_message(3 * STEP_COST, limit) + " The turn was stopped before step 4."
    )
    # Three steps ran (and their three tool rounds); without the check it would be six.
    assert assistant_costs(chat["id"]) == [STEP_COST] * 3
    roles = [m["role"] for m in reversed(caller.messages(chat["id"])["messages"])]
    assert roles == ["user"] + ["assistant", "tool"] * 3
    got = status(caller)
    assert (got["current_spend"], got["spend_limit_micros"]) == (3 * STEP_COST, limit)


def test_concurrent_turns_overshoot_by_at_most_one_step_each(
    limits: Caller, caller: Caller, priced_model: str
) -> None:
    enable(limits)
    limit = 5 * STEP_COST
    override(limits, caller.username, limit)
    # Two chats of six tool rounds each (seven steps, 14 in all), streaming slowly enough that
    # their steps overlap on the worker's threads.
    text = "[[delay_ms: 15]] [[reply: a slow few words to stream]] " + rounds(6)
    chats = [caller.create_chat(text, model_config_id=priced_model)["id"] for _ in range(2)]
    finals = [caller.wait_status(c, "error", "waiting", timeout=90) for c in chats]
    spent = user_spend(caller.user_id)
    assert limit <= spent < limit + 2 * STEP_COST, spent
    for final in finals:
        assert final["status"] == "error"
        assert final["last_error"].startswith("Chat usage limit exceeded. Spent ")
        assert f"of your personal {limit} micro-dollar limit per month" in final["last_error"]
    steps = [len(assistant_costs(c)) for c in chats]
    # Both ran (their steps interleaved) and neither finished its seven steps.
    assert sum(steps) * STEP_COST == spent and min(steps) >= 1 and max(steps) < 7, steps
