"""Chat state rules shared by the API shim and the workers.

Every function here takes the session explicitly and only flushes: the caller owns the
transaction (the request dependency or the actor's unit of work), and whoever commits also
flushes the after-commit queue sends.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.chat import transitions
from models.chat.files import owned_file_meta
from models.chat.tables import Chat, ChatMessage, ChatQueuedMessage
from models.enums import (
    BUSY_STATUSES,
    BusyBehavior,
    ClientType,
    MessageRole,
    MessageVisibility,
    PlanMode,
)
from models.errors import BadRequest, TooManyRequests, chat_not_found
from models.identity.tables import User
from models.providers.tables import ChatModelConfig

MAX_SYSTEM_PROMPT_CHARS = 10_000
MAX_LABELS = 50
TITLE_WORDS = 6
TITLE_MAX_RUNES = 80
DEFAULT_TITLE = "New Chat"


# ---------------------------------------------------------------- input parts and titles


def parse_input_parts(
    raw: Any, *, session: Session | None = None, user: User | None = None
) -> list[dict[str, Any]]:
    """Validate request ``content`` (ChatInputPart[]) and return the parts to store.

    A ``file`` part must name an uploaded file of ``user``; without a session and user no
    file can be found, so every file part is rejected.
    """
    if not isinstance(raw, list) or not raw:
        raise BadRequest("Content is required.", detail="Content cannot be empty.")
    files = _referenced_files(raw, session, user)
    parts: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f'content[{i}].type "" is not supported.')
        kind = str(item.get("type") or "").strip().lower()
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str) or not text.strip():
                raise BadRequest(f"content[{i}].text cannot be empty.")
            parts.append({"type": "text", "text": text})
        elif kind == "file":
            meta = files.get(_as_uuid(item.get("file_id")))  # type: ignore[arg-type]
            if meta is None:
                raise BadRequest(f"content[{i}].file_id references a file that does not exist.")
            # [inferred] the stored part keeps the file's name next to Coder's media_type.
            parts.append(
                {
                    "type": "file",
                    "file_id": str(meta.id),
                    "media_type": meta.mimetype,
                    "name": meta.name,
                }
            )
        elif kind == "file-reference":
            parts.append(_file_reference(i, item))
        else:
            raise BadRequest(f'content[{i}].type "{item.get("type") or ""}" is not supported.')
    return parts


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _referenced_files(
    raw: list[Any], session: Session | None, user: User | None
) -> dict[uuid.UUID, Any]:
    """Metadata of the caller's files that the parts reference (one query for all of them)."""
    if session is None or user is None:
        return {}
    ids = [
        fid
        for item in raw
        if isinstance(item, dict)
        and str(item.get("type") or "").strip().lower() == "file"
        and (fid := _as_uuid(item.get("file_id"))) is not None
    ]
    return owned_file_meta(session, user.id, ids)


