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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from agentfarm import logs, metrics
from agentfarm.chat_stream import events as ev
from agentfarm.integrations import webpush as push
from agentfarm.tasks import catalog, hosts
from models import db
from models.base import utcnow
from models.chat import rules as chat_rules
from models.chat import transitions
from models.chat.tables import Chat
from models.crypto import SecretsUnavailable
from models.enums import ChatStatus, ErrorKind, PlanMode
from models.providers import key_policy
from models.providers.tables import ChatModelConfig, ChatProvider
from models.usage import limits as usage_limits
from models.workspaces.tables import Workspace, WorkspaceStatus
from workers.integrations.mcp import admin as admin_mcp
from workers.integrations.mcp import workspace as workspace_mcp
from workers.runtime import Lease, WorkerRuntime
from workers.tools import plan_mode, toolset
from workers.turn import config_cache
from workers.turn.compaction import compact_before_step, compaction_due
from workers.turn.llm import LLMError, ResolvedModel, stream_step
from workers.turn.persist import count_usage, persist_step
from workers.turn.prompt import load_prompt_files, load_prompt_rows, to_llm_messages
from workers.turn.stream_parts import StepOutput, StreamHooks
from workers.turn.types import StepFailed, StepResult, TakenStep

__all__ = [
    "StepFailed",
    "StepResult",
    "TakenStep",
    "count_usage",
    "persist_step",
    "resolve_model",
    "run_step",
]

log = logging.getLogger("agentfarm.step")


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
    if taken.compaction is not None:
        compacted = compact_before_step(rt, taken)
        if compacted is not None and compacted.outcome == "compacted":
            # Summary stored, chat released: take it again to build the prompt from it.
            return run_step(rt, chat_id=chat_id, generation=generation, attempt=attempt)
        if compacted is not None:
            return compacted
    if taken.admin_mcp:
        admin_mcp.add_tools(rt, taken)
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
    taken_row = transitions.take_row(session, chat_id, generation, rt.worker_id)
    if taken_row is None:
        log.info("step dropped: the chat is at another generation or not waiting for a step")
        return None
    chat, extras = taken_row
    fresh = bool(extras["fresh"])
    step_no = int(extras["steps_before"]) + 1
    logs.bind(step=step_no)
    if step_no > rt.settings.max_chat_steps:
        raise StepFailed(f"maximum steps per turn ({rt.settings.max_chat_steps}) exceeded")
    version = extras["config_version"]
    config_view = config_cache.view(session, None if version is None else int(version))
    if config_view.get(("usage_limits_on",), lambda: usage_limits.enabled(session)):
        over_limit = usage_limits.exceeded(session, chat.owner_id)
        if over_limit is not None:  # the turn stops at this step boundary (usage_limits.py)
            raise StepFailed(over_limit.turn_message(step_no), ErrorKind.GENERIC)
    choice = config_view.get(
        ("model", chat.last_model_config_id, chat.owner_id),
        lambda: _model_choice(session, rt, chat),
    )
    workspace = session.get(Workspace, chat.workspace_id) if chat.workspace_id else None
    taken = TakenStep(
        chat_id=chat_id,
        generation=generation,
        step_key=f"{generation}:{step_no}",
        fresh_run=fresh,
        model=choice.model,
        model_config_id=choice.config_id,
        options=choice.model.options,
        messages=[],
        watch=ev.watch_chat(chat),
        owner_has_push=bool(extras["owner_has_push"]),
    )
    if _needs_context(chat, workspace):
        assert workspace is not None
        taken.context_host = workspace.host
        return taken
    taken.compaction = compaction_due(
        session,
        chat_id,
        threshold=choice.compression_threshold,
        limit=choice.context_limit,
        last_usage=extras["last_usage"],
    )
    rows = load_prompt_rows(session, chat_id)
    has_skills = any(p.get("type") == "skill" for r in rows for p in r.content or [])
    workspace_line = _workspace_line(workspace)
    if chat.plan_mode == PlanMode.PLAN:
        directory = workspace.directory if workspace is not None else None
        workspace_line += "\n\n" + plan_mode.plan_prompt(session, chat, directory or None)
    taken.messages = to_llm_messages(
        rows, workspace_line=workspace_line, files=load_prompt_files(session, rows)
    )
    taken.tools = toolset.offered_tools(
        chat,
        has_skills=has_skills,
        computer_use=chat.parent_chat_id is None
        and config_view.get(("computer_use",), lambda: toolset.computer_use_enabled(session)),
    )
    taken.client_tools = toolset.client_tools(chat)
    workspace_mcp.add_tools(session, chat, workspace, taken)
    taken.admin_mcp = config_view.get(("admin_mcp",), lambda: admin_mcp.any_enabled(session))
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
    assert taken.context_host is not None
    if not release_for_retry(rt, taken):
        return StepResult("abandoned", detail="lease lost before context injection")
    queue = hosts.host_queue(taken.context_host)
    catalog.WORKSPACE_CONTEXT.send(str(taken.chat_id), taken.generation, queue=queue)
    return StepResult("context", detail=taken.context_host)


