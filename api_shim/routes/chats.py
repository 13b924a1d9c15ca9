"""``/api/experimental/chats``: create, list, get, update, archive, interrupt, models."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from agentfarm.chat_stream import events as ev
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer, defer_call
from api_shim.deps import CurrentUser, DbSession, parse_uuid, require_agents_access
from models.chat import files as chat_files
from models.chat import queries as chat_queries
from models.chat import rules as chat_rules
from models.chat import transitions
from models.chat import updates as chat_updates
from models.chat.tables import Chat
from models.chat.wire import chat_json
from models.errors import BadRequest
from models.identity import organizations
from models.identity.tables import User
from models.insights.diff_statuses import statuses_by_chat
from models.mcp import selection as mcp_selection
from models.providers import key_policy
from models.site import prompts
from models.usage import limits as usage_limits
from models.workspaces.tables import Workspace

router = APIRouter(prefix="/api/experimental/chats", tags=["chats"])

MAX_DYNAMIC_TOOLS = 250


class InputPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    file_id: str | None = None
    file_name: str | None = None
    start_line: int | None = None
    end_line: int | None = None
    content: str | None = None


class DynamicTool(BaseModel):
    name: str = ""
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)


class CreateChatRequest(BaseModel):
    content: list[InputPart] | None = None
    organization_id: uuid.UUID | None = Field(
        default=None, description="Defaults to the caller's default organization."
    )
    workspace_id: uuid.UUID | None = None
    model_config_id: uuid.UUID | None = None
    mcp_server_ids: list[uuid.UUID] | None = None
    labels: dict[str, Any] | None = None
    client_type: str | None = None
    plan_mode: str | None = None
    system_prompt: str | None = None
    unsafe_dynamic_tools: list[DynamicTool] | None = None


class UpdateChatRequest(BaseModel):
    title: str | None = None
    archived: bool | None = None
    pin_order: int | None = None
    labels: dict[str, Any] | None = None
    workspace_id: uuid.UUID | None = None
    plan_mode: str | None = None


def dump_parts(parts: list[InputPart] | None) -> list[dict[str, Any]] | None:
    if parts is None:
        return None
    return [p.model_dump(exclude_none=True) for p in parts]


def _usable_workspace(session: Session, user: User, workspace_id: uuid.UUID) -> Workspace:
    """A live workspace the caller owns (Coder's 400 otherwise, hiding others' workspaces)."""
    workspace = session.get(Workspace, workspace_id)
    if workspace is None or workspace.owner_id != user.id or workspace.status == "deleted":
        raise BadRequest("Workspace not found or you do not have access to this resource")
    return workspace


def _validate_dynamic_tools(tools: list[DynamicTool] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    if len(tools) > MAX_DYNAMIC_TOOLS:
        raise BadRequest("Too many dynamic tools.")
    names: set[str] = set()
    for tool in tools:
        if not tool.name.strip():
            raise BadRequest("Dynamic tool name must not be empty.")
        if tool.name in names:
            raise BadRequest("Duplicate dynamic tool name.")
        names.add(tool.name)
    return [t.model_dump() for t in tools]


def render_chat(
    session: Session, chat: Chat, *, files: bool = False, warnings: list[str] | None = None
) -> dict[str, Any]:
    """A chat with has_unread, embedded children, (on create/get) files and warnings."""
    unread = chat_queries.unread_chat_ids(session, [chat])
    children = []
    if chat.parent_chat_id is None:
        kids = chat_queries.children_by_root(session, [chat])[chat.id]
        kid_unread = chat_queries.unread_chat_ids(session, kids)
        children = [chat_json(k, has_unread=k.id in kid_unread) for k in kids]
    return chat_json(
        chat,
        has_unread=chat.id in unread,
        children=children,
        files=chat_files.chat_files_json(session, chat.id) if files else None,
        warnings=warnings,
        diff_status=statuses_by_chat(session, [chat.id]).get(chat.id),
    )


@router.post("", status_code=201, summary="Create a chat")
def create_chat(
    body: CreateChatRequest, request: Request, user: CurrentUser, session: DbSession
) -> dict[str, Any]:
    require_agents_access(user)
    usage_limits.require_within_limit(session, user.id)
    org_id = organizations.chat_organization(session, user, body.organization_id)
    if body.system_prompt and len(body.system_prompt) > chat_rules.MAX_SYSTEM_PROMPT_CHARS:
        raise BadRequest("System prompt exceeds maximum length.")
    parts = chat_rules.parse_input_parts(dump_parts(body.content), session=session, user=user)
    workspace = None
    if body.workspace_id is not None:
        workspace = _usable_workspace(session, user, body.workspace_id)
        if workspace.organization_id != org_id:
            raise BadRequest("Workspace does not belong to the specified organization.")
    model_config = chat_rules.resolve_model_config(session, body.model_config_id)
    plan_mode = chat_rules.parse_plan_mode(body.plan_mode)
    mcp_server_ids = mcp_selection.initial_selection(session, body.mcp_server_ids)
    labels = chat_rules.validate_labels(body.labels)
    dynamic_tools = _validate_dynamic_tools(body.unsafe_dynamic_tools)
    client_type = chat_rules.parse_client_type(body.client_type)
    chat, _first = chat_rules.create_chat(
        session,
        owner=user,
        organization_id=org_id,
        parts=parts,
        model_config=model_config,
        deployment_prompt=prompts.deployment_prompt(session),
        user_prompt=prompts.user_prompt(session, user.id),
        system_prompt=body.system_prompt,
        labels=labels,
        client_type=client_type,
        plan_mode=plan_mode,
    )
    chat.dynamic_tools = dynamic_tools
    chat.mcp_server_ids = mcp_server_ids
    chat.workspace_id = workspace.id if workspace is not None else None
    warnings = chat_files.link_files(session, chat.id, chat_files.file_ids_in(parts))
    # Watchers hear `created` before the step that makes the chat running can start.
    writer = request.app.state.events
    defer_call(session, lambda: writer.watch("created", chat))
    defer(session, catalog.CHAT_STEP.message(str(chat.id), chat.generation, 1))
    defer(session, catalog.GENERATE_TITLE.message(str(chat.id)))
    # The answer is read inside the transaction: once it commits, nothing may fail the
    # request (a 503 for a chat that exists would make a retrying client create it twice).
    answer = render_chat(session, chat, files=True, warnings=warnings)
    session.commit()
    return answer


@router.get("", summary="List your chats")
def list_chats(
    user: CurrentUser,
    session: DbSession,
    q: str | None = None,
    label: list[str] = Query(default_factory=list),
    after_id: str | None = None,
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=50, ge=1, le=1000),
) -> list[dict[str, Any]]:
    filters = chat_queries.parse_search(q)
    labels = chat_queries.parse_label_filters(label)
    cursor = parse_uuid(after_id, "after_id") if after_id else None
    chats = chat_queries.list_root_chats(
        session,
        user.id,
        archived=filters["archived"],
        labels=labels,
        after_id=cursor,
        offset=offset,
        limit=limit,
    )
    children = chat_queries.children_by_root(session, chats)
    everyone = chats + [k for kids in children.values() for k in kids]
    unread = chat_queries.unread_chat_ids(session, everyone)
    diffs = statuses_by_chat(session, [c.id for c in everyone])
    return [
        chat_json(
            c,
            has_unread=c.id in unread,
            children=[
                chat_json(k, has_unread=k.id in unread, diff_status=diffs.get(k.id))
                for k in children[c.id]
            ],
            diff_status=diffs.get(c.id),
        )
        for c in chats
    ]


@router.get("/models", summary="Models you can chat with, and which providers you can use")
def list_models(user: CurrentUser, session: DbSession) -> dict[str, Any]:
    return key_policy.model_catalog(session, user.id)


@router.get("/{chat}", summary="Get a chat")
def get_chat(chat: str, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"))
    return render_chat(session, row, files=True)


@router.patch("/{chat}", status_code=204, summary="Update a chat")
def update_chat(
    chat: str, body: UpdateChatRequest, request: Request, user: CurrentUser, session: DbSession
) -> Response:
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"), for_update=True)
    fields = body.model_fields_set
    if "workspace_id" in fields:
        if body.workspace_id in (None, uuid.UUID(int=0)):
            row.workspace_id = None  # the nil UUID clears the binding
        else:
            workspace = _usable_workspace(session, user, body.workspace_id)
            if workspace.organization_id != row.organization_id:
                raise BadRequest("Workspace does not belong to this chat's organization.")
            row.workspace_id = workspace.id
        row.last_injected_context = None
    if "plan_mode" in fields:
        row.plan_mode = chat_rules.parse_plan_mode(body.plan_mode)
    old_title = row.title
    if body.title is not None:
        chat_updates.set_title(row, body.title)
    if body.labels is not None:
        row.labels = chat_rules.validate_labels(body.labels)
    if body.archived is not None:
        chat_updates.set_archived(session, row, body.archived)
    if body.pin_order is not None:
        chat_updates.set_pin_order(session, row, body.pin_order)
    session.commit()
    _watch_update(request, session, row, title_changed=row.title != old_title, body=body)
    return Response(status_code=204)


def _watch_update(
    request: Request, session: Session, row: Chat, *, title_changed: bool, body: UpdateChatRequest
) -> None:
    """Watch events of a PATCH: title_change; archive → `deleted` for the chat and each chat
    whose root it is; [inferred] unarchive → `created` for each (they reappear in the list).
    One event per chat: a PATCH that also (un)archives carries the new title in that event."""
    writer = request.app.state.events
    if title_changed and body.archived is None:
        writer.watch("title_change", row)
    if body.archived is None:
        return
    tree = session.exec(
        select(Chat).where(sa.or_(Chat.id == row.id, Chat.root_chat_id == row.id))  # type: ignore[arg-type]
    ).all()
    for chat in sorted(tree, key=lambda c: c.id != row.id):
        writer.watch("deleted" if body.archived else "created", chat)


@router.post("/{chat}/archive", status_code=204, summary="Archive a chat (and its children)")
def archive_chat(chat: str, request: Request, user: CurrentUser, session: DbSession) -> Response:
    return update_chat(chat, UpdateChatRequest(archived=True), request, user, session)


@router.post("/{chat}/unarchive", status_code=204, summary="Unarchive a chat")
def unarchive_chat(chat: str, request: Request, user: CurrentUser, session: DbSession) -> Response:
    return update_chat(chat, UpdateChatRequest(archived=False), request, user, session)


@router.post("/{chat}/interrupt", summary="Stop the current run")
def interrupt_chat(
    chat: str, request: Request, user: CurrentUser, session: DbSession
) -> dict[str, Any]:
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"), for_update=True)
    changed = transitions.interrupt(row)
    session.commit()
    if changed:
        writer = request.app.state.events
        writer.request_interrupt(row.id)
        writer.publish(row.id, ev.status_event(row.id, row.status), watch=row)
    return render_chat(session, row)
