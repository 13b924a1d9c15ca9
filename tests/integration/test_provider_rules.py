"""Key policy (§5.2), provider toggles and model defaults against a real, migrated Postgres.

Each test runs in a transaction that is rolled back, so provider rows it creates or changes
(possibly ones the dev farm committed) are never seen outside it.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.crypto import SecretBox, generate_key
from models.errors import BadRequest
from models.identity import bootstrap
from models.providers import key_policy, model_configs, pricing, user_keys
from models.providers.key_policy import KeySource
from models.providers.model_options import ChatModelCallConfig
from models.providers.tables import ChatModelConfig, ChatProvider, UserChatProviderKey

BOX = SecretBox([generate_key()])
USER_KEY, CENTRAL_KEY = "sk-user-" + uuid.uuid4().hex, "sk-central-" + uuid.uuid4().hex


@pytest.fixture
def user_id(session: Session) -> uuid.UUID:
    return bootstrap.create_user(session, username=f"kp-{uuid.uuid4().hex[:10]}").id


def set_provider(
    session: Session,
    name: str,
    *,
    central: bool,
    allow_user: bool,
    fallback: bool,
    central_key: bool,
    enabled: bool = True,
) -> ChatProvider:
    """Create or overwrite the provider row (inside the test's transaction)."""
    ciphertext, key_id = BOX.encrypt(CENTRAL_KEY) if central_key else ("", None)
    values = {
        "central_api_key_enabled": central,
        "allow_user_api_key": allow_user,
        "allow_central_api_key_fallback": fallback,
        "api_key": ciphertext,
        "api_key_key_id": key_id,
        "enabled": enabled,
    }
    stmt = pg_insert(ChatProvider.__table__).values(provider=name, **values)  # type: ignore[arg-type]
    session.execute(stmt.on_conflict_do_update(index_elements=["provider"], set_=values))
    session.expire_all()
    row = session.exec(select(ChatProvider).where(ChatProvider.provider == name)).one()
    session.execute(
        sa.delete(UserChatProviderKey).where(UserChatProviderKey.chat_provider_id == row.id)  # type: ignore[arg-type]
    )
    return row


def give_user_key(session: Session, provider: ChatProvider, user_id: uuid.UUID) -> None:
    ciphertext, key_id = BOX.encrypt(USER_KEY)
    session.add(
        UserChatProviderKey(
            user_id=user_id, chat_provider_id=provider.id, api_key=ciphertext, api_key_key_id=key_id
        )
    )
    session.flush()


# §5.2's truth table, one row per combination the table's "any" stands for:
# (central enabled, allow user, fallback, user key?, central key?) → outcome for any provider
# but Bedrock, outcome for Bedrock.
TRUTH_TABLE = [
    ((True, False, False, True, True), "central", "central"),
    ((True, False, False, False, True), "central", "central"),
    ((True, False, False, True, False), "missing_api_key", "ambient"),
    ((True, False, False, False, False), "missing_api_key", "ambient"),
    ((False, True, False, True, True), "user", "user"),
    ((False, True, False, True, False), "user", "user"),
    ((False, True, False, False, True), "user_api_key_required", "user_api_key_required"),
    ((False, True, False, False, False), "user_api_key_required", "user_api_key_required"),
    ((True, True, False, True, True), "user", "user"),
    ((True, True, False, True, False), "user", "user"),
    ((True, True, False, False, True), "user_api_key_required", "user_api_key_required"),
    ((True, True, False, False, False), "user_api_key_required", "user_api_key_required"),
    ((True, True, True, True, True), "user", "user"),
    ((True, True, True, True, False), "user", "user"),
    ((True, True, True, False, True), "central", "central"),
    ((True, True, True, False, False), "user_api_key_required", "ambient"),
]


def outcome(resolution: key_policy.KeyResolution) -> str:
    if not resolution.available:
        return str(resolution.reason)
    return str(resolution.source)


@pytest.mark.parametrize("provider", ["openai", "bedrock"])
@pytest.mark.parametrize(
    ("row", "expected", "bedrock_expected"),
    TRUTH_TABLE,
    ids=["-".join("TF"[not v] for v in row) for row, _, _ in TRUTH_TABLE],
)
def test_truth_table(
    session: Session,
    user_id: uuid.UUID,
    provider: str,
    row: tuple[bool, bool, bool, bool, bool],
    expected: str,
    bedrock_expected: str,
) -> None:
    central, allow_user, fallback, has_user_key, has_central_key = row
    prov = set_provider(
        session,
        provider,
        central=central,
        allow_user=allow_user,
        fallback=fallback,
        central_key=has_central_key,
    )
    if has_user_key:
        give_user_key(session, prov, user_id)
    resolution = key_policy.resolve_for_user(session, prov, user_id)
    want = bedrock_expected if provider == "bedrock" else expected
    assert outcome(resolution) == want
    # The key handed to the step is the one the outcome names.
    plaintext = BOX.decrypt(resolution.ciphertext) if resolution.ciphertext else None
    assert plaintext == {KeySource.USER: USER_KEY, KeySource.CENTRAL: CENTRAL_KEY}.get(
        resolution.source  # type: ignore[arg-type]
    )
    # Another user, without a key of their own, gets the keyless outcome.
    stranger = key_policy.resolve_for_user(session, prov, uuid.uuid4())
    assert outcome(stranger) == outcome(key_policy.resolve(prov, None))
    # The catalog says the same for this user.
    catalog = key_policy.model_catalog(session, user_id)
    entry = next(p for p in catalog["providers"] if p["provider"] == provider)
    assert entry["available"] == resolution.available
    assert entry.get("unavailable_reason") == (None if resolution.available else want)


@pytest.mark.parametrize(
    ("central", "allow_user", "fallback", "detail"),
    [
        (
            False,
            False,
            False,
            "At least one credential source must be enabled: central API key or user API key.",
        ),
        (
            False,
            False,
            True,
            "At least one credential source must be enabled: central API key or user API key.",
        ),
        (False, True, True, "Central API key fallback requires central API key to be enabled."),
        (True, False, True, "Central API key fallback requires user API key to be enabled."),
    ],
)
def test_invalid_policies_are_refused_by_the_api_rule_and_the_database(
    session: Session, central: bool, allow_user: bool, fallback: bool, detail: str
) -> None:
    with pytest.raises(BadRequest) as info:
        key_policy.validate_policy(central, allow_user, fallback)
    assert (info.value.message, info.value.detail) == ("Invalid credential policy.", detail)
    with pytest.raises(IntegrityError, match="valid_credential_policy"), session.begin_nested():
        set_provider(
            session,
            "google",
            central=central,
            allow_user=allow_user,
            fallback=fallback,
            central_key=True,
        )


@pytest.mark.parametrize(
    ("central", "allow_user", "fallback"),
    [(True, False, False), (False, True, False), (True, True, False), (True, True, True)],
)
def test_valid_policies_pass_both(
    session: Session, central: bool, allow_user: bool, fallback: bool
) -> None:
    key_policy.validate_policy(central, allow_user, fallback)
    row = set_provider(
        session,
        "google",
        central=central,
        allow_user=allow_user,
        fallback=fallback,
        central_key=True,
    )
    assert row.allow_central_api_key_fallback is fallback


def test_central_key_is_required_except_for_bedrock() -> None:
    with pytest.raises(BadRequest, match="API key is required when central API key is enabled."):
        key_policy.require_central_key("openai", True, False)
    key_policy.require_central_key("bedrock", True, False)  # ambient AWS credentials
    key_policy.require_central_key("openai", False, False)


def test_user_keys_are_encrypted_unique_and_never_empty(
    session: Session, user_id: uuid.UUID
) -> None:
    prov = set_provider(
        session, "openai", central=True, allow_user=True, fallback=True, central_key=True
    )
    out = user_keys.set_user_key(session, BOX, prov, user_id, f"  {USER_KEY}  ")
    assert out["has_user_api_key"] and out["has_central_api_key_fallback"]
    user_keys.set_user_key(session, BOX, prov, user_id, USER_KEY + "-2")  # replaces, no duplicate
    stored = (
        session.execute(
            sa.text("SELECT api_key FROM user_chat_provider_keys WHERE user_id = :u"),
            {"u": user_id},
        )
        .scalars()
        .all()
    )
    assert len(stored) == 1 and USER_KEY not in stored[0]
    assert BOX.decrypt(stored[0]) == USER_KEY + "-2"
    with (
        pytest.raises(IntegrityError, match="user_chat_provider_keys_api_key_check"),
        session.begin_nested(),
    ):
        session.execute(
            sa.text("UPDATE user_chat_provider_keys SET api_key = '' WHERE user_id = :u"),
            {"u": user_id},
        )
    user_keys.delete_user_key(session, prov, user_id)
    assert key_policy.user_key_row(session, prov.id, user_id) is None


@pytest.mark.parametrize(
    ("enabled", "allow_user", "key", "message"),
    [
        (False, True, "k", "Provider is disabled."),
        (True, False, "k", "Provider does not allow user API keys."),
        (True, True, "   ", "API key is required."),
        (True, True, "k" * 10_241, "API key too large."),
    ],
)
def test_user_key_refusals(
    session: Session, user_id: uuid.UUID, enabled: bool, allow_user: bool, key: str, message: str
) -> None:
    prov = set_provider(
        session,
        "openai",
        central=True,
        allow_user=allow_user,
        fallback=False,
        central_key=True,
        enabled=enabled,
    )
    with pytest.raises(BadRequest) as info:
        user_keys.set_user_key(session, BOX, prov, user_id, key)
    assert info.value.message == message


# ---------------------------------------------------------------- model configs


def live_defaults(session: Session) -> list[uuid.UUID]:
    return list(
        session.exec(
            select(ChatModelConfig.id).where(
                ChatModelConfig.is_default,
                ChatModelConfig.deleted.is_(False),  # type: ignore[attr-defined]
            )
        ).all()
    )


def test_exactly_one_default_through_create_update_delete(session: Session) -> None:
    set_provider(
        session, "openai", central=True, allow_user=False, fallback=False, central_key=True
    )

    def add(model: str, **kw: object) -> ChatModelConfig:
        return model_configs.create_model_config(
            session,
            provider="openai",
            model=model,
            context_limit=1000,
            **kw,  # type: ignore[arg-type]
        )

    a, b = add("m-a"), add("m-b", is_default=True)
    assert live_defaults(session) == [b.id]
    model_configs.update_model_config(session, a, {"is_default": True}, None)
    assert live_defaults(session) == [a.id]
    # Unsetting the default hands it to another live model.
    model_configs.update_model_config(session, a, {"is_default": False}, None)
    assert len(live_defaults(session)) == 1 and a.id not in live_defaults(session)
    current = session.get(ChatModelConfig, live_defaults(session)[0])
    assert current is not None
    model_configs.delete_model_config(session, current)
    assert len(live_defaults(session)) == 1 and current.id not in live_defaults(session)
    # The partial unique index is the backstop: a second live default cannot be written.
    other = add("m-c")
    assert not other.is_default
    with pytest.raises(IntegrityError, match="single_default"), session.begin_nested():
        session.execute(
            sa.update(ChatModelConfig)
            .where(ChatModelConfig.id == other.id)  # type: ignore[arg-type]
            .values(is_default=True)
        )


def test_default_prices_are_stored_and_unpriced_models_counted(session: Session) -> None:
    set_provider(
        session, "openai", central=True, allow_user=False, fallback=False, central_key=True
    )
    before = pricing.unpriced_model_count(session)
    priced = model_configs.create_model_config(
        session, provider="openai", model="gpt-4o", context_limit=128_000
    )
    assert priced.cost_is_default and pricing.pricing_source(priced) == "litellm_default"
    assert priced.options["cost"]["output_price_per_million_tokens"] == 10.0
    unknown = model_configs.create_model_config(
        session, provider="openai", model="agentfarm-unknown", context_limit=1000
    )
    assert pricing.pricing_source(unknown) == "unpriced" and "cost" not in unknown.options
    half = model_configs.create_model_config(
        session,
        provider="openai",
        model="agentfarm-cache-only",
        context_limit=1000,
        call_config=ChatModelCallConfig.model_validate(
            {"cost": {"cache_read_price_per_million_tokens": 1}}
        ),
    )
    assert pricing.pricing_source(half) == "unpriced"
    disabled = model_configs.create_model_config(
        session, provider="openai", model="agentfarm-off", context_limit=1000, enabled=False
    )
    assert pricing.unpriced_model_count(session) == before + 2
    # Renaming a default-priced model to one litellm does not price drops the old prices.
    model_configs.update_model_config(session, priced, {"model": "agentfarm-renamed"}, None)
    assert pricing.pricing_source(priced) == "unpriced"
    assert pricing.unpriced_model_count(session) == before + 3
    model_configs.delete_model_config(session, unknown)
    assert pricing.unpriced_model_count(session) == before + 2
    assert disabled.enabled is False
