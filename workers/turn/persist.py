"""The persist phase of a step: write the assistant message (and record its tool calls) and
decide what the chat does next — continue after tools, wait for a client, promote a queued
message, or go idle — in one transaction.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, select

from agentfarm import metrics
from agentfarm.chat_stream import events as ev
from agentfarm.integrations import webpush as push
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer
from models import db
from models.chat import rules as chat_rules
from models.chat import transitions
from models.chat.tables import Chat, ChatMessage
from models.chat.wire import message_json, queued_json
from models.enums import ChatStatus, MessageRole
from models.providers.costs import cost_micros
from workers.runtime import WorkerRuntime
from workers.tools import calls as tool_calls
from workers.tools import toolset
from workers.turn.stream_parts import StepOutput
from workers.turn.types import StepResult, TakenStep

log = logging.getLogger("agentfarm.step")


def persist_step(
    rt: WorkerRuntime, taken: TakenStep, output: StepOutput, *, runtime_ms: int
) -> StepResult:
    """Write the step and decide what the chat does next, in one transaction."""
    published: list[dict[str, Any]] = []
    watch: dict[str, Any] | None = None
    with db.session_scope() as session:
        chat = session.exec(select(Chat).where(Chat.id == taken.chat_id).with_for_update()).first()
        if chat is None or chat.generation != taken.generation:
            rt.events.clear_step(taken.chat_id)
            return StepResult("abandoned", detail="generation moved on")
        held = chat.status == ChatStatus.RUNNING and chat.worker_id == rt.worker_id
        interrupted = chat.status != ChatStatus.RUNNING
        if not held and not interrupted:
            rt.events.clear_step(taken.chat_id)
            return StepResult("abandoned", detail="lease lost")
        rows = _insert_step_rows(session, chat, taken, output, runtime_ms, interrupted)
        if rows is None:
            return StepResult("duplicate")
        published.extend(ev.message_event(chat.id, message_json(m)) for m in rows)
        next_generation = _decide_next(session, chat, taken, output, held, published)
        if held and chat.status == ChatStatus.WAITING:
            # Web push, after commit (the take already asked whether the owner subscribed).
            push.defer_notification(session, chat, chat.status, subscribed=taken.owner_has_push)
        if held or next_generation is not None:
            # This step changed the status (an interrupted run was already announced as
            # waiting by the interrupt; the stream repeats it after the partial, watch does not).
            watch = ev.watch_chat(chat)
        if next_generation is not None:
            defer(session, catalog.CHAT_STEP.message(str(chat.id), next_generation, 1))
    if published:
        rt.events.publish(taken.chat_id, *published, watch=watch)
    for event in published:
        if event["type"] == "action_required" and watch is not None:
            rt.events.watch(
                "action_required", watch, tool_calls=event["action_required"]["tool_calls"]
            )
    count_usage(taken, output)
    return StepResult("persisted", detail="stopped" if output.stopped else "")


def count_usage(taken: TakenStep, output: StepOutput) -> None:
    """Count a model call's tokens and cost in the metrics."""
    model = taken.model.model
    for direction, key in (("input", "input_tokens"), ("output", "output_tokens")):
        if output.usage.get(key):
            metrics.LLM_TOKENS.labels(model, direction).inc(output.usage[key])
    cost = cost_micros(taken.options, output.usage) if output.usage else None
    if cost:
        metrics.LLM_COST.labels(model).inc(cost)


def _insert_step_rows(
    session: Session,
    chat: Chat,
    taken: TakenStep,
    output: StepOutput,
    runtime_ms: int,
    interrupted: bool,
) -> list[ChatMessage] | None:
    """Insert the assistant message and tool results; None if this step was already written."""
    if not output.has_content():
        return []
    calls = [] if interrupted or output.stopped else output.tool_calls
    for call in calls:
        call.id = call.id or f"call_{uuid.uuid4().hex[:24]}"
    content = _assistant_parts(output, calls, taken.mcp_tools)
    usage = output.usage
    values = {
        "chat_id": chat.id,
        "role": MessageRole.ASSISTANT,
        "content": content,
        "model_config_id": taken.model_config_id,
        "step_key": taken.step_key,
        "context_limit": taken.model.context_limit,
        "runtime_ms": runtime_ms,
        "total_cost_micros": cost_micros(taken.options, usage) if usage else None,
        "provider_response_id": output.provider_response_id,
        **{k: (v or None) for k, v in usage.items()},
    }
    inserted = session.scalars(
        pg_insert(ChatMessage)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["chat_id", "step_key"], index_where=sa.text("step_key IS NOT NULL")
        )
        .returning(ChatMessage)
    ).first()
    if inserted is None:
        log.info("step already persisted", extra={"chat_id": str(chat.id)})
        return None
    chat.last_model_config_id = taken.model_config_id
    if calls:
        tool_calls.record_calls(
            session,
            chat,
            step_key=taken.step_key,
            calls=calls,
            workspace_tools=toolset.workspace_tool_names() | taken.workspace_mcp_tools,
            client_tools=taken.client_tools,
            mcp_servers=taken.mcp_tools,
        )
    return [inserted]


def _assistant_parts(
    output: StepOutput, calls: list[Any], mcp_tools: dict[str, uuid.UUID]
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if output.reasoning:
        parts.append({"type": "reasoning", "text": output.reasoning})
    if output.text:
        parts.append({"type": "text", "text": output.text})
    for call in calls:
        part = {
            "type": "tool-call",
            "tool_call_id": call.id,
            "tool_name": call.name,
            "args": call.parsed_args(),
        }
        if call.name in mcp_tools:  # a tool of an admin MCP server (§4.1)
            part["mcp_server_config_id"] = str(mcp_tools[call.name])
        parts.append(part)
    return parts


def _decide_next(
    session: Session,
    chat: Chat,
    taken: TakenStep,
    output: StepOutput,
    held: bool,
    published: list[dict[str, Any]],
) -> int | None:
    """Continue, promote a queued message, or go idle. Returns the generation to send, if any."""
    if held and output.tool_calls and not output.stopped:
        # Between steps: still running, no worker holds it; the tool calls run as their own
        # messages and the last one to finish sends the next step.
        transitions.release_between_steps(chat)
        client_calls = [c for c in output.tool_calls if c.name in taken.client_tools]
        if client_calls:
            # The client runs these (unsafe_dynamic_tools) and posts the results.
            transitions.require_action(chat)
            published.append(ev.action_required_event(chat.id, client_calls))
            published.append(ev.status_event(chat.id, ChatStatus.REQUIRES_ACTION))
        return None
    promote_id = chat.interrupt_promote_id
    if held or promote_id is not None:
        chat.interrupt_promote_id = None
        promoted = chat_rules.promote_queued(session, chat, promote_id)
        if promoted is not None:
            queue = [queued_json(q) for q in chat_rules.queued_messages(session, chat.id)]
            published += ev.new_run_events(chat.id, message_json(promoted), queue)
            return chat.generation
    if held:
        transitions.end_turn(chat)
    # Interrupted runs were already set to waiting by the interrupt; say so after the partial.
    published.append(ev.status_event(chat.id, chat.status))
    return None
