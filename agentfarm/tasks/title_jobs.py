"""The hand-back of an on-demand title job: the API waits on a short-lived Redis key that the
``chat.title_job`` actor writes, and a per-chat lock keeps regenerations one at a time."""

from __future__ import annotations

TITLE_JOB_TTL_S = 120


def title_job_key(job_id: str) -> str:
    return f"agentfarm:title-job:{job_id}"


def title_lock_key(chat_id: str) -> str:
    return f"chat:{chat_id}:title-regen"
