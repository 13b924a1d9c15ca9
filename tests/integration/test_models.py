"""Domain rules against a real, migrated Postgres.

Every test runs in one transaction that is rolled back at the end, with its own organization
and users, so nothing here is visible to (or disturbed by) other tests sharing the database.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.base import utcnow
from models.chat import queries as chat_queries
from models.chat import rules as chat_rules
from models.chat import updates as chat_updates
from models.chat.tables import Chat, ChatMessage
from models.crypto import SecretBox, SecretsUnavailable, generate_key, key_digest
from models.enums import ClientType, MessageRole, MessageVisibility, PlanMode
from models.errors import BadRequest
from models.identity import bootstrap, tokens
from models.identity.tables import ApiKey, Organization, User
from models.providers.tables import ChatModelConfig, ChatProvider
from models.workspaces.rules import create_template
from models.workspaces.tables import Workspace
from tests.fixtures.db_session import TEST_PROVIDER, add_model_config


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def org(session: Session) -> Organization:
    organization = Organization(name=unique("org"), display_name="Test org")
    session.add(organization)
    session.flush()
    return organization


@pytest.fixture
def user(session: Session, org: Organization) -> User:
    return bootstrap.create_user(session, username=unique("user"), organization=org)


@pytest.fixture
def model_config(session: Session) -> ChatModelConfig:
    return add_model_config(session, unique("model"))


def text(value: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": value}]


def make_chat(
    session: Session,
    owner: User,
    org: Organization,
    config: ChatModelConfig,
    title: str = "hello",
    **kwargs: Any,
) -> Chat:
    chat, _ = chat_rules.create_chat(
        session,
        owner=owner,
        organization_id=org.id,
        parts=text(title),
        model_config=config,
        deployment_prompt="",
        **kwargs,
    )
    return chat


def make_child(session: Session, parent: Chat, config: ChatModelConfig) -> Chat:
    child = chat_rules.new_child_chat(parent, title="sub", model_config_id=config.id)
    session.add(child)
    session.flush()
    return child


def fresh(session: Session, *chats: Chat) -> list[Chat]:
    """Re-read chats from the database (after flushing pending changes)."""
    session.flush()
    session.expire_all()
    return [session.get(Chat, c.id) for c in chats]  # type: ignore[misc]


def pins(session: Session, *chats: Chat) -> list[int]:
    return [c.pin_order for c in fresh(session, *chats)]


def bad_request(fn: Any, *args: Any) -> str:
    with pytest.raises(BadRequest) as info:
        fn(*args)
    return info.value.message


# ---------------------------------------------------------------- pin order


@pytest.fixture
def three_chats(
    session: Session, user: User, org: Organization, model_config: ChatModelConfig
) -> tuple[Chat, Chat, Chat]:
    return tuple(make_chat(session, user, org, model_config, f"chat {i}") for i in range(3))  # type: ignore[return-value]


def test_pinning_appends_at_the_end(session: Session, three_chats: tuple[Chat, Chat, Chat]) -> None:
    a, b, c = three_chats
    chat_updates.set_pin_order(session, a, 5)
    assert pins(session, a, b, c) == [1, 0, 0]
    # An unpinned chat is appended at max+1 whatever position it asks for.
    chat_updates.set_pin_order(session, b, 1)
    chat_updates.set_pin_order(session, c, 1)
    assert pins(session, a, b, c) == [1, 2, 3]


def test_moving_a_pin_clamps_and_shifts_neighbours(
    session: Session, three_chats: tuple[Chat, Chat, Chat]
) -> None:
    a, b, c = three_chats
    for chat in three_chats:
        chat_updates.set_pin_order(session, chat, 1)
    assert pins(session, a, b, c) == [1, 2, 3]

    a, b, c = fresh(session, a, b, c)
    chat_updates.set_pin_order(session, c, 1)
    assert pins(session, a, b, c) == [2, 3, 1]

    a, b, c = fresh(session, a, b, c)
    chat_updates.set_pin_order(session, a, 99)  # clamped to the pinned count
    assert pins(session, a, b, c) == [3, 2, 1]

    a, b, c = fresh(session, a, b, c)
    chat_updates.set_pin_order(session, a, 2)
    assert pins(session, a, b, c) == [2, 3, 1]


def test_unpinning_compacts_the_rest(
    session: Session, three_chats: tuple[Chat, Chat, Chat]
) -> None:
    a, b, c = three_chats
    for chat in three_chats:
        chat_updates.set_pin_order(session, chat, 1)
    a, b, c = fresh(session, a, b, c)
    chat_updates.set_pin_order(session, a, 0)
    assert pins(session, a, b, c) == [0, 1, 2]
    # Unpinning an unpinned chat is a no-op.
    a, b, c = fresh(session, a, b, c)
    chat_updates.set_pin_order(session, a, 0)
    assert pins(session, a, b, c) == [0, 1, 2]


def test_pins_are_per_owner(
    session: Session,
    org: Organization,
    model_config: ChatModelConfig,
    three_chats: tuple[Chat, Chat, Chat],
) -> None:
    other = bootstrap.create_user(session, username=unique("other"), organization=org)
    theirs = make_chat(session, other, org, model_config)
    chat_updates.set_pin_order(session, theirs, 1)
    a, b, _ = three_chats
    chat_updates.set_pin_order(session, a, 1)
    chat_updates.set_pin_order(session, b, 1)
    assert pins(session, theirs, a, b) == [1, 1, 2]
    a, b = fresh(session, a, b)
    chat_updates.set_pin_order(session, a, 0)
    assert pins(session, theirs, a, b) == [1, 0, 1]


def test_negative_pin_order_is_rejected(
    session: Session, three_chats: tuple[Chat, Chat, Chat]
) -> None:
    message = bad_request(chat_updates.set_pin_order, session, three_chats[0], -1)
    assert message == "Pin order must be non-negative."


def test_archived_chat_cannot_be_pinned(
    session: Session, three_chats: tuple[Chat, Chat, Chat]
) -> None:
    chat = three_chats[0]
    chat_updates.set_archived(session, chat, True)
    message = bad_request(chat_updates.set_pin_order, session, chat, 1)
    assert message == "Cannot pin an archived chat."
    assert pins(session, chat) == [0]


def test_archiving_unpins_and_compacts(
    session: Session, three_chats: tuple[Chat, Chat, Chat]
) -> None:
    a, b, c = three_chats
    for chat in three_chats:
        chat_updates.set_pin_order(session, chat, 1)
    a, b, c = fresh(session, a, b, c)
    chat_updates.set_archived(session, a, True)
    assert pins(session, a, b, c) == [0, 1, 2]


# ---------------------------------------------------------------- archive


@pytest.fixture
def family(
    session: Session, user: User, org: Organization, model_config: ChatModelConfig
) -> tuple[Chat, Chat, Chat]:
    """A root chat, its child and its grandchild."""
    root = make_chat(session, user, org, model_config)
    child = make_child(session, root, model_config)
    grandchild = make_child(session, child, model_config)
    return root, child, grandchild


def archived(session: Session, *chats: Chat) -> list[bool]:
    return [c.archived for c in fresh(session, *chats)]


def test_archive_cascades_through_the_root(
    session: Session, family: tuple[Chat, Chat, Chat]
) -> None:
    root, child, grandchild = family
    before = fresh(session, root)[0].updated_at
    chat_updates.set_archived(session, root, True)
    assert archived(session, root, child, grandchild) == [True, True, True]
    assert fresh(session, root)[0].updated_at >= before

    chat_updates.set_archived(session, fresh(session, root)[0], False)
    assert archived(session, root, child, grandchild) == [False, False, False]


def test_archive_does_not_touch_other_roots(
    session: Session,
    user: User,
    org: Organization,
    model_config: ChatModelConfig,
    family: tuple[Chat, Chat, Chat],
) -> None:
    other = make_chat(session, user, org, model_config)
    chat_updates.set_archived(session, family[0], True)
    assert archived(session, other) == [False]


def test_archiving_twice_is_rejected(session: Session, family: tuple[Chat, Chat, Chat]) -> None:
    root = family[0]
    chat_updates.set_archived(session, root, True)
    assert bad_request(chat_updates.set_archived, session, root, True) == (
        "Chat is already archived."
    )


def test_unarchiving_an_active_chat_is_rejected(
    session: Session, family: tuple[Chat, Chat, Chat]
) -> None:
    assert bad_request(chat_updates.set_archived, session, family[0], False) == (
        "Chat is not archived."
    )


def test_child_cannot_be_unarchived_under_an_archived_parent(
    session: Session, family: tuple[Chat, Chat, Chat]
) -> None:
    root, child, _ = family
    chat_updates.set_archived(session, root, True)
    (child,) = fresh(session, child)
    assert bad_request(chat_updates.set_archived, session, child, False) == (
        "Cannot unarchive a child chat while its parent is archived. "
        "Unarchive the parent chat to cascade."
    )
    assert archived(session, child) == [True]


def test_archiving_a_root_unpins_its_pinned_children(
    session: Session,
    user: User,
    org: Organization,
    model_config: ChatModelConfig,
    family: tuple[Chat, Chat, Chat],
) -> None:
    root, child, _ = family
    other = make_chat(session, user, org, model_config)
    chat_updates.set_pin_order(session, child, 1)
    chat_updates.set_pin_order(session, other, 1)
    assert pins(session, child, other) == [1, 2]
    (root,) = fresh(session, root)
    chat_updates.set_archived(session, root, True)
    # Archived chats are never pinned, and the remaining pins stay 1..n.
    assert pins(session, child, other) == [0, 1]


# ---------------------------------------------------------------- child chats


def test_child_chat_inherits_from_its_parent(
    session: Session, user: User, org: Organization, model_config: ChatModelConfig
) -> None:
    parent = make_chat(
        session, user, org, model_config, client_type=ClientType.UI, plan_mode=PlanMode.PLAN
    )
    template = create_template(session, organization_id=org.id, name=f"t-{uuid.uuid4().hex[:8]}")
    workspace = Workspace(
        owner_id=user.id,
        organization_id=org.id,
        template_id=template.id,
        name="ws",
        host="local",
        directory="/nonexistent",
    )
    session.add(workspace)
    session.flush()
    parent.workspace_id = workspace.id
    parent.mcp_server_ids = [uuid.uuid4()]
    child = make_child(session, parent, model_config)
    grandchild = make_child(session, child, model_config)
    child, grandchild = fresh(session, child, grandchild)
    for sub in (child, grandchild):
        assert sub.client_type is ClientType.UI
        assert sub.organization_id == org.id
        assert sub.owner_id == user.id
        assert sub.root_chat_id == parent.id
        assert sub.workspace_id == parent.workspace_id
        assert sub.plan_mode is PlanMode.PLAN
        assert sub.mcp_server_ids == parent.mcp_server_ids
    assert child.parent_chat_id == parent.id
    assert grandchild.parent_chat_id == child.id


def test_api_parent_makes_api_children(
    session: Session, user: User, org: Organization, model_config: ChatModelConfig
) -> None:
    parent = make_chat(session, user, org, model_config)
    (child,) = fresh(session, make_child(session, parent, model_config))
    assert (parent.client_type, child.client_type) == (ClientType.API, ClientType.API)


# ---------------------------------------------------------------- tokens


def test_token_round_trip(session: Session, user: User) -> None:
    token = tokens.create_token(session, user.id, name="cli")
    key_id, _, secret = token.partition("-")
    assert (len(key_id), len(secret)) == (10, 22)
    key = tokens.lookup_token(session, token)
    assert key is not None
    assert (key.user_id, key.token_name) == (user.id, "cli")


def test_database_keeps_only_a_hash_of_the_secret(session: Session, user: User) -> None:
    token = tokens.create_token(session, user.id)
    key_id, _, secret = token.partition("-")
    row = session.execute(
        sa.text("SELECT row_to_json(k)::text AS js, hashed_secret FROM api_keys k WHERE id = :id"),
        {"id": key_id},
    ).one()
    assert secret not in row.js
    assert secret.encode() not in bytes(row.hashed_secret)
    assert bytes(row.hashed_secret) == hashlib.sha256(secret.encode()).digest()


def test_wrong_or_malformed_tokens_are_unknown(session: Session, user: User) -> None:
    token = tokens.create_token(session, user.id)
    key_id, _, secret = token.partition("-")
    flipped = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    for bad in (
        f"{key_id}-{flipped}",
        f"{key_id}-",
        key_id,
        secret,
        "",
        "-" + secret,
        f"{key_id}x-{secret}",
        f"{'z' * 10}-{secret}",
    ):
        assert tokens.lookup_token(session, bad) is None, bad


def test_expired_tokens_are_unknown(session: Session, user: User) -> None:
    expired = tokens.create_token(session, user.id, expires_at=utcnow() - timedelta(seconds=1))
    valid = tokens.create_token(session, user.id, expires_at=utcnow() + timedelta(hours=1))
    assert tokens.lookup_token(session, expired) is None
    assert tokens.lookup_token(session, valid) is not None


def test_tokens_cascade_with_their_user(session: Session, user: User) -> None:
    token = tokens.create_token(session, user.id)
    session.delete(user)
    session.flush()
    session.expire_all()
    assert session.get(ApiKey, token.partition("-")[0]) is None


# ---------------------------------------------------------------- secrets


def test_secret_box_round_trip() -> None:
    box = SecretBox([generate_key()])
    ciphertext, key_id = box.encrypt("sk-live-123")
    assert "sk-live-123" not in ciphertext
    assert key_id == box.active_key_id
    assert box.decrypt(ciphertext) == "sk-live-123"


def test_secret_box_rotation() -> None:
    old, new = generate_key(), generate_key()
    before = SecretBox([old])
    ciphertext, old_id = before.encrypt("sk-rotate")
    after = SecretBox([new, old])
    assert after.decrypt(ciphertext) == "sk-rotate"
    assert after.active_key_id != before.active_key_id
    assert after.active_key_id == key_digest(new.encode())
    fresh_ciphertext, new_id = after.encrypt("sk-rotate")
    assert (old_id, new_id) == (before.active_key_id, after.active_key_id)
    # Once the old key is dropped, only values re-encrypted with the new key remain readable.
    only_new = SecretBox([new])
    assert only_new.decrypt(fresh_ciphertext) == "sk-rotate"
    with pytest.raises(SecretsUnavailable):
        only_new.decrypt(ciphertext)


def test_secret_box_without_keys() -> None:
    box = SecretBox([])
    with pytest.raises(SecretsUnavailable):
        box.encrypt("x")
    with pytest.raises(SecretsUnavailable):
        _ = box.active_key_id


def test_provider_row_never_holds_the_plaintext_key(session: Session) -> None:
    box = SecretBox([generate_key()])
    plaintext = "sk-" + uuid.uuid4().hex
    row = bootstrap.ensure_provider(
        session, box, provider=TEST_PROVIDER, base_url="http://llm.invalid", api_key=plaintext
    )
    stored = session.execute(
        sa.text("SELECT row_to_json(p)::text FROM chat_providers p WHERE id = :id"),
        {"id": row.id},
    ).scalar_one()
    assert plaintext not in stored
    session.expire_all()
    row = session.get(ChatProvider, row.id)  # type: ignore[assignment]
    assert row.api_key_key_id == box.active_key_id
    assert box.decrypt(row.api_key) == plaintext

    bootstrap.ensure_provider(
        session, box, provider=TEST_PROVIDER, base_url="http://llm.invalid", api_key=""
    )
    session.expire_all()
    row = session.get(ChatProvider, row.id)  # type: ignore[assignment]
    assert (row.api_key, row.api_key_key_id) == ("", None)


# ---------------------------------------------------------------- message pages


@pytest.fixture
def conversation(
    session: Session, user: User, org: Organization, model_config: ChatModelConfig
) -> tuple[Chat, list[ChatMessage]]:
    """A chat with a hidden system prompt, five visible messages and one deleted one."""
    chat, first = chat_rules.create_chat(
        session,
        owner=user,
        organization_id=org.id,
        parts=text("question 1"),
        model_config=model_config,
        deployment_prompt="You are a test.",
    )
    visible = [first]
    for i, role in enumerate(
        [MessageRole.ASSISTANT, MessageRole.USER, MessageRole.ASSISTANT, MessageRole.USER]
    ):
        visible.append(chat_rules.add_message(session, chat, role, text(f"m{i}")))
        if i == 2:
            chat_rules.add_message(session, chat, MessageRole.ASSISTANT, text("gone"), deleted=True)
    chat_rules.add_message(
        session, chat, MessageRole.SYSTEM, text("hint"), visibility=MessageVisibility.MODEL
    )
    return chat, visible


def ids(rows: list[ChatMessage]) -> list[int | None]:
    return [r.id for r in rows]


def test_newest_messages_first_with_has_more(
    session: Session, conversation: tuple[Chat, list[ChatMessage]]
) -> None:
    chat, visible = conversation
    page, more = chat_queries.page_messages(
        session, chat.id, before_id=None, after_id=None, limit=2
    )
    assert (ids(page), more) == (ids(visible[:2:-1]), True)
    page, more = chat_queries.page_messages(
        session, chat.id, before_id=visible[3].id, after_id=None, limit=2
    )
    assert (ids(page), more) == ([visible[2].id, visible[1].id], True)
    page, more = chat_queries.page_messages(
        session, chat.id, before_id=visible[1].id, after_id=None, limit=2
    )
    assert (ids(page), more) == ([visible[0].id], False)


def test_a_full_page_without_more(
    session: Session, conversation: tuple[Chat, list[ChatMessage]]
) -> None:
    chat, visible = conversation
    page, more = chat_queries.page_messages(
        session, chat.id, before_id=None, after_id=None, limit=5
    )
    assert (ids(page), more) == (ids(visible[::-1]), False)
    assert {m.role for m in page} == {MessageRole.USER, MessageRole.ASSISTANT}


def test_after_id_alone_pages_oldest_first(
    session: Session, conversation: tuple[Chat, list[ChatMessage]]
) -> None:
    chat, visible = conversation
    page, more = chat_queries.page_messages(
        session, chat.id, before_id=None, after_id=visible[0].id, limit=3
    )
    assert (ids(page), more) == (ids(visible[1:4]), True)
    page, more = chat_queries.page_messages(
        session, chat.id, before_id=None, after_id=visible[0].id, limit=4
    )
    assert (ids(page), more) == (ids(visible[1:]), False)


def test_after_and_before_together_are_newest_first(
    session: Session, conversation: tuple[Chat, list[ChatMessage]]
) -> None:
    chat, visible = conversation
    page, more = chat_queries.page_messages(
        session, chat.id, before_id=visible[4].id, after_id=visible[0].id, limit=10
    )
    assert (ids(page), more) == (ids(visible[3:0:-1]), False)


def test_messages_of_other_chats_are_not_paged(
    session: Session,
    user: User,
    org: Organization,
    model_config: ChatModelConfig,
    conversation: tuple[Chat, list[ChatMessage]],
) -> None:
    other = make_chat(session, user, org, model_config)
    page, more = chat_queries.page_messages(
        session, other.id, before_id=None, after_id=None, limit=50
    )
    assert len(page) == 1 and not more
    assert page[0].chat_id == other.id


@pytest.mark.parametrize("raw", ["x", "k:", ":v", " : ", "k: "])
def test_malformed_label_filter(raw: str) -> None:
    message = bad_request(chat_queries.parse_label_filters, [raw])
    assert message == (
        f'Invalid label filter: "{raw}" (expected format key:value, both must be non-empty)'
    )


def test_label_filters_combine() -> None:
    assert chat_queries.parse_label_filters(["team:core", "url:http://x"]) == {
        "team": "core",
        "url": "http://x",
    }


# ---------------------------------------------------------------- model configs


def test_only_one_live_default_model_config(
    session: Session, model_config: ChatModelConfig
) -> None:
    # A deleted default never counts.
    session.add(
        ChatModelConfig(
            provider=TEST_PROVIDER,
            model=unique("deleted"),
            context_limit=1000,
            is_default=True,
            deleted=True,
        )
    )
    session.flush()
    live_defaults = (
        select(sa.func.count())
        .select_from(ChatModelConfig)
        .where(ChatModelConfig.is_default, ChatModelConfig.deleted.is_(False))  # type: ignore[attr-defined]
    )
    if session.exec(live_defaults).one() == 0:
        model_config.is_default = True
        session.flush()
    assert session.exec(live_defaults).one() == 1
    session.add(
        ChatModelConfig(
            provider=TEST_PROVIDER, model=unique("second"), context_limit=1000, is_default=True
        )
    )
    with pytest.raises(IntegrityError, match="idx_chat_model_configs_single_default"):
        session.flush()