def _file_reference(i: int, item: dict[str, Any]) -> dict[str, Any]:
    name = item.get("file_name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(f"content[{i}].file_name cannot be empty for file-reference.")
    start, end = item.get("start_line", 0), item.get("end_line", 0)
    if not isinstance(start, int) or not isinstance(end, int) or start < 0 or end < start:
        raise BadRequest(f"content[{i}].start_line and end_line must be non-negative and ordered.")
    code = item.get("content", "")
    if not isinstance(code, str):
        raise BadRequest(f"content[{i}].content must be a string.")
    return {
        "type": "file-reference",
        "file_name": name,
        "start_line": start,
        "end_line": end,
        "content": code,
    }


def parts_text(parts: list[dict[str, Any]]) -> str:
    """The text a model (or a title) sees for user-authored parts."""
    chunks: list[str] = []
    for part in parts:
        if part.get("type") == "text":
            chunks.append(part["text"])
        elif part.get("type") == "file-reference":
            chunks.append(
                f"[file-reference] {part['file_name']}:{part['start_line']}-{part['end_line']}\n"
                f"{part['content']}"
            )
    return "\n".join(chunks)


def fallback_title(parts: list[dict[str, Any]]) -> str:
    """Coder's initial title: the first six words, an ellipsis if cut, at most 80 runes."""
    words = parts_text(parts).split()
    if not words:
        return DEFAULT_TITLE
    title = " ".join(words[:TITLE_WORDS])
    if len(words) > TITLE_WORDS:
        title += "…"
    return title[:TITLE_MAX_RUNES]


def validate_labels(labels: Any) -> dict[str, str]:
    """Labels are a map of non-empty strings, at most 50 entries."""
    if labels is None:
        return {}
    problems: list[dict[str, str]] = []
    if not isinstance(labels, dict):
        problems.append({"field": "labels", "detail": "Labels must be an object."})
    else:
        if len(labels) > MAX_LABELS:
            problems.append(
                {"field": "labels", "detail": f"At most {MAX_LABELS} labels are allowed."}
            )
        for key, value in labels.items():
            if not isinstance(key, str) or not key.strip() or len(key) > 64:
                problems.append(
                    {"field": f"labels.{key}", "detail": "Key must be 1-64 characters."}
                )
            if not isinstance(value, str) or not value.strip() or len(value) > 256:
                problems.append(
                    {"field": f"labels.{key}", "detail": "Value must be 1-256 characters."}
                )
    if problems:
        raise BadRequest("Invalid labels.", validations=problems)
    return dict(labels)


def parse_plan_mode(value: Any) -> PlanMode | None:
    if value is None or value == "":
        return None
    if value == PlanMode.PLAN:
        return PlanMode.PLAN
    raise BadRequest("Invalid plan_mode value.")


def parse_busy_behavior(value: Any) -> BusyBehavior:
    if value is None or value == "":
        return BusyBehavior.QUEUE
    try:
        return BusyBehavior(value)
    except ValueError:
        raise BadRequest(
            "Invalid busy_behavior value.", detail='Must be "queue" or "interrupt".'
        ) from None


def parse_client_type(value: Any) -> ClientType:
    if value is None or value == "":
        return ClientType.API
    try:
        return ClientType(value)
    except ValueError:
        raise BadRequest("Invalid client_type.") from None


# ---------------------------------------------------------------- lookups


def get_owned_chat(
    session: Session, user: User, chat_id: uuid.UUID, *, for_update: bool = False
) -> Chat:
    """The caller's chat, or the 404 that hides other users' chats."""
    stmt = select(Chat).where(Chat.id == chat_id, Chat.owner_id == user.id)
    if for_update:
        stmt = stmt.with_for_update()
    chat = session.exec(stmt).first()
    if chat is None:
        raise chat_not_found()
    return chat


def resolve_model_config(session: Session, model_config_id: uuid.UUID | None) -> ChatModelConfig:
    """The requested model config (must exist, be enabled, not deleted) or the default."""
    if model_config_id is not None:
        if model_config_id == uuid.UUID(int=0):
            raise BadRequest("Invalid model config ID.")
        cfg = session.get(ChatModelConfig, model_config_id)
        if cfg is None or cfg.deleted or not cfg.enabled:
            raise BadRequest("Invalid model config ID.")
        return cfg
    cfg = default_model_config(session)
    if cfg is None:
        raise BadRequest("No default chat model config is configured.")
    return cfg


def default_model_config(session: Session) -> ChatModelConfig | None:
    return session.exec(
        select(ChatModelConfig).where(
            ChatModelConfig.is_default,
            ChatModelConfig.deleted.is_(False),  # type: ignore[attr-defined]
            ChatModelConfig.enabled,
        )
    ).first()


def add_message(
    session: Session,
    chat: Chat,
    role: MessageRole,
    content: list[dict[str, Any]],
    *,
    visibility: MessageVisibility = MessageVisibility.BOTH,
    created_by: uuid.UUID | None = None,
    model_config_id: uuid.UUID | None = None,
    **fields: Any,
) -> ChatMessage:
    """Insert one message and flush it (so it has its id)."""
    msg = ChatMessage(
        chat_id=chat.id,
        role=role,
        content=content,
        visibility=visibility,
        created_by=created_by,
        model_config_id=model_config_id,
        **fields,
    )
    session.add(msg)
    if model_config_id is not None:
        chat.last_model_config_id = model_config_id
    session.flush()
    return msg


def create_chat(
    session: Session,
    *,
    owner: User,
    organization_id: uuid.UUID,
    parts: list[dict[str, Any]],
    model_config: ChatModelConfig,
    deployment_prompt: str,
    system_prompt: str | None = None,
    user_prompt: str = "",
    labels: dict[str, str] | None = None,
    client_type: ClientType = ClientType.API,
    plan_mode: PlanMode | None = None,
) -> tuple[Chat, ChatMessage]:
    """Insert a root chat, its system prompt(s) and its first user message, ready to run."""
    chat = Chat(
        organization_id=organization_id,
        owner_id=owner.id,
        last_model_config_id=model_config.id,
        title=fallback_title(parts),
        labels=labels or {},
        client_type=client_type,
        plan_mode=plan_mode,
    )
    transitions.mark_pending(chat)
    session.add(chat)
    session.flush()
    # The prompt layers of §5.7, in order: deployment, this chat's, the owner's own.
    for prompt in (deployment_prompt, system_prompt, user_prompt):
        if prompt and prompt.strip():
            add_message(
                session,
                chat,
                MessageRole.SYSTEM,
                [{"type": "text", "text": prompt}],
                visibility=MessageVisibility.MODEL,
            )
    first = add_message(
        session,
        chat,
        MessageRole.USER,
        parts,
        created_by=owner.id,
        model_config_id=model_config.id,
    )
    return chat, first


def new_child_chat(parent: Chat, *, title: str, model_config_id: uuid.UUID) -> Chat:
    """A subagent chat: same owner, organization, workspace and client type as its parent."""
    return Chat(
        organization_id=parent.organization_id,
        owner_id=parent.owner_id,
        workspace_id=parent.workspace_id,
        parent_chat_id=parent.id,
        root_chat_id=parent.root_chat_id or parent.id,
        last_model_config_id=model_config_id,
        title=title,
        client_type=parent.client_type,
        plan_mode=parent.plan_mode,
        mcp_server_ids=list(parent.mcp_server_ids),
    )


def queued_messages(session: Session, chat_id: uuid.UUID) -> list[ChatQueuedMessage]:
    """The chat's queue, oldest first."""
    return list(
        session.exec(
            select(ChatQueuedMessage)
            .where(ChatQueuedMessage.chat_id == chat_id)
            .order_by(ChatQueuedMessage.id)  # type: ignore[arg-type]
        )
    )


def enqueue_follow_up(
    session: Session,
    chat: Chat,
    parts: list[dict[str, Any]],
    *,
    created_by: uuid.UUID,
    model_config_id: uuid.UUID | None,
    max_queue: int,
) -> ChatQueuedMessage:
    """Queue a message for a busy chat (429 when the queue is full)."""
    count = session.exec(
        select(sa.func.count())
        .select_from(ChatQueuedMessage)
        .where(ChatQueuedMessage.chat_id == chat.id)
    ).one()
    if count >= max_queue:
        raise TooManyRequests(
            "Message queue is full.", detail=f"Maximum {max_queue} messages can be queued."
        )
    queued = ChatQueuedMessage(
        chat_id=chat.id, content=parts, created_by=created_by, model_config_id=model_config_id
    )
    session.add(queued)
    session.flush()
    return queued


def is_busy(chat: Chat) -> bool:
    return chat.status in BUSY_STATUSES


def promote_queued(
    session: Session, chat: Chat, queued_id: int | None = None
) -> ChatMessage | None:
    """Turn a queued message (the oldest by default) into the next user turn and request a run."""
    stmt = select(ChatQueuedMessage).where(ChatQueuedMessage.chat_id == chat.id)
    if queued_id is not None:
        stmt = stmt.where(ChatQueuedMessage.id == queued_id)
    queued = session.exec(
        stmt.order_by(ChatQueuedMessage.id).limit(1).with_for_update()  # type: ignore[arg-type]
    ).first()
    if queued is None:
        return None
    session.delete(queued)
    msg = add_message(
        session,
        chat,
        MessageRole.USER,
        queued.content,
        created_by=queued.created_by,
        model_config_id=queued.model_config_id or chat.last_model_config_id,
    )
    transitions.mark_pending(chat)
    return msg


def latest_assistant_id(session: Session, chat_id: uuid.UUID) -> int | None:
    return session.exec(
        select(sa.func.max(ChatMessage.id)).where(
            ChatMessage.chat_id == chat_id,
            ChatMessage.role == MessageRole.ASSISTANT,
            ChatMessage.deleted.is_(False),  # type: ignore[attr-defined]
        )
    ).one()


def mark_read(session: Session, chat: Chat) -> None:
    """Move the read cursor to the newest assistant message."""
    latest = latest_assistant_id(session, chat.id)
    if latest is not None and latest != chat.last_read_message_id:
        session.execute(
            sa.update(Chat).where(Chat.id == chat.id).values(last_read_message_id=latest)  # type: ignore[arg-type]
        )
