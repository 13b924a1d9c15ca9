"""Conversation compaction through the real farm: a step whose reported usage passes the model's
compression threshold makes the next step summarise the conversation first (reference §3.4).

The chats here use a model config with a 1,000-token context (threshold 70 %), and
``[[usage: prompt=P completion=C]]`` makes the scripted model report the tokens a test needs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from agentfarm.scripted_llm import SUMMARY_MARKER, TITLE_MARKER
from agentfarm.settings import get_settings
from models import db
from models.chat.tables import ChatMessage
from models.identity.bootstrap import SCRIPTED_MODEL_OPTIONS
from models.providers.tables import ChatModelConfig
from tests.fixtures.farm import Caller, Farm, sse_events
from workers.turn.prompt import CONTINUE_FROM_SUMMARY, SUMMARY_PREAMBLE

CHATS = "/api/experimental/chats"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def small_model(farm: Farm) -> Iterator[str]:
    """A model config with a 1,000-token context; soft-deleted afterwards, so the catalog the
    other tests see is unchanged."""
    with db.session_scope() as session:
        config = ChatModelConfig(
            provider="openai-compat",
            model="scripted",
            display_name="Scripted, small context",
            context_limit=1000,
            options=SCRIPTED_MODEL_OPTIONS,
        )
        session.add(config)
        session.flush()
        config_id = config.id
    yield str(config_id)
    with db.session_scope() as session:
        session.execute(
            sa.update(ChatModelConfig)
            .where(ChatModelConfig.id == config_id)  # type: ignore[arg-type]
            .values(deleted=True, enabled=False, deleted_at=sa.func.now())
        )


def stored(chat_id: str) -> list[ChatMessage]:
    with db.session_scope() as session:
        return list(
            session.exec(
                select(ChatMessage)
                .where(ChatMessage.chat_id == uuid.UUID(chat_id))
                .order_by(ChatMessage.id)  # type: ignore[arg-type]
            )
        )


def compressed(chat_id: str) -> list[ChatMessage]:
    return [m for m in stored(chat_id) if m.compressed]


def requests_since(farm: Farm, since: int, tag: str) -> tuple[list[Any], list[Any]]:
    """(step requests, summary requests) of this test's chat since ``since``."""
    mine = [r for r in farm.llm.requests[since:] if tag in json.dumps(r)]
    mine = [r for r in mine if TITLE_MARKER not in json.dumps(r)]
    summaries = [r for r in mine if SUMMARY_MARKER in r["messages"][0]["content"]]
    return [r for r in mine if r not in summaries], summaries


