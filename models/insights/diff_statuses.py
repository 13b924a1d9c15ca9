"""Chat diff statuses: a chat's git branch and remote, and the pull request found for them
(reference §1.3 ChatDiffStatus, §2.3 ``chat_diff_statuses``, §7).

The workspace host reports the branch and origin (:func:`report_git_ref`); ``insights.refresh``
claims stale rows (:func:`claim_stale`) and ``insights.ingest_pr`` stores what the git
provider says (:func:`store_pull`) or moves ``stale_at`` to back off (:func:`back_off`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Field, Session, SQLModel

from models.base import bool_field, created_at, text_field, tstz, updated_at, utcnow
from models.chat.wire import ts

# The pull-request columns, in ChatDiffStatus order (the insights ingestion writes them all).
PR_FIELDS = (
    "url",
    "pull_request_state",
    "pull_request_title",
    "pull_request_draft",
    "changes_requested",
    "additions",
    "deletions",
    "changed_files",
    "author_login",
    "author_avatar_url",
    "base_branch",
    "head_branch",
    "pr_number",
    "commits",
    "approved",
    "reviewer_count",
    "pr_created_at",
    "pr_merged_at",
    "pr_closed_at",
)
# What a chat without a pull request stores (a PR that disappeared is cleared).
NO_PULL: dict[str, Any] = {
    **dict.fromkeys(PR_FIELDS),
    "pull_request_title": "",
    "pull_request_draft": False,
    "changes_requested": False,
    "additions": 0,
    "deletions": 0,
    "changed_files": 0,
}
# ChatDiffStatus keys that Go omits when empty (``?`` in the reference).
_OPTIONAL = (
    "url",
    "pull_request_state",
    "author_login",
    "author_avatar_url",
    "base_branch",
    "head_branch",
    "pr_number",
    "commits",
    "approved",
    "reviewer_count",
)


def _int() -> Any:
    return Field(default=0, sa_column=sa.Column(sa.Integer, server_default="0"))


def _text() -> Any:
    return Field(default=None, sa_column=sa.Column(sa.Text))


class ChatDiffStatus(SQLModel, table=True):
    __tablename__ = "chat_diff_statuses"
    __table_args__ = (sa.Index("idx_chat_diff_statuses_stale_at", "stale_at"),)

    chat_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
        )
    )
    url: str | None = _text()
    pull_request_state: str | None = _text()
    pull_request_title: str = text_field("")
    pull_request_draft: bool = bool_field(False)
    changes_requested: bool = bool_field(False)
    additions: int | None = _int()
    deletions: int | None = _int()
    changed_files: int | None = _int()
    author_login: str | None = _text()
    author_avatar_url: str | None = _text()
    base_branch: str | None = _text()
    head_branch: str | None = _text()
    pr_number: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    commits: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    approved: bool | None = Field(default=None, sa_column=sa.Column(sa.Boolean))
    reviewer_count: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    git_branch: str = text_field("")
    git_remote_origin: str = text_field("")
    # agentfarm extensions: the PR's own timestamps, for the insights time series.
    pr_created_at: datetime | None = tstz()
    pr_merged_at: datetime | None = tstz()
    pr_closed_at: datetime | None = tstz()
    refreshed_at: datetime | None = tstz()
    stale_at: datetime = Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


_t = ChatDiffStatus.__table__  # type: ignore[attr-defined]


def diff_status_json(row: Any) -> dict[str, Any]:
    """ChatDiffStatus as on Coder's wire; ``?`` keys are omitted when empty."""
    out: dict[str, Any] = {
        "chat_id": str(row.chat_id),
        "pull_request_title": row.pull_request_title,
        "pull_request_draft": row.pull_request_draft,
        "changes_requested": row.changes_requested,
        "additions": row.additions or 0,
        "deletions": row.deletions or 0,
        "changed_files": row.changed_files or 0,
    }
    for key in _OPTIONAL:
        value = getattr(row, key)
        if value is not None and value != "":
            out[key] = value
    for key in ("refreshed_at", "stale_at"):
        if getattr(row, key) is not None:
            out[key] = ts(getattr(row, key))
    return out


