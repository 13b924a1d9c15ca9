"""Providers and model configs through the API: CRUD, Coder's 400s, admin-only writes,
write-only keys, default prices from litellm, exactly one default model."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from models import db
from tests.fixtures.farm import Caller, Farm
from tests.fixtures.providers import (
    CHATS,
    configure_provider,
    default_model_id,
    model_config,
    provider_entry,
    record_bodies,
    requests_mentioning,
)

PROVIDERS = [
    "anthropic",
    "azure",
    "bedrock",
    "google",
    "openai",
    "openai-compat",
    "openrouter",
    "vercel",
]
NIL = str(uuid.UUID(int=0))
KEY_REQUIRED = "API key is required when central API key is enabled."
# A model config on the openai provider, for validation cases.
M = {"provider": "openai", "model": "m", "context_limit": 1}
GPT4O_DEFAULT_COST = {
    "input_price_per_million_tokens": 2.5,
    "output_price_per_million_tokens": 10.0,
    "cache_read_price_per_million_tokens": 1.25,
}


def secret(tag: str) -> str:
    return f"sk-{tag}-{uuid.uuid4().hex}"


def stored_provider_row(name: str) -> dict[str, Any] | None:
    with db.session_scope() as session:
        row = session.execute(
            sa.text(
                "SELECT row_to_json(p)::text AS j, api_key FROM chat_providers p "
                "WHERE provider = :p"
            ),
            {"p": name},
        ).first()
    return {"json": row.j, "api_key": row.api_key} if row else None


def openai_at_scripted_server(farm: Farm, admin: Caller) -> dict[str, Any]:
    """The openai provider, pointed at the scripted model server (it speaks OpenAI's API)."""
    return configure_provider(
        admin,
        "openai",
        api_key=secret("openai"),
        base_url=farm.llm.base_url,
        enabled=True,
        central_api_key_enabled=True,
        allow_user_api_key=False,
        allow_central_api_key_fallback=False,
    )


# ---------------------------------------------------------------- providers


def test_provider_crud_never_returns_the_key(farm: Farm, admin: Caller) -> None:
    bodies = record_bodies(admin)
    key, new_key = secret("anthropic"), secret("anthropic-2")
    listed = admin.http.get(f"{CHATS}/providers").json()
    assert [p["provider"] for p in listed] == PROVIDERS
    before = provider_entry(admin, "anthropic")
    assert before["source"] == "supported" and before["id"] == NIL
    assert (before["enabled"], before["has_api_key"]) == (False, False)
    assert (before["central_api_key_enabled"], before["allow_user_api_key"]) == (True, False)
    assert before["allow_central_api_key_fallback"] is False

    resp = admin.http.post(
        f"{CHATS}/providers",
        json={"provider": "anthropic", "display_name": "Claude", "api_key": f"  {key}\n",
              "base_url": "https://llm.example.com/anthropic"},
    )  # fmt: skip
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["source"] == "database" and created["has_api_key"] is True
    assert created["display_name"] == "Claude" and created["enabled"] is True
    assert created["base_url"] == "https://llm.example.com/anthropic"
    assert created["created_at"].endswith("Z") and "api_key" not in created
    row = stored_provider_row("anthropic")
    assert row is not None and key not in row["json"] and row["api_key"]

    dup = admin.http.post(f"{CHATS}/providers", json={"provider": "anthropic", "api_key": key})
    assert (dup.status_code, dup.json()["message"]) == (409, "Chat provider already exists.")

    pid = created["id"]
    patched = admin.http.patch(
        f"{CHATS}/providers/{pid}", json={"display_name": "", "api_key": new_key, "enabled": False}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["display_name"] == "Claude"  # empty names are not applied
    assert patched.json()["enabled"] is False and patched.json()["has_api_key"] is True
    cleared = admin.http.patch(f"{CHATS}/providers/{pid}", json={"api_key": ""})
    assert cleared.status_code == 400
    assert cleared.json()["message"] == "API key is required when central API key is enabled."
    byok = admin.http.patch(
        f"{CHATS}/providers/{pid}",
        json={"api_key": "", "central_api_key_enabled": False, "allow_user_api_key": True},
    )
    assert byok.status_code == 200, byok.text
    assert byok.json()["has_api_key"] is False and byok.json()["allow_user_api_key"] is True
    row = stored_provider_row("anthropic")
    assert row is not None and row["api_key"] == ""

    assert admin.http.delete(f"{CHATS}/providers/{pid}").status_code == 204
    assert provider_entry(admin, "anthropic")["source"] == "supported"
    gone = admin.http.delete(f"{CHATS}/providers/{pid}")
    assert gone.status_code == 404 and gone.json()["message"]
    bad = admin.http.patch(f"{CHATS}/providers/not-a-uuid", json={})
    assert (bad.status_code, bad.json()["message"]) == (400, "Invalid chat provider ID.")
    assert not [b for b in bodies if key in b or new_key in b]


@pytest.mark.parametrize(
    ("body", "message", "detail"),
    [
        (
            {"provider": "gpt"},
            "Invalid provider.",
            "Provider must be one of: anthropic, azure, bedrock, google, openai, openai-compat, "
            "openrouter, vercel.",
        ),
        ({"provider": "google", "api_key": "k" * 10_241}, "API key too large.", None),
        (
            {"provider": "google", "api_key": "k", "base_url": "llm.example.com/v1"},
            "Base URL must be an absolute URL with scheme and host.",
            None,
        ),
        (
            {"provider": "google", "api_key": "k", "base_url": "ftp://llm.example.com"},
            "Base URL scheme must be http or https.",
            None,
        ),
        (
            {"provider": "google", "api_key": "k", "central_api_key_enabled": False},
            "Invalid credential policy.",
            "At least one credential source must be enabled: central API key or user API key.",
        ),
        (
            {"provider": "google", "central_api_key_enabled": False, "allow_user_api_key": True,
             "allow_central_api_key_fallback": True},
            "Invalid credential policy.",
            "Central API key fallback requires central API key to be enabled.",
        ),
        (
            {"provider": "google", "api_key": "k", "allow_central_api_key_fallback": True},
            "Invalid credential policy.",
            "Central API key fallback requires user API key to be enabled.",
        ),
        ({"provider": "google"}, KEY_REQUIRED, None),
        ({"provider": "google", "api_key": "   "}, KEY_REQUIRED, None),
    ],
)  # fmt: skip
def test_provider_validation(
    admin: Caller, body: dict[str, Any], message: str, detail: str | None
) -> None:
    resp = admin.http.post(f"{CHATS}/providers", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["message"] == message
    assert resp.json().get("detail") == detail
    assert provider_entry(admin, "google")["source"] == "supported"


def test_bedrock_may_rely_on_ambient_credentials(admin: Caller) -> None:
    created = configure_provider(admin, "bedrock", central_api_key_enabled=True, api_key="")
    assert created["has_api_key"] is False and created["central_api_key_enabled"] is True


def test_only_owners_may_manage_providers_and_models(
    farm: Farm, admin: Caller, caller: Caller
) -> None:
    openai = openai_at_scripted_server(farm, admin)
    shown = model_config(admin, "openai", "agentfarm-rbac-shown")
    hidden = model_config(admin, "openai", "agentfarm-rbac-hidden", enabled=False)
    for method, path, body in [
        ("GET", "/providers", None),
        ("POST", "/providers", {"provider": "google", "api_key": "k"}),
        ("PATCH", f"/providers/{openai['id']}", {"enabled": False}),
        ("DELETE", f"/providers/{openai['id']}", None),
        ("POST", "/model-configs", {"provider": "openai", "model": "x", "context_limit": 1}),
        ("PATCH", f"/model-configs/{shown['id']}", {"is_default": True}),
        ("DELETE", f"/model-configs/{shown['id']}", None),
    ]:
        resp = caller.http.request(method, CHATS + path, json=body)
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["message"] == "Forbidden."
    assert provider_entry(admin, "openai")["enabled"] is True
    # Anyone may list model configs; non-admins see the enabled ones only.
    mine = {r["id"] for r in caller.http.get(f"{CHATS}/model-configs").json()}
    everyone = {r["id"] for r in admin.http.get(f"{CHATS}/model-configs").json()}
    assert shown["id"] in mine and hidden["id"] not in mine and hidden["id"] in everyone


# ---------------------------------------------------------------- model configs


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**M, "provider": "gpt"}, "Invalid provider."),
        ({**M, "model": " "}, "Model is required."),
        ({"provider": "openai", "model": "m"}, "Context limit is required."),
        ({**M, "context_limit": 0}, "context_limit must be greater than zero."),
        ({**M, "compression_threshold": 101}, "Invalid compression threshold."),
        ({**M, "provider": "azure"}, "Chat provider is not configured."),
        (
            {**M, "model_config": {"cost": {"input_price_per_million_tokens": -1}}},
            "cost.input_price_per_million_tokens must be greater than or equal to zero",
        ),
        (
            {**M, "model_config": {"provider_options": {"openai": {"reasoning_effort": "max"}}}},
            "provider_options.openai.reasoning_effort must be one of: "
            "none, minimal, low, medium, high, xhigh",
        ),
    ],
)
def test_model_config_validation(
    farm: Farm, admin: Caller, body: dict[str, Any], message: str
) -> None:
    openai_at_scripted_server(farm, admin)
    before = admin.http.get(f"{CHATS}/model-configs").json()
    resp = admin.http.post(f"{CHATS}/model-configs", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["message"] == message
    assert admin.http.get(f"{CHATS}/model-configs").json() == before


def test_model_config_update_and_soft_delete(farm: Farm, admin: Caller, caller: Caller) -> None:
    openai_at_scripted_server(farm, admin)
    created = admin.http.post(
        f"{CHATS}/model-configs",
        json={"provider": "openai", "model": f"agentfarm-{uuid.uuid4().hex[:8]}",
              "display_name": "Scratch", "context_limit": 64_000,
              "model_config": {"max_output_tokens": 2048, "temperature": 0.2,
                               "cost": {"input_price_per_million_tokens": 1,
                                        "output_price_per_million_tokens": "3"}}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    row = created.json()
    assert row["compression_threshold"] == 70 and row["is_default"] is False
    assert row["model_config"] == {
        "max_output_tokens": 2048,
        "temperature": 0.2,
        "cost": {"input_price_per_million_tokens": 1.0, "output_price_per_million_tokens": 3.0},
    }
    assert row["pricing_source"] == "admin"
    path = f"{CHATS}/model-configs/{row['id']}"
    resp = admin.http.patch(path, json={"context_limit": 0})
    assert (resp.status_code, resp.json()["message"]) == (
        400,
        "Context limit must be greater than zero.",
    )
    resp = admin.http.patch(path, json={"compression_threshold": 90, "display_name": "Renamed"})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["compression_threshold"], resp.json()["display_name"]) == (90, "Renamed")
    assert resp.json()["model_config"]["max_output_tokens"] == 2048  # untouched
    assert admin.http.patch(f"{CHATS}/model-configs/nope", json={}).json()["message"] == (
        "Invalid chat model config ID."
    )
    assert admin.http.patch(f"{CHATS}/model-configs/{uuid.uuid4()}", json={}).status_code == 404
    assert admin.http.delete(path).status_code == 204
    assert row["id"] not in {r["id"] for r in admin.http.get(f"{CHATS}/model-configs").json()}
    assert admin.http.patch(path, json={"display_name": "x"}).status_code == 404
    with db.session_scope() as session:
        deleted = session.execute(
            sa.text("SELECT deleted, deleted_at IS NOT NULL FROM chat_model_configs WHERE id = :i"),
            {"i": row["id"]},
        ).one()
    assert tuple(deleted) == (True, True)


def assistant_cost(chat_id: str) -> tuple[int, int, int | None]:
    with db.session_scope() as session:
        row = session.execute(
            sa.text(
                "SELECT input_tokens, output_tokens, total_cost_micros FROM chat_messages "
                "WHERE chat_id = :id AND role = 'assistant'"
            ),
            {"id": chat_id},
        ).one()
    return row.input_tokens, row.output_tokens, row.total_cost_micros


def test_default_prices_from_litellm_and_null_for_unknown_models(
    farm: Farm, admin: Caller, caller: Caller
) -> None:
    openai_at_scripted_server(farm, admin)
    priced = model_config(admin, "openai", "gpt-4o")
    assert priced["pricing_source"] == "litellm_default"
    assert priced["model_config"]["cost"] == GPT4O_DEFAULT_COST
    unknown = model_config(admin, "openai", "agentfarm-unpriced-model")
    assert unknown["pricing_source"] == "unpriced" and "cost" not in unknown["model_config"]

    # Turns on both models, through the scripted server: litellm's prices vs NULL.
    usage = "[[usage: prompt=1000 completion=500]]"
    chat = caller.create_chat(f"[[reply: priced]] {usage}", model_config_id=priced["id"])
    caller.wait_status(chat["id"], "waiting")
    assert assistant_cost(chat["id"]) == (1000, 500, 1000 * 2.5 + 500 * 10)
    chat = caller.create_chat(f"[[reply: free]] {usage}", model_config_id=unknown["id"])
    caller.wait_status(chat["id"], "waiting")
    assert assistant_cost(chat["id"]) == (1000, 500, None)

    # An admin's own prices replace the defaults; blank again brings the defaults back.
    path = f"{CHATS}/model-configs/{priced['id']}"
    mine = admin.http.patch(
        path, json={"model_config": {"cost": {"input_price_per_million_tokens": 1}}}
    )
    assert mine.json()["pricing_source"] == "admin"
    again = admin.http.patch(path, json={"model_config": {"max_output_tokens": 1000}})
    assert again.json()["pricing_source"] == "litellm_default"
    assert again.json()["model_config"] == {"max_output_tokens": 1000, "cost": GPT4O_DEFAULT_COST}

    models = caller.http.get(f"{CHATS}/models").json()["providers"]
    openai = next(p for p in models if p["provider"] == "openai")
    assert openai["available"] is True and "unavailable_reason" not in openai
    assert {"gpt-4o", "agentfarm-unpriced-model"} <= {m["model"] for m in openai["models"]}
    assert [m["model"] for m in openai["models"]] == sorted(m["model"] for m in openai["models"])

    # Its models are in use now, so the provider cannot be deleted (disable it instead).
    provider = provider_entry(admin, "openai")
    resp = admin.http.delete(f"{CHATS}/providers/{provider['id']}")
    assert (resp.status_code, resp.json()["message"]) == (
        400,
        "Provider models are still referenced by existing chats.",
    )
    assert provider_entry(admin, "openai")["source"] == "database"


def test_reasoning_effort_reaches_the_model(farm: Farm, admin: Caller, caller: Caller) -> None:
    openai_at_scripted_server(farm, admin)
    config = model_config(
        admin,
        "openai",
        "agentfarm-reasoner",
        model_config={"provider_options": {"openai": {"reasoning_effort": "low"}}},
    )
    tag = f"effort-{uuid.uuid4().hex[:8]}"
    chat = caller.create_chat(f"[[reply: thought]] {tag}", model_config_id=config["id"])
    caller.wait_status(chat["id"], "waiting")
    sent = [r for r in requests_mentioning(farm, tag) if r.get("model") == "agentfarm-reasoner"]
    assert sent and all(r["reasoning_effort"] == "low" for r in sent)


def live_defaults() -> list[str]:
    with db.session_scope() as session:
        rows = session.execute(
            sa.text("SELECT id::text FROM chat_model_configs WHERE is_default AND NOT deleted")
        ).scalars()
        return list(rows)


def test_exactly_one_default_model(farm: Farm, admin: Caller, caller: Caller) -> None:
    openai_at_scripted_server(farm, admin)
    original = default_model_id(admin)
    a = model_config(admin, "openai", "agentfarm-default-a")
    b = model_config(admin, "openai", "agentfarm-default-b")
    try:
        made = admin.http.patch(f"{CHATS}/model-configs/{a['id']}", json={"is_default": True})
        assert made.status_code == 200 and made.json()["is_default"] is True
        assert live_defaults() == [a["id"]]
        created = admin.http.post(
            f"{CHATS}/model-configs",
            json={"provider": "openai", "model": f"agentfarm-{uuid.uuid4().hex[:6]}",
                  "context_limit": 1000, "is_default": True},
        )  # fmt: skip
        assert created.status_code == 201 and live_defaults() == [created.json()["id"]]
        # A chat without a model takes the default.
        chat = caller.create_chat("[[reply: default]]")
        assert chat["last_model_config_id"] == created.json()["id"]
        caller.wait_status(chat["id"], "waiting")

        # Racing requests to move the default: every one succeeds, one default remains.
        results: list[int] = []

        def make_default(model_id: str) -> None:
            resp = admin.http.patch(f"{CHATS}/model-configs/{model_id}", json={"is_default": True})
            results.append(resp.status_code)

        threads = [threading.Thread(target=make_default, args=(m,)) for m in [a["id"], b["id"]] * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 8
        assert len(live_defaults()) == 1 and live_defaults()[0] in {a["id"], b["id"]}

        # Unsetting or deleting the default hands it to another model.
        current = live_defaults()[0]
        resp = admin.http.patch(f"{CHATS}/model-configs/{current}", json={"is_default": False})
        assert resp.json()["is_default"] is False
        assert len(live_defaults()) == 1 and live_defaults() != [current]
        assert admin.http.delete(f"{CHATS}/model-configs/{created.json()['id']}").status_code == 204
        assert len(live_defaults()) == 1
    finally:
        restore = admin.http.patch(f"{CHATS}/model-configs/{original}", json={"is_default": True})
        assert restore.status_code == 200, restore.text
    assert live_defaults() == [original]


def test_an_anthropic_model_runs_a_turn_on_the_messages_api(
    farm: Farm, admin: Caller, caller: Caller
) -> None:
    """A chat on an anthropic model: the worker's direct Messages client
    (workers/turn/anthropic_wire.py) against the scripted server's /v1/messages, which checks
    the request as Anthropic does. Reasoning effort becomes a thinking budget, the system
    prompt goes top level, usage is priced from litellm's map."""
    configure_provider(
        admin,
        "anthropic",
        api_key=secret("anthropic-turn"),
        base_url=farm.llm.base_url.removesuffix("/v1"),
        enabled=True,
        central_api_key_enabled=True,
        allow_user_api_key=False,
        allow_central_api_key_fallback=False,
    )
    chat: dict[str, Any] = {}
    try:
        config = model_config(
            admin,
            "anthropic",
            "claude-haiku-4-5",
            model_config={"provider_options": {"anthropic": {"effort": "low"}}},
        )
        tag = f"claude-{uuid.uuid4().hex[:8]}"
        usage = "[[usage: prompt=1000 completion=500]]"
        chat = caller.create_chat(
            f"[[reasoning: weighing it]] [[reply: from claude]] {usage} {tag}",
            model_config_id=config["id"],
        )
        caller.wait_status(chat["id"], "waiting")
        sent = [r for r in requests_mentioning(farm, tag) if r.get("model") == "claude-haiku-4-5"]
        turn = next(r for r in sent if r.get("stream"))
        assert turn["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        assert turn["system"] and all(m["role"] in ("user", "assistant") for m in turn["messages"])
        parts = [p for m in caller.messages(chat["id"])["messages"] for p in m["content"]
                 if m["role"] == "assistant"]  # fmt: skip
        assert {"type": "reasoning", "text": "weighing it"} in [
            {k: p[k] for k in ("type", "text")} for p in parts if p["type"] == "reasoning"
        ]
        assert "from claude" in "".join(p.get("text", "") for p in parts if p["type"] == "text")
        # claude-haiku-4-5 in litellm's map: $1 / $5 per 1M tokens.
        assert assistant_cost(chat["id"]) == (1000, 500, 1000 * 1 + 500 * 5)
    finally:
        # Leave no anthropic row behind (test_subagents adds its own): the chat goes first,
        # so the provider, and its model configs with it, can be deleted.
        if chat:
            with db.session_scope() as session:
                session.execute(sa.text("DELETE FROM chats WHERE id = :id"), {"id": chat["id"]})
        provider = provider_entry(admin, "anthropic")
        resp = admin.http.delete(f"{CHATS}/providers/{provider['id']}")
        assert resp.status_code == 204, resp.text
