"""The middle tier: the turn's phases and the chat state machine called directly, on the real
test database and Redis and the scripted model over HTTP, with an in-process broker (Dramatiq's
StubBroker) standing in for the queue. A regression in take / prompt / model call / persist /
fan-in fails here as an assertion on rows and messages, not as an e2e timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker
from redis import Redis
from sqlmodel import Session, select

from agentfarm.chat_stream.events import stream_key
from agentfarm.chat_stream.writer import ChatEventWriter
from agentfarm.settings import get_settings
from agentfarm.tasks.queues import ALL_QUEUES
from models import db
from models.chat import rules as chat_rules
from models.chat import transitions
from models.chat.tables import Chat, ChatMessage
from models.crypto import SecretBox
from models.enums import ChatStatus, MessageRole
from models.identity import bootstrap
from models.identity.tables import Organization
from models.providers.tables import ChatModelConfig
from models.workspaces.tables import ChatToolCall, ToolCallStatus
from tests.fixtures.db_session import add_model_config
from workers.runtime import LeaseRegistry, WorkerRuntime
from workers.tools import calls as tool_calls
from workers.tools.dispatch import execute_call
from workers.turn.run import run_step


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    """An in-process broker as Dramatiq's global one: the outbox sends to it on commit."""
    previous = dramatiq.broker.global_broker
    stub = StubBroker()
    for queue in ALL_QUEUES:
        stub.declare_queue(queue)
    dramatiq.set_broker(stub)
    try:
        yield stub
    finally:
        if previous is not None:
            dramatiq.set_broker(previous)


@pytest.fixture
def rt(farm_env: dict[str, str], broker: StubBroker) -> Iterator[WorkerRuntime]:
    """A worker runtime of this process (no heartbeat thread: nothing runs long here)."""
    settings = get_settings()
    redis = Redis.from_url(farm_env["AGENTFARM_REDIS_URL"])
    worker_id = uuid.uuid4()
    yield WorkerRuntime(
        worker_id=worker_id,
        settings=settings,
        redis=redis,
        events=ChatEventWriter(redis),
        secrets=SecretBox(settings.encryption_key_list),
        leases=LeaseRegistry(worker_id, redis, settings.heartbeat_interval_s, []),
    )
    redis.close()


def new_chat(text: str) -> uuid.UUID:
    """A committed pending root chat with one user message, on the scripted model."""
    with db.session_scope() as session:
        config = session.exec(
            select(ChatModelConfig).where(ChatModelConfig.model == "scripted")
        ).first()
        assert config is not None
        org = Organization(name=f"org-{uuid.uuid4().hex[:8]}", display_name="org")
        session.add(org)
        session.flush()
        owner = bootstrap.create_user(
            session, username=f"u-{uuid.uuid4().hex[:8]}", organization=org
        )
        chat, _ = chat_rules.create_chat(
            session,
            owner=owner,
            organization_id=org.id,
            parts=[{"type": "text", "text": text}],
            model_config=config,
            deployment_prompt="",
        )
        return chat.id


def load(chat_id: uuid.UUID) -> Chat:
    with db.session_scope() as session:
        chat = session.get(Chat, chat_id)
        assert chat is not None
        session.expunge(chat)
        return chat


def messages(chat_id: uuid.UUID) -> list[ChatMessage]:
    with db.session_scope() as session:
        rows = session.exec(
            select(ChatMessage).where(ChatMessage.chat_id == chat_id).order_by(ChatMessage.id)  # type: ignore[arg-type]
        ).all()
        session.expunge_all()
        return list(rows)


def sent(broker: StubBroker, queue: str) -> list[dramatiq.Message[Any]]:
    """Messages waiting on ``queue`` of the stub broker, in order (taken off the queue)."""
    out = []
    q = broker.queues[queue]
    while not q.empty():
        out.append(dramatiq.Message.decode(q.get_nowait()))
    return out


def text_of(message: ChatMessage) -> str:
    return "".join(p.get("text", "") for p in message.content or [] if p.get("type") == "text")


# ---------------------------------------------------------------- the turn