def test_passing_the_threshold_compacts_before_the_next_step(
    farm: Farm, caller: Caller, small_model: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    summary = f"The user plans a billing migration ({tag}); nothing has run yet."
    first = f"Plan the billing migration {tag}. [[usage: prompt=900 completion=10]] "
    chat = caller.create_chat(f"{first}[[summary: {summary}]]", model_config_id=small_model)
    caller.wait_status(chat["id"], "waiting")
    assert compressed(chat["id"]) == []  # the step after the one that crossed compacts

    since = len(farm.llm.requests)
    caller.send(chat["id"], f"What comes next {tag}?")
    caller.wait_status(chat["id"], "waiting")
    rows = stored(chat["id"])
    first_reply = next(m for m in rows if m.role == "assistant")
    summary_row, call_row, result_row = [m for m in rows if m.compressed]
    assert [(m.role, m.visibility) for m in (summary_row, call_row, result_row)] == [
        ("system", "model"),
        ("assistant", "user"),
        ("tool", "both"),
    ]
    # The boundary is the first turn's reply: the second user message is kept verbatim.
    assert summary_row.content == [
        {"type": "text", "text": summary, "compaction_boundary_id": first_reply.id}
    ]
    (call,) = call_row.content
    call_id = call["tool_call_id"]
    assert call_id.startswith("chat_summarized_") and uuid.UUID(call_id[16:])
    assert call == {
        "type": "tool-call",
        "tool_call_id": call_id,
        "tool_name": "chat_summarized",
        "args": {"source": "automatic", "threshold_percent": 70},
    }
    result = {
        "summary": summary,
        "source": "automatic",
        "threshold_percent": 70,
        "usage_percent": 91.0,
        "context_tokens": 910,
        "context_limit_tokens": 1000,
    }
    named = {"tool_call_id": call_id, "tool_name": "chat_summarized"}
    assert result_row.content == [{"type": "tool-result", **named, "result": result}]
    # The summary call is priced like any model call; its tokens are not shown as usage.
    assert call_row.total_cost_micros and call_row.input_tokens is None

    # Coder's clients see the call and its result; the summary itself is model-only.
    shown = list(reversed(caller.messages(chat["id"])["messages"]))
    roles = ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert [m["role"] for m in shown] == roles
    assert set(shown[3]) == {"id", "chat_id", "created_at", "role", "model_config_id", "content"}
    assert shown[3]["content"] == call_row.content
    assert set(shown[4]) == {"id", "chat_id", "created_at", "role", "content"}
    assert shown[4]["content"] == result_row.content
    events = sse_events(
        farm.base_url,
        caller.token,
        chat["id"],
        last_event_id="0-0",
        until=lambda e: e["type"] == "message" and e["message"]["role"] == "tool",
    )
    streamed = [e["message_part"]["part"] for _, e in events if e["type"] == "message_part"]
    args_delta = '{"source": "automatic", "threshold_percent": 70}'
    assert {"type": "tool-call", **named, "args_delta": args_delta} in streamed  # "Summarizing..."
    messages = [e["message"] for _, e in events if e["type"] == "message"]
    assert [m["id"] for m in messages[-2:]] == [shown[3]["id"], shown[4]["id"]]

    steps, summaries = requests_since(farm, since, tag)
    (summary_request,) = summaries
    assert "tools" not in summary_request
    transcript = summary_request["messages"][1]["content"]
    assert f"Plan the billing migration {tag}" in transcript and "What comes next" not in transcript
    (step,) = steps
    contents = [(m["role"], m["content"]) for m in step["messages"]]
    assert contents[0] == ("system", get_settings().system_prompt)
    assert contents[1] == ("system", f"{SUMMARY_PREAMBLE}\n\n{summary}")
    assert contents[-1] == ("user", f"What comes next {tag}?")
    assert "Plan the billing migration" not in json.dumps(step)

    # Later turns keep starting from the summary, with everything after its boundary.
    since = len(farm.llm.requests)
    caller.send(chat["id"], f"And after that {tag}?")
    caller.wait_status(chat["id"], "waiting")
    assert len(compressed(chat["id"])) == 3
    (step,), summaries = requests_since(farm, since, tag)
    assert summaries == []
    texts = [m["content"] for m in step["messages"]]
    assert texts[1] == f"{SUMMARY_PREAMBLE}\n\n{summary}"
    assert f"What comes next {tag}?" in texts and f"And after that {tag}?" == texts[-1]
    assert "Plan the billing migration" not in json.dumps(step)


def test_usage_at_the_threshold_does_not_compact(
    farm: Farm, caller: Caller, small_model: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    chat = caller.create_chat(
        f"Hello {tag} [[usage: prompt=600 completion=100]]", model_config_id=small_model
    )
    caller.wait_status(chat["id"], "waiting")
    since = len(farm.llm.requests)
    caller.send(chat["id"], f"Again {tag}")
    caller.wait_status(chat["id"], "waiting")
    assert compressed(chat["id"]) == []  # 70 % is the threshold, not past it
    (step,), summaries = requests_since(farm, since, tag)
    assert summaries == [] and f"Hello {tag}" in json.dumps(step)


def test_a_summary_that_keeps_failing_leaves_the_turn_working(
    farm: Farm, caller: Caller, small_model: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    text = f"Start {tag} [[usage: prompt=900 completion=10]] [[summary_fail: 500 times=50]]"
    chat = caller.create_chat(text, model_config_id=small_model)
    caller.wait_status(chat["id"], "waiting")
    since = len(farm.llm.requests)
    caller.send(chat["id"], f"Next {tag}")
    done = caller.wait_status(chat["id"], "waiting", "error")
    assert done["status"] == "waiting" and done["last_error"] is None
    assert compressed(chat["id"]) == []
    steps, summaries = requests_since(farm, since, tag)
    assert len(summaries) == 4  # one attempt and three retries, all with the same request
    (step,) = steps
    assert f"Start {tag}" in json.dumps(step)  # uncompacted
    reply = [m for m in stored(chat["id"]) if m.role == "assistant"][-1]
    assert reply.content == [{"type": "text", "text": f"You said: Next {tag}"}]


def test_a_summary_that_fails_twice_is_retried(
    farm: Farm, caller: Caller, small_model: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    text = f"Begin {tag} [[usage: prompt=950 completion=0]] [[summary_fail: 503 times=2]]"
    chat = caller.create_chat(text, model_config_id=small_model)
    caller.wait_status(chat["id"], "waiting")
    since = len(farm.llm.requests)
    caller.send(chat["id"], f"Then {tag}")
    caller.wait_status(chat["id"], "waiting")
    _, summaries = requests_since(farm, since, tag)
    assert len(summaries) == 3
    summary_row, _, result_row = compressed(chat["id"])
    expected = f"Summary: user: Begin {tag}"
    assert summary_row.content[0]["text"].startswith(expected)
    assert result_row.content[0]["result"]["usage_percent"] == 95.0


def test_compaction_in_the_middle_of_a_turn(farm: Farm, caller: Caller, small_model: str) -> None:
    """After tool results the summary covers them too, and the step continues from it."""
    tag = uuid.uuid4().hex[:10]
    summary = f"Weather was requested ({tag}); the tool returned 21 degrees."
    text = (
        f'Check the weather {tag} [[tool: get_weather {{"city": "Oslo"}}]] '
        f"[[usage: prompt=900 completion=10]] [[summary: {summary}]]"
    )
    chat = caller.create_chat(text, unsafe_dynamic_tools=[WEATHER], model_config_id=small_model)
    caller.wait_status(chat["id"], "requires_action")
    (call,) = [m for m in stored(chat["id"]) if m.role == "assistant"][0].content
    since = len(farm.llm.requests)
    posted = caller.http.post(
        f"{CHATS}/{chat['id']}/tool-results",
        json={"results": [{"tool_call_id": call["tool_call_id"], "output": {"temp": 21}}]},
    )
    assert posted.status_code == 204, posted.text
    caller.wait_status(chat["id"], "waiting")
    rows = stored(chat["id"])
    tool_result = next(m for m in rows if m.role == "tool" and not m.compressed)
    summary_row = next(m for m in rows if m.compressed)
    assert summary_row.content[0]["compaction_boundary_id"] == tool_result.id
    (step,), (summary_request,) = requests_since(farm, since, tag)
    assert '[result of get_weather] {"temp":21}' in summary_request["messages"][1]["content"]
    contents = [(m["role"], m["content"]) for m in step["messages"]]
    assert contents[1] == ("system", f"{SUMMARY_PREAMBLE}\n\n{summary}")
    assert contents[-1] == ("user", CONTINUE_FROM_SUMMARY)
    assert "Oslo" not in json.dumps(step["messages"])
    assert [str(m.role) for m in stored(chat["id"])][-1] == "assistant"


def test_an_interrupt_abandons_the_compaction_and_promotes_the_message(
    farm: Farm, caller: Caller, small_model: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    summary = f"Earlier work ({tag}) was summarised."
    text = (
        f"Start {tag} [[usage: prompt=900 completion=10]] "
        f"[[summary: {summary}]] [[summary_stall_ms: 1500]]"
    )
    chat = caller.create_chat(text, model_config_id=small_model)
    caller.wait_status(chat["id"], "waiting")
    since = len(farm.llm.requests)
    caller.send(chat["id"], f"Slow {tag}")
    deadline = time.monotonic() + 20
    while not requests_since(farm, since, tag)[1] and time.monotonic() < deadline:
        time.sleep(0.02)
    # The chat is held while the summary is written: a message with interrupt is queued and
    # stops the compaction, which ends the step like an interrupted one and promotes it.
    sent = caller.send(chat["id"], f"Switch {tag}", busy_behavior="interrupt")
    assert sent["queued"] is True
    deadline = time.monotonic() + 30
    while not compressed(chat["id"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    caller.wait_status(chat["id"], "waiting")
    rows = [m for m in stored(chat["id"]) if m.role != "system"]
    assert [(str(m.role), m.compressed) for m in rows] == [
        ("user", False),
        ("assistant", False),
        ("user", False),  # interrupted while compacting: no reply of its own
        ("user", False),  # promoted; its step compacted again, then answered
        ("assistant", True),
        ("tool", True),
        ("assistant", False),
    ]
    steps, summaries = requests_since(farm, since, tag)
    assert len(summaries) == 2  # the abandoned one and the one that was stored
    (step,) = steps
    texts = [m["content"] for m in step["messages"]]
    assert texts[1] == f"{SUMMARY_PREAMBLE}\n\n{summary}"
    assert texts[-2:] == [f"Slow {tag}", f"Switch {tag}"]
    assert caller.messages(chat["id"])["queued_messages"] == []
