"""Title regenerate and propose run the model in the title actor and hand the result back."""

from __future__ import annotations

import json

from tests.fixtures.farm import Caller, Farm

CHATS = "/api/experimental/chats"


def test_regenerate_and_propose(farm: Farm, caller: Caller, other_caller: Caller) -> None:
    chat = caller.create_chat("[[reply: first]] set up the billing service")
    caller.wait_status(chat["id"], "waiting")
    caller.send(chat["id"], "[[reply: done]] [[title: Billing service rollout]] now deploy it")
    caller.wait_status(chat["id"], "waiting")

    proposed = caller.http.post(f"{CHATS}/{chat['id']}/title/propose")
    assert proposed.status_code == 200, proposed.text
    assert proposed.json() == {"title": "Billing service rollout"}
    assert caller.chat(chat["id"])["title"] != "Billing service rollout"  # not persisted

    regenerated = caller.http.post(f"{CHATS}/{chat['id']}/title/regenerate")
    assert regenerated.status_code == 200, regenerated.text
    assert regenerated.json()["title"] == "Billing service rollout"
    assert caller.chat(chat["id"])["title"] == "Billing service rollout"
    # The model saw the first turn and the latest turns.
    request = next(
        r for r in reversed(farm.llm.requests) if "Billing service" in json.dumps(r["messages"])
    )
    prompt = request["messages"][-1]["content"]
    assert "set up the billing service" in prompt and "now deploy it" in prompt

    assert other_caller.http.post(f"{CHATS}/{chat['id']}/title/regenerate").status_code == 404


def test_concurrent_regeneration_is_409(farm: Farm, caller: Caller) -> None:
    from agentfarm.tasks.title_jobs import title_lock_key

    chat = caller.create_chat("[[reply: ok]]")
    farm.redis.set(title_lock_key(chat["id"]), "1", ex=30)
    try:
        resp = caller.http.post(f"{CHATS}/{chat['id']}/title/regenerate")
        assert resp.status_code == 409
        assert resp.json()["message"] == "Title regeneration already in progress for this chat."
    finally:
        farm.redis.delete(title_lock_key(chat["id"]))