def test_a_one_step_turn_persists_the_reply_and_ends_waiting(
    rt: WorkerRuntime, broker: StubBroker
) -> None:
    chat_id = new_chat("[[reply: hello from the middle tier]]")
    generation = load(chat_id).generation

    result = run_step(rt, chat_id=chat_id, generation=generation, attempt=1)

    assert result.outcome == "persisted"
    chat = load(chat_id)
    assert chat.status == ChatStatus.WAITING and chat.worker_id is None
    assistant = [m for m in messages(chat_id) if m.role == MessageRole.ASSISTANT]
    assert [text_of(m) for m in assistant] == ["hello from the middle tier"]
    assert assistant[0].step_key == f"{generation}:1"
    assert sent(broker, "chat") == []  # nothing more to run
    events = [e for e in rt.redis.xrange(stream_key(chat_id))]
    assert events, "the step's parts and message were published to the chat stream"


def test_a_stale_wakeup_does_nothing(rt: WorkerRuntime, broker: StubBroker) -> None:
    chat_id = new_chat("[[reply: once]]")
    generation = load(chat_id).generation
    assert run_step(rt, chat_id=chat_id, generation=generation, attempt=1).outcome == "persisted"

    again = run_step(rt, chat_id=chat_id, generation=generation, attempt=1)

    assert again.outcome == "dropped"
    assert len([m for m in messages(chat_id) if m.role == MessageRole.ASSISTANT]) == 1


def test_a_tool_turn_fans_out_runs_the_call_fans_in_and_continues(
    rt: WorkerRuntime, broker: StubBroker
) -> None:
    chat_id = new_chat("[[tool: list_templates {}]] [[after_tools: done listing]]")
    generation = load(chat_id).generation

    first = run_step(rt, chat_id=chat_id, generation=generation, attempt=1)

    assert first.outcome == "persisted"
    chat = load(chat_id)
    assert transitions.between_steps(chat)  # running, held by no worker
    (run,) = sent(broker, "default")
    assert run.actor_name == "tool.run"
    row = tool_calls.claim(rt, uuid.UUID(run.args[0]))
    assert row is not None and row.tool_name == "list_templates"

    result, is_error = execute_call(rt, row)
    assert tool_calls.complete(rt, row.id, result, is_error)

    (step,) = sent(broker, "chat")
    assert (step.actor_name, step.args) == ("chat.step", (str(chat_id), generation, 1))
    tool_rows = [m for m in messages(chat_id) if m.role == MessageRole.TOOL]
    assert [m.step_key for m in tool_rows] == [f"{generation}:1:tool:{row.tool_call_id}"]
    # A second fan-in of the same step (a redelivery, recovery) writes nothing twice.
    assert tool_calls.finish_step(rt, chat_id, row.step_key) == "already written"

    last = run_step(rt, chat_id=chat_id, generation=generation, attempt=1)

    assert last.outcome == "persisted"
    assert load(chat_id).status == ChatStatus.WAITING
    assistant = [m for m in messages(chat_id) if m.role == MessageRole.ASSISTANT]
    assert text_of(assistant[-1]) == "done listing"


def test_a_client_tool_waits_for_results_and_the_fan_in_continues_the_turn(
    rt: WorkerRuntime, broker: StubBroker
) -> None:
    chat_id = new_chat('[[tool: lookup {"q": 1}]] [[after_tools: thanks]]')
    with db.session_scope() as session:
        chat = session.get(Chat, chat_id)
        assert chat is not None
        chat.dynamic_tools = [{"name": "lookup", "description": "client side"}]
    generation = load(chat_id).generation

    assert run_step(rt, chat_id=chat_id, generation=generation, attempt=1).outcome == "persisted"
    assert load(chat_id).status == ChatStatus.REQUIRES_ACTION
    assert sent(broker, "default") == []  # the client runs it, not a worker

    # What POST /tool-results does: store the result, resume, defer the fan-in.
    with db.session_scope() as session:
        call = session.exec(select(ChatToolCall).where(ChatToolCall.chat_id == chat_id)).one()
        assert call.status == ToolCallStatus.CLIENT
        call.status, call.result = ToolCallStatus.DONE, {"answer": 42}
        chat = session.get(Chat, chat_id)
        assert chat is not None
        transitions.resume_with_client_results(chat)
        step_key = call.step_key

    assert tool_calls.finish_step(rt, chat_id, step_key) == "continued"
    (step,) = sent(broker, "chat")
    assert step.actor_name == "chat.step"
    assert run_step(rt, chat_id=chat_id, generation=generation, attempt=1).outcome == "persisted"
    assert load(chat_id).status == ChatStatus.WAITING


# ---------------------------------------------------------------- the state machine


