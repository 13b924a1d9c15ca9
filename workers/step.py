"""One LLM step of a chat: take the chat, stream the model, persist the step, decide what next.

A queue message is only a wake-up: the step re-reads the chat and does nothing unless the chat
still wants exactly this step (same generation; pending, or running between steps with no
worker holding it). The model is streamed outside any transaction; each database phase is a
short transaction of its own, so a slow model never holds a pooled connection.

Idempotency: the assistant message of step ``n`` of generation ``g`` carries the unique key
``"{g}:{n}"`` (tool results ``"{g}:{n}:tool:{call id}"``); a second writer of the same step
conflicts and abandons its output.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, select

from agentfarm import metrics
from models import chat_rules, db
from models.base import utcnow
from models.chats import Chat, ChatMessage
from models.costs import cost_micros
from models.crypto import SecretsUnavailable
from models.enums import ChatStatus, ErrorKind, MessageRole
from models.providers import ChatModelConfig, ChatProvider
from models.wire import message_json, queued_json
from models.workspaces import Workspace, WorkspaceStatus
from workers import events as ev
from workers import hosts, tool_calls, toolset
from workers.broker import get_broker
from workers.llm import LLMError, ResolvedModel, StepOutput, StreamHooks, stream_step
from workers.prompt import load_prompt_files, load_prompt_rows, to_llm_messages
from workers.runtime import Lease, WorkerRuntime

log = logging.getLogger("agentfarm.step")


@dataclass
class TakenStep:
    """What the take phase hands to the model phase."""

    chat_id: uuid.UUID
    generation: int
    step_key: str
    fresh_run: bool
    model: ResolvedModel
    model_config_id: uuid.UUID
    options: dict[str, Any]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    # Set when the workspace's AGENTS.md and skills must be read (on this host) first.
    context_host: str | None = None
    # Client-declared dynamic tools: their calls put the chat in requires_action.
    client_tools: frozenset[str] = frozenset()
    # The chat as taken (running), for the owner's watch stream.
    watch: dict[str, Any] | None = None


@dataclass
class StepResult:
    """What happened, for the actor's log line and for tests."""

    outcome: str
    retry_delay_ms: int | None = None
    detail: str = ""
    model: str | None = None


