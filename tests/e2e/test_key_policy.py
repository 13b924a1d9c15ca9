"""The key policy (§5.2) end to end: each row of the truth table drives a real turn.

The scripted model server refuses the API key ``reject-me`` (401) and accepts any other, so
in each row the key that must NOT be used is ``reject-me``: a turn that succeeds used the key
the policy names. When the provider must be unavailable, every stored key is a good one, so a
turn that wrongly ran anyway would succeed instead of failing with §5.2's reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from agentfarm.scripted_llm import REJECTED_API_KEY
from models import db
from tests.fixtures.farm import OWNER_ROLES, Caller, Farm, open_caller
from tests.fixtures.providers import (
    CHATS,
    configure_provider,
    model_config,
    provider_entry,
    record_bodies,
    requests_mentioning,
)

# A provider type litellm routes to an OpenAI-style endpoint, so it can point at the scripted
# server; the farm's own openai-compat provider is left alone.
PROVIDER = "vercel"
GOOD_KEYS: list[str] = []  # every good key used here, to search logs and bodies for


def good_key(tag: str) -> str:
    key = f"sk-{tag}-{uuid.uuid4().hex}"
    GOOD_KEYS.append(key)
    return key


@pytest.fixture(scope="module")
def admin_caller(farm: Farm) -> Iterator[Caller]:
    with open_caller(farm.base_url, roles=OWNER_ROLES) as c:
        yield c


@pytest.fixture(scope="module")
def policy_model(farm: Farm, admin_caller: Caller) -> dict[str, Any]:
    configure_provider(
        admin_caller, PROVIDER, base_url=farm.llm.base_url, api_key=good_key("setup"),
        central_api_key_enabled=True, allow_user_api_key=False,
        allow_central_api_key_fallback=False, enabled=True,
    )  # fmt: skip
    return model_config(admin_caller, PROVIDER, "key-policy-model")


def clear_central_key_in_db() -> None:
    """The API refuses a central-enabled provider without a key (except Bedrock), but such
    rows exist (e.g. from before the rule); §5.2 still defines their outcome."""
    with db.session_scope() as session:
        session.execute(
            sa.text(
                "UPDATE chat_providers SET api_key = '', api_key_key_id = NULL WHERE provider = :p"
            ),
            {"p": PROVIDER},
        )


def set_row(
    admin: Caller,
    user: Caller,
    provider_id: str,
    *,
    central: bool,
    allow_user: bool,
    fallback: bool,
    user_key: str | None,
    central_key: str | None,
) -> None:
    """Put the provider and the user's key in one row of the table."""
    base = f"{CHATS}/providers/{provider_id}"
    # Let users bring keys while the user stores one (a stored key must be ignored when the
    # final policy does not allow user keys).
    resp = admin.http.patch(
        base,
        json={"central_api_key_enabled": True, "allow_user_api_key": True,
              "allow_central_api_key_fallback": False, "enabled": True,
              "api_key": central_key or good_key("placeholder")},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    if user_key is not None:
        put = user.http.put(
            f"{CHATS}/user-provider-configs/{provider_id}", json={"api_key": user_key}
        )
        assert put.status_code == 200, put.text
    resp = admin.http.patch(
        base,
        json={"central_api_key_enabled": central, "allow_user_api_key": allow_user,
              "allow_central_api_key_fallback": fallback},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    if central_key is None:
        if central:
            clear_central_key_in_db()
        else:
            resp = admin.http.patch(base, json={"api_key": ""})
            assert resp.status_code == 200 and resp.json()["has_api_key"] is False, resp.text


# (central enabled, allow user, fallback, user key?, central key?) → outcome; every row of
# §5.2's table for a provider other than Bedrock ("any" expanded).
ROWS = [
    ((True, False, False, True, True), "central"),
    ((True, False, False, False, True), "central"),
    ((True, False, False, True, False), "missing_api_key"),
    ((True, False, False, False, False), "missing_api_key"),
    ((False, True, False, True, True), "user"),
    ((False, True, False, True, False), "user"),
    ((False, True, False, False, True), "user_api_key_required"),
    ((False, True, False, False, False), "user_api_key_required"),
    ((True, True, False, True, True), "user"),
    ((True, True, False, True, False), "user"),
    ((True, True, False, False, True), "user_api_key_required"),
    ((True, True, False, False, False), "user_api_key_required"),
    ((True, True, True, True, True), "user"),
    ((True, True, True, True, False), "user"),
    ((True, True, True, False, True), "central"),
    ((True, True, True, False, False), "user_api_key_required"),
]


@pytest.mark.parametrize(
    ("row", "expected"), ROWS, ids=["-".join("TF"[not v] for v in row) for row, _ in ROWS]
)
def test_truth_table_row_through_a_turn(
    farm: Farm,
    admin_caller: Caller,
    policy_model: dict[str, Any],
    caller: Caller,
    row: tuple[bool, bool, bool, bool, bool],
    expected: str,
) -> None:
    central, allow_user, fallback, has_user_key, has_central_key = row
    bodies = record_bodies(admin_caller, caller)
    unavailable = expected not in ("user", "central")

    def key_for(source: str) -> str:
        return good_key(source) if unavailable or expected == source else REJECTED_API_KEY

    user_key = key_for("user") if has_user_key else None
    central_key = key_for("central") if has_central_key else None
    provider_id = provider_entry(admin_caller, PROVIDER)["id"]
    set_row(
        admin_caller, caller, provider_id, central=central, allow_user=allow_user,
        fallback=fallback, user_key=user_key, central_key=central_key,
    )  # fmt: skip

    catalog = caller.http.get(f"{CHATS}/models").json()["providers"]
    entry = next(p for p in catalog if p["provider"] == PROVIDER)
    assert entry["available"] is not unavailable
    assert entry.get("unavailable_reason") == (expected if unavailable else None)

    tag = f"kp-{uuid.uuid4().hex[:10]}"
    chat = caller.create_chat(f"[[reply: served {tag}]]", model_config_id=policy_model["id"])
    done = caller.wait_status(chat["id"], "waiting", "error")
    if unavailable:
        assert done["status"] == "error"
        assert f"({expected})" in done["last_error"], done["last_error"]
        assert requests_mentioning(farm, tag) == []  # no key was tried
    else:
        # The other key, if present, is reject-me: success means the expected key was used.
        assert done["status"] == "waiting", done["last_error"]
        assert done["last_error"] is None
        texts = [
            p.get("text")
            for m in caller.messages(chat["id"])["messages"]
            if m["role"] == "assistant"
            for p in m["content"]
        ]
        assert f"served {tag}" in texts
    assert not [b for b in bodies if any(k in b for k in GOOD_KEYS)]


BEDROCK_ROWS = [
    ((True, False, False), "ambient"),
    ((True, True, False), "user_api_key_required"),
    ((True, True, True), "ambient"),
    ((False, True, False), "user_api_key_required"),
]


@pytest.mark.parametrize(("policy", "expected"), BEDROCK_ROWS)
def test_bedrock_without_keys_uses_ambient_credentials(
    admin_caller: Caller, caller: Caller, policy: tuple[bool, bool, bool], expected: str
) -> None:
    """Bedrock's rows differ only without any key; a turn would need AWS, so the catalog (the
    same resolution the step uses) is what is checked."""
    central, allow_user, fallback = policy
    configure_provider(
        admin_caller, "bedrock", api_key="", enabled=True, central_api_key_enabled=central,
        allow_user_api_key=allow_user, allow_central_api_key_fallback=fallback,
    )  # fmt: skip
    catalog = caller.http.get(f"{CHATS}/models").json()["providers"]
    entry = next(p for p in catalog if p["provider"] == "bedrock")
    if expected == "ambient":
        assert entry["available"] is True and "unavailable_reason" not in entry
    else:
        assert (entry["available"], entry["unavailable_reason"]) == (False, expected)


def test_user_key_set_status_delete(
    farm: Farm,
    admin_caller: Caller,
    policy_model: dict[str, Any],
    caller: Caller,
    other_caller: Caller,
) -> None:
    bodies = record_bodies(caller, other_caller, admin_caller)
    provider = configure_provider(
        admin_caller, PROVIDER, enabled=True, api_key=good_key("central"),
        central_api_key_enabled=True, allow_user_api_key=True,
        allow_central_api_key_fallback=True,
    )  # fmt: skip
    path = f"{CHATS}/user-provider-configs/{provider['id']}"

    def status(who: Caller) -> dict[str, Any]:
        listed = who.http.get(f"{CHATS}/user-provider-configs")
        assert listed.status_code == 200, listed.text
        return next(e for e in listed.json() if e["provider"] == PROVIDER)

    assert status(caller) == {
        "provider_id": provider["id"],
        "provider": PROVIDER,
        "display_name": provider["display_name"],
        "has_user_api_key": False,
        "has_central_api_key_fallback": True,
    }
    mine = good_key("mine")
    resp = caller.http.put(path, json={"api_key": f" {mine} "})
    assert resp.status_code == 200, resp.text
    assert resp.json()["has_user_api_key"] is True and set(resp.json()) == set(status(caller))
    assert status(caller)["has_user_api_key"] is True
    assert status(other_caller)["has_user_api_key"] is False  # keys are per user
    with db.session_scope() as session:
        stored = session.execute(
            sa.text("SELECT api_key FROM user_chat_provider_keys WHERE user_id = :u"),
            {"u": caller.user_id},
        ).scalar_one()
    assert stored and mine not in stored

    # The stored key is the one the user's turns use: make it the only one that works.
    admin_caller.http.patch(
        f"{CHATS}/providers/{provider['id']}", json={"api_key": REJECTED_API_KEY}
    )
    chat = caller.create_chat("[[reply: with my key]]", model_config_id=policy_model["id"])
    assert caller.wait_status(chat["id"], "waiting", "error")["status"] == "waiting"
    theirs = other_caller.create_chat("[[reply: no key]]", model_config_id=policy_model["id"])
    failed = other_caller.wait_status(theirs["id"], "waiting", "error")
    assert failed["status"] == "error"  # the central fallback is reject-me

    for body, message in [
        ({"api_key": "  "}, "API key is required."),
        ({}, "API key is required."),
    ]:
        resp = caller.http.put(path, json=body)
        assert (resp.status_code, resp.json()["message"]) == (400, message)
    resp = caller.http.put(f"{CHATS}/user-provider-configs/{uuid.uuid4()}", json={"api_key": "k"})
    assert resp.status_code == 404
    resp = caller.http.put(f"{CHATS}/user-provider-configs/nope", json={"api_key": "k"})
    assert (resp.status_code, resp.json()["message"]) == (400, "Invalid chat provider ID.")

    assert caller.http.delete(path).status_code == 204
    assert status(caller)["has_user_api_key"] is False
    assert caller.http.delete(path).status_code == 204  # deleting nothing is fine

    admin_caller.http.patch(
        f"{CHATS}/providers/{provider['id']}",
        json={"allow_user_api_key": False, "allow_central_api_key_fallback": False},
    )
    assert PROVIDER not in {
        e["provider"] for e in caller.http.get(f"{CHATS}/user-provider-configs").json()
    }
    resp = caller.http.put(path, json={"api_key": "k"})
    assert resp.json()["message"] == "Provider does not allow user API keys."
    admin_caller.http.patch(
        f"{CHATS}/providers/{provider['id']}", json={"allow_user_api_key": True, "enabled": False}
    )
    resp = caller.http.put(path, json={"api_key": "k"})
    assert resp.json()["message"] == "Provider is disabled."
    assert not [b for b in bodies if any(k in b for k in GOOD_KEYS)]


def test_keys_never_reach_the_logs(farm: Farm) -> None:
    """Runs after the rows above: no key they stored appears in the worker's or API's log."""
    assert GOOD_KEYS, "run with the tests above"
    log = farm.worker.log_path.read_text(errors="replace")
    assert not [k for k in GOOD_KEYS if k in log]
    # …nor in the API's (this process's) log records.
    assert farm.api_log is not None and farm.api_log.exists()
    api_log = farm.api_log.read_text(errors="replace")
    assert not [k for k in GOOD_KEYS if k in api_log]