def public_fields(row: Any) -> dict[str, Any]:
    """What clients see of a status (a change of any of these is a ``diff_status_change``)."""
    body = diff_status_json(row)
    body.pop("refreshed_at", None)
    body.pop("stale_at", None)
    return body


def statuses_by_chat(session: Session, chat_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """ChatDiffStatus JSON of those chats that have a status row."""
    ids = list(chat_ids)
    if not ids:
        return {}
    rows = session.execute(sa.select(_t).where(_t.c.chat_id.in_(ids))).all()
    return {r.chat_id: diff_status_json(r) for r in rows}


def report_git_ref(session: Session, chat_id: uuid.UUID, branch: str, origin: str) -> bool:
    """Record the chat's branch and remote origin as the workspace reports them; an empty value
    keeps the stored one. A change makes the row stale at once (the PR is looked up again).
    Returns whether anything changed."""
    stmt = pg_insert(_t).values(chat_id=chat_id, git_branch=branch, git_remote_origin=origin)
    new_branch = sa.case(
        (stmt.excluded.git_branch != "", stmt.excluded.git_branch), else_=_t.c.git_branch
    )
    new_origin = sa.case(
        (stmt.excluded.git_remote_origin != "", stmt.excluded.git_remote_origin),
        else_=_t.c.git_remote_origin,
    )
    stmt = stmt.on_conflict_do_update(  # type: ignore[assignment]
        index_elements=["chat_id"],
        set_={
            "git_branch": new_branch,
            "git_remote_origin": new_origin,
            "stale_at": sa.func.now(),
            "updated_at": sa.func.now(),
        },
        where=sa.or_(_t.c.git_branch != new_branch, _t.c.git_remote_origin != new_origin),
    ).returning(_t.c.chat_id)
    return session.execute(stmt).first() is not None


CLAIM_SQL = sa.text(
    """
    UPDATE chat_diff_statuses d SET stale_at = :until
     WHERE d.chat_id IN (
        SELECT s.chat_id FROM chat_diff_statuses s JOIN chats c ON c.id = s.chat_id
         WHERE s.stale_at <= :now AND s.git_remote_origin <> '' AND s.git_branch <> ''
           AND NOT c.archived
         ORDER BY s.stale_at
         LIMIT :limit
         FOR UPDATE OF s SKIP LOCKED)
    RETURNING d.chat_id
    """
)


def claim_stale(
    session: Session, *, now: datetime, limit: int, claim_for: timedelta
) -> list[uuid.UUID]:
    """Claim up to ``limit`` stale rows with a branch and origin, of chats not archived, by
    moving their ``stale_at`` past the claim window (Coder's gitsync claim, reference §2.3)."""
    rows = session.execute(CLAIM_SQL, {"now": now, "until": now + claim_for, "limit": limit})
    return list(rows.scalars())


def store_pull(
    session: Session,
    row: ChatDiffStatus,
    fields: dict[str, Any],
    *,
    now: datetime,
    next_refresh: datetime,
) -> bool:
    """Write a refresh's result (``NO_PULL`` when the branch has no PR) on a locked row.
    Returns whether anything a client sees changed."""
    before = public_fields(row)
    for key in PR_FIELDS:
        setattr(row, key, fields.get(key, NO_PULL[key]))
    row.refreshed_at = now
    row.stale_at = next_refresh
    row.updated_at = now
    session.flush()
    return public_fields(row) != before


def back_off(session: Session, chat_id: uuid.UUID, until: datetime) -> None:
    """Look at this chat again no sooner than ``until`` (rate limits, token failures)."""
    session.execute(sa.update(_t).where(_t.c.chat_id == chat_id).values(stale_at=until))