@dataclass(frozen=True)
class ModelChoice:
    """The model a chat's steps use, with its key: what :func:`take_chat` keeps per
    (model config, owner) in the configuration cache (``workers/config_cache.py``)."""

    config_id: uuid.UUID
    model: ResolvedModel
    compression_threshold: int
    context_limit: int


def _model_choice(session: Session, rt: WorkerRuntime, chat: Chat) -> ModelChoice:
    config = _model_config(session, chat)
    return ModelChoice(
        config_id=config.id,
        model=resolve_model(session, rt, config, owner_id=chat.owner_id),
        compression_threshold=config.compression_threshold,
        context_limit=config.context_limit,
    )


def _model_config(session: Session, chat: Chat) -> ChatModelConfig:
    config = session.get(ChatModelConfig, chat.last_model_config_id)
    if config is None or config.deleted:
        config = chat_rules.default_model_config(session)
    if config is None:
        raise StepFailed("no default chat model config is available")
    return config


def resolve_model(
    session: Session,
    rt: WorkerRuntime,
    config: ChatModelConfig,
    *,
    owner_id: uuid.UUID | None = None,
) -> ResolvedModel:
    """The model config with the API key the key policy picks for the chat's owner (§5.2).

    The owner's own key, the provider's central key, or (Bedrock) ambient credentials; a
    provider that cannot serve the owner fails the turn with the §5.2 reason. Without an
    ``owner_id`` only what a user with no key of their own may use is considered.
    """
    provider = session.exec(
        select(ChatProvider).where(ChatProvider.provider == config.provider)
    ).first()
    if provider is None or not provider.enabled:
        raise StepFailed(f"Chat provider {config.provider!r} is not configured or is disabled.")
    if owner_id is not None:
        choice = key_policy.resolve_for_user(session, provider, owner_id)
    else:
        choice = key_policy.resolve(provider, None)
    if not choice.available:
        raise StepFailed(key_policy.unavailable_message(provider, choice.reason))
    api_key: str | None = None
    if choice.ciphertext:
        try:
            api_key = rt.secrets.decrypt(choice.ciphertext)
        except SecretsUnavailable as exc:
            raise StepFailed(f"{choice.source} API key unavailable: {exc}") from exc
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
        hooks=StreamHooks(
            on_part=on_part,
            should_stop=lease.stop.is_set,
            set_closer=set_closer,
            on_first_chunk=metrics.TIME_TO_FIRST_TOKEN.labels(taken.model.model).observe,
        ),
        first_chunk_timeout=rt.settings.llm_first_chunk_timeout_s,
        max_output_tokens=max_tokens,
    )


def _handle_llm_error(
    rt: WorkerRuntime, taken: TakenStep, error: LLMError, attempt: int
) -> StepResult:
    """Fail the run or let go of the chat for a delayed retry. The database comes first and
    Redis (clearing the step's parts, the ``retry`` event) after, best effort: with Redis down
    the chat must not stay held by this live worker, where no retry can take it (the event
    writer's Redis calls never raise)."""
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
        rt.events.clear_step(taken.chat_id)
        return StepResult("failed", detail=error.message)
    delay_s = min(
        rt.settings.llm_backoff_initial_s * 2 ** (attempt - 1), rt.settings.llm_backoff_max_s
    )
    if not release_for_retry(rt, taken):
        rt.events.clear_step(taken.chat_id)
        return StepResult("abandoned", detail="lease lost before retry")
    rt.events.clear_step(taken.chat_id)
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
        return transitions.release_lease(session, taken.chat_id, taken.generation, rt.worker_id)


def fail_run(rt: WorkerRuntime, chat_id: uuid.UUID, generation: int, error: LLMError) -> None:
    """End the run in ``error`` with the classified message, if the run is still ours."""
    with db.session_scope() as session:
        row = transitions.fail_run(session, chat_id, generation, rt.worker_id, error.message)
        if row is not None:
            push.defer_notification(session, row, ChatStatus.ERROR)  # web push, after commit
    if row is not None:
        log.warning("chat run failed: %s", error.message, extra={"chat_id": str(chat_id)})
        rt.events.publish(
            chat_id,
            ev.error_event(chat_id, error.event_payload()),
            ev.status_event(chat_id, ChatStatus.ERROR),
            watch=row,
        )
