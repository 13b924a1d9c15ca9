"""Compaction's prompt boundary and trigger on a real, migrated Postgres (no broker, no model).

Each test runs in one transaction that is rolled back at the end.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlmodel import Session

from models.chat import rules as chat_rules
from models.chat.tables import Chat, ChatMessage
from models.enums import MessageRole, MessageVisibility
from models.identity import bootstrap
from models.identity.tables import Organization
from models.providers.tables import ChatModelConfig
from tests.fixtures.db_session import add_model_config
from workers.turn.compaction import CompactionPlan, compaction_due
from workers.turn.prompt import (
    CONTINUE_FROM_SUMMARY,
    SUMMARY_BOUNDARY_KEY,
    SUMMARY_PREAMBLE,
    load_prompt_rows,
    to_llm_messages,
)


@pytest.fixture
def config(session: Session) -> ChatModelConfig:
    return add_model_config(session, f"m-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def chat(session: Session, config: ChatModelConfig) -> Chat:
    org = Organization(name=f"org-{uuid.uuid4().hex[:8]}", display_name="org")
    session.add(org)
    session.flush()
    owner = bootstrap.create_user(session, username=f"u-{uuid.uuid4().hex[:8]}", organization=org)
    created, _ = chat_rules.create_chat(
        session,
        owner=owner,
        organization_id=org.id,
        parts=text("first question"),
        model_config=config,
        deployment_prompt="You are the deployment prompt.",
    )
    return created


def text(value: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": value}]


def add(session: Session, chat: Chat, role: MessageRole, value: str, **fields: Any) -> ChatMessage:
    return chat_rules.add_message(session, chat, role, text(value), **fields)


def add_summary(session: Session, chat: Chat, summary: str, boundary: int) -> ChatMessage:
    """The three compressed rows a compaction writes; returns the summary row."""
    part = {"type": "text", "text": summary, SUMMARY_BOUNDARY_KEY: boundary}
    row = chat_rules.add_message(
        session,
        chat,
        MessageRole.SYSTEM,
        [part],
        visibility=MessageVisibility.MODEL,
        compressed=True,
    )
    named = {"tool_call_id": "chat_summarized_x", "tool_name": "chat_summarized"}
    call = {"type": "tool-call", **named, "args": {}}
    hidden = MessageVisibility.USER
    chat_rules.add_message(
        session, chat, MessageRole.ASSISTANT, [call], visibility=hidden, compressed=True
    )
    result = {"type": "tool-result", **named, "result": {"summary": summary}}
    chat_rules.add_message(session, chat, MessageRole.TOOL, [result], compressed=True)
    return row


def prompt_texts(session: Session, chat: Chat) -> list[str]:
    return [m["content"] or "" for m in to_llm_messages(load_prompt_rows(session, chat.id))]


def test_prompt_starts_from_the_summary_and_keeps_what_came_after_its_boundary(
    session: Session, chat: Chat
) -> None:
    reply = add(session, chat, MessageRole.ASSISTANT, "first answer", input_tokens=900)
    # Arrives while the summary is being written: above the boundary, below the summary row.
    add(session, chat, MessageRole.USER, "second question")
    add_summary(session, chat, "SUMMARY ONE", boundary=reply.id or 0)
    add(session, chat, MessageRole.ASSISTANT, "second answer")
    assert prompt_texts(session, chat) == [
        "You are the deployment prompt.",
        f"{SUMMARY_PREAMBLE}\n\nSUMMARY ONE",
        "second question",
        "second answer",
    ]
    # A newer summary replaces the older one; an edit that deletes it brings the older back.
    newest = add_summary(session, chat, "SUMMARY TWO", boundary=reply.id or 0)
    assert "SUMMARY ONE" not in str(prompt_texts(session, chat))
    newest.deleted = True
    session.flush()
    assert prompt_texts(session, chat)[1] == f"{SUMMARY_PREAMBLE}\n\nSUMMARY ONE"


def test_a_summary_with_nothing_after_it_is_followed_by_a_request_to_continue(
    session: Session, chat: Chat
) -> None:
    add(session, chat, MessageRole.ASSISTANT, "calling a tool", input_tokens=900)
    tool = add(session, chat, MessageRole.TOOL, "tool output")
    add_summary(session, chat, "MID TURN", boundary=tool.id or 0)
    messages = to_llm_messages(load_prompt_rows(session, chat.id), workspace_line="No workspace.")
    assert messages == [
        {"role": "system", "content": "You are the deployment prompt."},
        {"role": "system", "content": f"{SUMMARY_PREAMBLE}\n\nMID TURN"},
        {"role": "system", "content": "No workspace."},
        {"role": "user", "content": CONTINUE_FROM_SUMMARY},
    ]


def due(session: Session, chat: Chat, config: ChatModelConfig) -> CompactionPlan | None:
    assert chat.id is not None
    return compaction_due(
        session, chat.id, threshold=config.compression_threshold, limit=config.context_limit
    )


def test_compaction_is_due_only_past_the_threshold_and_once_per_boundary(
    session: Session, chat: Chat, config: ChatModelConfig
) -> None:
    reply = add(session, chat, MessageRole.ASSISTANT, "answer", input_tokens=650, output_tokens=50)
    assert due(session, chat, config) is None  # exactly 70 %
    reply.output_tokens = 51
    session.flush()
    add(session, chat, MessageRole.USER, "a later question")
    plan = due(session, chat, config)
    assert plan is not None
    assert (plan.boundary_id, plan.context_tokens, plan.threshold_percent) == (reply.id, 701, 70)
    assert plan.transcript == "user: first question\n\nassistant: answer"
    config.compression_threshold = 0  # off
    assert due(session, chat, config) is None
    config.compression_threshold = 70

    add_summary(session, chat, "SUMMARY", boundary=plan.boundary_id)
    assert due(session, chat, config) is None  # that usage is summarised
    named = {"tool_call_id": "c1", "tool_name": "execute"}
    call = {"type": "tool-call", **named, "args": {"cmd": "ls"}}
    chat_rules.add_message(session, chat, MessageRole.ASSISTANT, [call], input_tokens=800)
    result = {"type": "tool-result", **named, "result": "x" * 3000}
    last = chat_rules.add_message(session, chat, MessageRole.TOOL, [result])
    plan = due(session, chat, config)
    assert plan is not None and plan.boundary_id == last.id
    blocks = plan.transcript.split("\n\n")
    assert blocks[0] == "[summary of the conversation before this point]\nSUMMARY"
    assert blocks[1:3] == ["user: a later question", 'assistant: [called execute {"cmd":"ls"}]']
    assert blocks[3] == f"[result of execute] {'x' * 2000}… [3000 chars]"