class StepFailed(Exception):
    """A terminal failure before the model was called (configuration, step limit)."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.CONFIG):
        super().__init__(message)
        self.message = message
        self.kind = kind


def run_step(rt: WorkerRuntime, *, chat_id: uuid.UUID, generation: int, attempt: int) -> StepResult:
    """Run one step of a chat if the chat still wants it."""
    try:
        with db.session_scope() as session:
            taken = take_chat(session, rt, chat_id=chat_id, generation=generation)
    except StepFailed as exc:
        fail_run(rt, chat_id, generation, LLMError(exc.kind, exc.message, retryable=False))
        return StepResult("failed", detail=exc.message)
    if taken is None:
        return StepResult("dropped")
    if taken.fresh_run and attempt == 1:
        rt.events.publish(chat_id, ev.status_event(chat_id, ChatStatus.RUNNING), watch=taken.watch)
    if taken.context_host is not None:
        return _inject_context_first(rt, taken)
    lease = rt.leases.acquire(chat_id)
    started = time.monotonic()
    try:
        output = _call_model(rt, taken, lease)
    except LLMError as error:
        result = _handle_llm_error(rt, taken, error, attempt)
    else:
        runtime_ms = int((time.monotonic() - started) * 1000)
        if output.stopped and lease.reason != "interrupted":
            rt.events.clear_step(chat_id)
            result = StepResult("abandoned", detail=lease.reason)
        else:
            result = persist_step(rt, taken, output, runtime_ms=runtime_ms)
    finally:
        rt.leases.release(lease)
    result.model = taken.model.model
    return result


# ---------------------------------------------------------------- take


def take_chat(
    session: Session, rt: WorkerRuntime, *, chat_id: uuid.UUID, generation: int
) -> TakenStep | None:
    """Compare-and-set the chat to running under this worker; load what the step needs."""
    chat = session.exec(select(Chat).where(Chat.id == chat_id).with_for_update()).first()
    if chat is None or chat.generation != generation:
        log.info("step dropped: stale generation", extra={"chat_id": str(chat_id)})
        return None
    between_steps = chat.status == ChatStatus.RUNNING and chat.worker_id is None
    if chat.status != ChatStatus.PENDING and not between_steps:
        log.info("step dropped: chat is %s", chat.status, extra={"chat_id": str(chat_id)})
        return None
    now = utcnow()
    fresh = chat.status == ChatStatus.PENDING
    chat.status = ChatStatus.RUNNING
    chat.worker_id = rt.worker_id
    chat.heartbeat_at = now
    chat.updated_at = now
    if fresh:
        chat.started_at = now
    step_no = _steps_in_generation(session, chat_id, generation) + 1
    if step_no > rt.settings.max_chat_steps:
        raise StepFailed(f"maximum steps per turn ({rt.settings.max_chat_steps}) exceeded")
    config = _model_config(session, chat)
    model = resolve_model(session, rt, config)
    workspace = session.get(Workspace, chat.workspace_id) if chat.workspace_id else None
    taken = TakenStep(
        chat_id=chat_id,
        generation=generation,
        step_key=f"{generation}:{step_no}",
        fresh_run=fresh,
        model=model,
        model_config_id=config.id,
        options=config.options or {},
        messages=[],
        watch=ev.watch_chat(chat),
    )
    if _needs_context(chat, workspace):
        assert workspace is not None
        taken.context_host = workspace.host
        return taken
    rows = load_prompt_rows(session, chat_id)
    has_skills = any(p.get("type") == "skill" for r in rows for p in r.content or [])
    taken.messages = to_llm_messages(
        rows,
        workspace_line=_workspace_line(workspace),
        files=load_prompt_files(session, rows),
    )
    taken.tools = toolset.offered_tools(
        root_chat=chat.parent_chat_id is None,
        has_skills=has_skills,
        dynamic_tools=chat.dynamic_tools,
    )
    taken.client_tools = toolset.client_tool_names(chat.dynamic_tools) - (
        toolset.PLATFORM_TOOLS | toolset.workspace_tool_names()
    )
    return taken


def _needs_context(chat: Chat, workspace: Workspace | None) -> bool:
    """The first step with a running workspace reads its AGENTS.md and skills (once per
    workspace the chat is bound to)."""
    if workspace is None or workspace.status != WorkspaceStatus.RUNNING:
        return False
    injected = chat.last_injected_context or {}
    return injected.get("workspace_id") != str(workspace.id)


def _workspace_line(workspace: Workspace | None) -> str:
    if workspace is None:
        return (
            "This chat has no workspace yet. Create one with create_workspace (see "
            "list_templates) before using execute, read_file, write_file or edit_files."
        )
    if workspace.status != WorkspaceStatus.RUNNING:
        return (
            f"This chat's workspace {workspace.name} is {workspace.status}; call "
            "start_workspace before using workspace tools."
        )
    return (
        f"This chat is attached to workspace {workspace.name}; its files are in "
        f"{workspace.directory} and workspace tools run there."
    )


def _inject_context_first(rt: WorkerRuntime, taken: TakenStep) -> StepResult:
    """Release the chat and let the workspace host read the context, then step again."""
    from workers.actors.workspaces import workspace_context

    assert taken.context_host is not None
    if not release_for_retry(rt, taken):
        return StepResult("abandoned", detail="lease lost before context injection")
    message = workspace_context.message(str(taken.chat_id), taken.generation)
    get_broker().enqueue(message.copy(queue_name=hosts.host_queue(taken.context_host)))
    return StepResult("context", detail=taken.context_host)


def _steps_in_generation(session: Session, chat_id: uuid.UUID, generation: int) -> int:
    return session.exec(
        select(sa.func.count())
        .select_from(ChatMessage)
        .where(
            ChatMessage.chat_id == chat_id,
            ChatMessage.role == MessageRole.ASSISTANT,
            ChatMessage.step_key.like(f"{generation}:%"),  # type: ignore[union-attr]
        )
    ).one()


def _model_config(session: Session, chat: Chat) -> ChatModelConfig:
    config = session.get(ChatModelConfig, chat.last_model_config_id)
    if config is None or config.deleted:
        config = chat_rules.default_model_config(session)
    if config is None:
        raise StepFailed("no default chat model config is available")
    return config


def resolve_model(session: Session, rt: WorkerRuntime, config: ChatModelConfig) -> ResolvedModel:
    provider = session.exec(
        select(ChatProvider).where(ChatProvider.provider == config.provider)
    ).first()
    if provider is None or not provider.enabled:
        raise StepFailed(f"Chat provider {config.provider!r} is not configured or is disabled.")
    api_key: str | None = None
    if provider.api_key:
        try:
            api_key = rt.secrets.decrypt(provider.api_key)
        except SecretsUnavailable as exc:
            raise StepFailed(f"provider key unavailable: {exc}") from exc
    if not api_key and provider.central_api_key_enabled:
        raise StepFailed(f"Provider {config.provider!r} has no API key (missing_api_key).")
    return ResolvedModel(
        provider=config.provider,
        model=config.model,
        api_key=api_key,
        base_url=provider.base_url or None,
        context_limit=config.context_limit,
        options=config.options or {},
    )


# ---------------------------------------------------------------- model


def _call_model(rt: WorkerRuntime, taken: TakenStep, lease: Lease) -> StepOutput:
    first = True

    def on_part(part: dict[str, Any]) -> None:
        nonlocal first
        rt.events.publish_part(taken.chat_id, "assistant", part, first=first)
        first = False

    def set_closer(closer: Any) -> None:
        lease.closer = closer

    max_tokens = int(
        taken.options.get("max_output_tokens") or rt.settings.default_max_output_tokens
    )
    return stream_step(
        taken.model,
        taken.messages,
        tools=taken.tools,
        hooks=StreamHooks(on_part=on_part, should_stop=lease.stop.is_set, set_closer=set_closer),
        first_chunk_timeout=rt.settings.llm_first_chunk_timeout_s,
        max_output_tokens=max_tokens,
    )


def _handle_llm_error(
    rt: WorkerRuntime, taken: TakenStep, error: LLMError, attempt: int
) -> StepResult:
    rt.events.clear_step(taken.chat_id)
    if not error.retryable or attempt >= rt.settings.llm_max_attempts:
        if error.retryable:
            error = LLMError(
                error.kind,
                f"max retry attempts ({rt.settings.llm_max_attempts}) exceeded: {error.message}",
                retryable=False,
                status_code=error.status_code,
                provider=error.provider,
            )
        fail_run(rt, taken.chat_id, taken.generation, error)
        return StepResult("failed", detail=error.message)
    delay_s = min(
        rt.settings.llm_backoff_initial_s * 2 ** (attempt - 1), rt.settings.llm_backoff_max_s
    )
    if not release_for_retry(rt, taken):
        return StepResult("abandoned", detail="lease lost before retry")
    retry = {
        "attempt": attempt,
        "delay_ms": int(delay_s * 1000),
        "error": error.message,
        "kind": str(error.kind),
        "retrying_at": (utcnow() + timedelta(seconds=delay_s)).isoformat().replace("+00:00", "Z"),
    }
    if error.provider:
        retry["provider"] = error.provider
    if error.status_code:
        retry["status_code"] = error.status_code
    rt.events.publish(taken.chat_id, ev.retry_event(taken.chat_id, retry))
    metrics.LLM_RETRIES.labels(taken.model.model, str(error.kind)).inc()
    return StepResult("retry", retry_delay_ms=int(delay_s * 1000), detail=error.message)


def release_for_retry(rt: WorkerRuntime, taken: TakenStep) -> bool:
    """Let go of the chat (still running, no worker) so the delayed retry can take it."""
    with db.session_scope() as session:
        result = session.execute(
            sa.update(Chat)
            .where(
                Chat.id == taken.chat_id,
                Chat.generation == taken.generation,
                Chat.status == ChatStatus.RUNNING,
                Chat.worker_id == rt.worker_id,
            )
            .values(worker_id=None, heartbeat_at=sa.func.now())
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


# The columns of a watch event's partial Chat, for UPDATE … RETURNING.
WATCH_COLUMNS = (
    Chat.id,
    Chat.owner_id,
    Chat.title,
    Chat.status,
    Chat.created_at,
    Chat.updated_at,
    Chat.parent_chat_id,
    Chat.root_chat_id,
    Chat.workspace_id,
)


def fail_run(rt: WorkerRuntime, chat_id: uuid.UUID, generation: int, error: LLMError) -> None:
    """End the run in ``error`` with the classified message, if the run is still ours."""
    with db.session_scope() as session:
        result = session.execute(
            sa.update(Chat)
            .where(
                Chat.id == chat_id,
                Chat.generation == generation,
                Chat.status == ChatStatus.RUNNING,
                sa.or_(Chat.worker_id == rt.worker_id, Chat.worker_id.is_(None)),  # type: ignore[union-attr]
            )
            .values(
                status=ChatStatus.ERROR,
                last_error=error.message,
                worker_id=None,
                started_at=None,
                heartbeat_at=None,
                updated_at=sa.func.now(),
            )
            .returning(*WATCH_COLUMNS)
        )
        row = result.first()
    if row is not None:
        log.warning("chat run failed: %s", error.message, extra={"chat_id": str(chat_id)})
        rt.events.publish(
            chat_id,
            ev.error_event(chat_id, error.event_payload()),
            ev.status_event(chat_id, ChatStatus.ERROR),
            watch=row,
        )


# ---------------------------------------------------------------- persist


def persist_step(
    rt: WorkerRuntime, taken: TakenStep, output: StepOutput, *, runtime_ms: int
) -> StepResult:
    """Write the step and decide what the chat does next, in one transaction."""
    from workers.enqueue import defer  # local: enqueue registers session hooks

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
        if held or next_generation is not None:
            # This step changed the status (an interrupted run was already announced as
            # waiting by the interrupt; the stream repeats it after the partial, watch does not).
            watch = ev.watch_chat(chat)
        if next_generation is not None:
            from workers.actors.chat import chat_step

            defer(session, chat_step.message(str(chat.id), next_generation, 1))
    if published:
        rt.events.publish(taken.chat_id, *published, watch=watch)
    for event in published:
        if event["type"] == "action_required" and watch is not None:
            rt.events.watch(
                "action_required", watch, tool_calls=event["action_required"]["tool_calls"]
            )
    _count_usage(taken, output)
    return StepResult("persisted", detail="stopped" if output.stopped else "")


def _count_usage(taken: TakenStep, output: StepOutput) -> None:
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
    content = _assistant_parts(output, calls)
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
    inserted = session.execute(
        pg_insert(ChatMessage)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["chat_id", "step_key"], index_where=sa.text("step_key IS NOT NULL")
        )
        .returning(ChatMessage.id)
    ).scalar()
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
            workspace_tools=toolset.workspace_tool_names(),
            client_tools=taken.client_tools,
        )
    row = session.get(ChatMessage, inserted)
    return [row] if row is not None else []


def _assistant_parts(output: StepOutput, calls: list[Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if output.reasoning:
        parts.append({"type": "reasoning", "text": output.reasoning})
    if output.text:
        parts.append({"type": "text", "text": output.text})
    for call in calls:
        parts.append(
            {
                "type": "tool-call",
                "tool_call_id": call.id,
                "tool_name": call.name,
                "args": call.parsed_args(),
            }
        )
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
        chat.worker_id = None
        chat.heartbeat_at = utcnow()
        client_calls = [c for c in output.tool_calls if c.name in taken.client_tools]
        if client_calls:
            # The client runs these (unsafe_dynamic_tools) and posts the results.
            chat.status = ChatStatus.REQUIRES_ACTION
            chat.updated_at = utcnow()
            published.append(ev.action_required_event(chat.id, client_calls))
            published.append(ev.status_event(chat.id, ChatStatus.REQUIRES_ACTION))
        return None
    promote_id = chat.interrupt_promote_id
    if held or promote_id is not None:
        chat.interrupt_promote_id = None
        promoted = chat_rules.promote_queued(session, chat, promote_id)
        if promoted is not None:
            published.append(ev.message_event(chat.id, message_json(promoted)))
            published.append(
                ev.queue_event(
                    chat.id, [queued_json(q) for q in chat_rules.queued_messages(session, chat.id)]
                )
            )
            published.append(ev.status_event(chat.id, ChatStatus.PENDING))
            return chat.generation
    if held:
        chat.status = ChatStatus.WAITING
        chat.worker_id = None
        chat.started_at = None
        chat.heartbeat_at = None
        chat.updated_at = utcnow()
    # Interrupted runs were already set to waiting by the interrupt; say so after the partial.
    published.append(ev.status_event(chat.id, chat.status))
    return None