def test_take_and_release_follow_the_generation(session: Session) -> None:
    worker = uuid.uuid4()
    chat = _committed_chat(session, ChatStatus.PENDING, None)
    assert transitions.can_take(chat)
    assert transitions.take_row(session, chat.id, chat.generation + 1, worker) is None

    taken = transitions.take_row(session, chat.id, chat.generation, worker)

    assert taken is not None
    view, extras = taken
    assert extras["fresh"] is True and extras["steps_before"] == 0
    assert view.status == ChatStatus.RUNNING and view.worker_id == worker
    session.refresh(chat)
    assert transitions.held_by_worker(chat) and not transitions.can_take(chat)
    assert transitions.take_row(session, chat.id, chat.generation, worker) is None  # held
    transitions.release_between_steps(chat)
    session.flush()
    assert transitions.between_steps(chat) and transitions.can_take(chat)
    again = transitions.take_row(session, chat.id, chat.generation, worker)
    assert again is not None and again[1]["fresh"] is False  # the same run goes on
    session.refresh(chat)

    transitions.require_action(chat)
    assert chat.status == ChatStatus.REQUIRES_ACTION and not transitions.can_take(chat)
    assert transitions.interrupt(chat) is True
    assert chat.status == ChatStatus.WAITING and chat.worker_id is None
    assert transitions.interrupt(chat) is False  # nothing left to stop

    before = chat.generation
    transitions.mark_pending(chat)
    assert chat.generation == before + 1
    assert transitions.interrupt(chat) is False  # a pending chat stays pending (Coder)
    assert transitions.interrupt(chat, stop_pending=True) is True


def _committed_chat(session: Session, status: ChatStatus, worker: uuid.UUID | None) -> Chat:
    org = Organization(name=f"org-{uuid.uuid4().hex[:8]}", display_name="org")
    session.add(org)
    session.flush()
    owner = bootstrap.create_user(session, username=f"u-{uuid.uuid4().hex[:8]}", organization=org)
    config = add_model_config(session, f"m-{uuid.uuid4().hex[:8]}")
    chat = Chat(
        organization_id=org.id, owner_id=owner.id, title="t", last_model_config_id=config.id
    )
    transitions.mark_pending(chat)
    chat.status, chat.worker_id = status, worker
    session.add(chat)
    session.flush()
    return chat


def test_fail_run_only_fails_the_run_it_belongs_to(session: Session) -> None:
    worker = uuid.uuid4()
    chat = _committed_chat(session, ChatStatus.RUNNING, worker)

    assert transitions.fail_run(session, chat.id, chat.generation + 1, worker, "x") is None
    assert transitions.fail_run(session, chat.id, chat.generation, uuid.uuid4(), "x") is None
    row = transitions.fail_run(session, chat.id, chat.generation, worker, "model said no")

    assert row is not None and row.id == chat.id
    session.refresh(chat)
    assert chat.status == ChatStatus.ERROR and chat.last_error == "model said no"


def test_release_lease_needs_the_holder(session: Session) -> None:
    worker = uuid.uuid4()
    chat = _committed_chat(session, ChatStatus.RUNNING, worker)

    assert transitions.release_lease(session, chat.id, chat.generation, uuid.uuid4()) is False
    assert transitions.release_lease(session, chat.id, chat.generation, worker) is True
    session.refresh(chat)
    assert transitions.between_steps(chat)


def test_restart_stale_skips_chats_whose_tool_results_are_not_written_back(
    session: Session,
) -> None:
    dead = _committed_chat(session, ChatStatus.RUNNING, uuid.uuid4())
    unfanned = _committed_chat(session, ChatStatus.RUNNING, None)
    session.add(
        ChatToolCall(
            chat_id=unfanned.id,
            generation=unfanned.generation,
            step_key=f"{unfanned.generation}:1",
            position=0,
            tool_call_id="call-1",
            tool_name="list_templates",
            args={},
            status=ToolCallStatus.DONE,
        )
    )
    session.execute(
        sa.text("UPDATE chats SET heartbeat_at = now() - interval '1 hour' WHERE id = ANY(:ids)"),
        {"ids": [dead.id, unfanned.id]},
    )

    restarted = {row.id for row in transitions.restart_stale(session, 60.0)}

    assert dead.id in restarted  # its worker vanished: a new generation, pending
    assert unfanned.id not in restarted  # recovery re-sends its fan-in instead
