"""``POST /chats/{chat}/title/regenerate`` and ``/title/propose``.

The model call runs in the ``chat.title_job`` actor (the API process never loads litellm);
the request waits for its result, handed back through a short-lived Redis key.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException

from agentfarm.tasks import catalog
from agentfarm.tasks.title_jobs import title_job_key, title_lock_key
from api_shim.deps import CurrentUser, DbSession, parse_uuid
from api_shim.routes.chats import render_chat
from models.chat import rules as chat_rules
from models.errors import Conflict
from models.usage import limits as usage_limits

router = APIRouter(prefix="/api/experimental/chats", tags=["chats"])
WAIT_S = 40.0  # above the title job's own 30 s model timeout


def _run_job(request: Request, chat_id: uuid.UUID, *, persist: bool) -> str:
    redis = request.app.state.events.redis
    if persist and not redis.set(title_lock_key(str(chat_id)), "1", nx=True, ex=int(WAIT_S) + 20):
        raise Conflict("Title regeneration already in progress for this chat.")
    job_id = uuid.uuid4().hex
    catalog.TITLE_JOB.send(str(chat_id), job_id, persist)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        raw = redis.get(title_job_key(job_id))
        if raw is not None:
            redis.delete(title_job_key(job_id))
            outcome: dict[str, Any] = json.loads(raw)
            if "title" in outcome:
                return str(outcome["title"])
            raise HTTPException(502, f"Title generation failed: {outcome.get('error')}")
        time.sleep(0.05)
    raise HTTPException(504, "Title generation did not finish in time.")


@router.post("/{chat}/title/regenerate", summary="Regenerate the title with the model")
def regenerate_title(
    chat: str, request: Request, user: CurrentUser, session: DbSession
) -> dict[str, Any]:
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"))
    usage_limits.require_within_limit(session, row.owner_id)
    session.rollback()  # don't hold a transaction open while the model runs
    _run_job(request, row.id, persist=True)
    fresh = chat_rules.get_owned_chat(session, user, row.id)
    session.refresh(fresh)
    return render_chat(session, fresh, files=True)


@router.post("/{chat}/title/propose", summary="Propose a title without saving it")
def propose_title(
    chat: str, request: Request, user: CurrentUser, session: DbSession
) -> dict[str, str]:
    row = chat_rules.get_owned_chat(session, user, parse_uuid(chat, "chat ID"))
    session.rollback()
    return {"title": _run_job(request, row.id, persist=False)}
