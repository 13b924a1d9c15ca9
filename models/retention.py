"""Data retention (reference §5.5): which chats and files the purge deletes, one batch at a time.

The rules are Coder's (``dbpurge``):

- ``retention_days`` is a site setting: 30 by default, 0 turns retention off, 0–3650 allowed.
- A chat expires when it is archived and its ``updated_at`` is older than the window
  (``updated_at`` stands in for the archive time; there is no ``archived_at``). Archiving a
  root archives its children with it, so a tree expires together.
- A file expires when it is older than the window and no *kept* chat (not archived, or
  archived within the window) references it: neither through ``chat_file_links`` nor through a
  file part in one of its messages. Links alone are not enough: linking is refused past the
  per-chat cap (``models.chat.files.MAX_CHAT_FILES``) while the message keeps its file part.

:func:`purge_batch` deletes at most ``batch_size`` rows in the caller's transaction, so no
lock is held long and a crash loses only the batch in flight. The rows that cascade from a
chat (messages, tool calls, queued messages, file links: every table whose foreign key to
``chats`` is ON DELETE CASCADE, read from the catalog so a new table is covered too) are
deleted explicitly, within the same budget, before the chat row, so deleting chats never
cascades into an unbounded number of rows. References that are ON DELETE SET NULL (a
child's parent/root, a workspace process) are left to Postgres. Children are deleted before
their root, so an interrupted purge never leaves a child whose root is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from models.base import utcnow
from models.chat.tables import FILE_PARTS_PREDICATE
from models.errors import BadRequest
from models.workspaces.rules import get_setting, put_setting

RETENTION_DAYS_KEY = "retention_days"
DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 3650
DEFAULT_BATCH_SIZE = 1000
# Transaction-level advisory lock: at most one purge batch runs at a time in the whole farm.
PURGE_LOCK_KEY = 0x61667267  # "afrg"
LOCK_TIMEOUT = "5s"

# A chat whose files (and whose own rows) the purge must keep.
_KEPT = "(NOT c.archived OR c.updated_at >= :cutoff)"

# Children first (a root is deleted after its subagents), oldest first, read in that order from
# idx_chats_purge_order: a batch reads only the chats it takes, whatever the backlog.
EXPIRED_CHATS_SQL = sa.text(
    """
    SELECT id FROM chats
     WHERE archived AND updated_at < :cutoff
     ORDER BY root_chat_id IS NULL, updated_at
     LIMIT :limit
     FOR UPDATE SKIP LOCKED
    """
)
# Chats taken per group at first; the group doubles while whole groups fit in the budget.
FIRST_GROUP = 4

CASCADING_TABLES_SQL = sa.text(
    """
    SELECT con.conrelid::regclass::text, quote_ident(att.attname)
      FROM pg_constraint con
      JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
     WHERE con.contype = 'f' AND con.confrelid = 'chats'::regclass
       AND con.confdeltype = 'c' AND cardinality(con.conkey) = 1
     ORDER BY 1
    """
)

EXPIRED_FILES_SQL = sa.text(
    f"""
    WITH referenced AS (
        SELECT DISTINCT
               jsonb_path_query(content, '$[*] ? (@.type == "file").file_id') #>> '{{}}' AS file_id
          FROM chat_messages JOIN chats c ON c.id = chat_messages.chat_id
         WHERE {FILE_PARTS_PREDICATE} AND {_KEPT}
    ), doomed AS (
        SELECT f.id FROM chat_files f
         WHERE f.created_at < :cutoff
           AND NOT EXISTS (SELECT 1 FROM chat_file_links l JOIN chats c ON c.id = l.chat_id
                            WHERE l.file_id = f.id AND {_KEPT})
           AND NOT EXISTS (SELECT 1 FROM referenced r WHERE r.file_id = f.id::text)
         ORDER BY f.created_at, f.id
         LIMIT :limit
         FOR UPDATE OF f SKIP LOCKED
    )
    DELETE FROM chat_files WHERE id IN (SELECT id FROM doomed)
    """
)


@dataclass
class PurgeBatch:
    """What one batch deleted, by table."""

    batch_size: int
    deleted: dict[str, int] = field(default_factory=dict)
    # Another purge batch held the lock, so this one did nothing.
    busy: bool = False

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    @property
    def remaining(self) -> int:
        return max(self.batch_size - self.total, 0)

    @property
    def full(self) -> bool:
        """The budget was used up, so rows may be left for another batch."""
        return self.total >= self.batch_size

    def add(self, table: str, rows: int) -> None:
        if rows:
            self.deleted[table] = self.deleted.get(table, 0) + rows


def validate_retention_days(value: int) -> int:
    """Coder's bounds: 0 (off) to 3650 days."""
    if not 0 <= value <= MAX_RETENTION_DAYS:
        raise BadRequest(f"Retention days must be between 0 and {MAX_RETENTION_DAYS}.")
    return value


def retention_days(session: Session) -> int:
    """The configured window in days (default 30; 0 = retention off)."""
    value = get_setting(session, RETENTION_DAYS_KEY)
    return int(value["retention_days"]) if value else DEFAULT_RETENTION_DAYS


def set_retention_days(session: Session, days: int) -> None:
    """Validate and store the window (the caller commits)."""
    put_setting(session, RETENTION_DAYS_KEY, {"retention_days": validate_retention_days(days)})


def retention_cutoff(session: Session, now: datetime | None = None) -> datetime | None:
    """Rows older than this expire; None when retention is off."""
    days = retention_days(session)
    return None if days == 0 else (now or utcnow()) - timedelta(days=days)


def purge_batch(
    session: Session, *, now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> PurgeBatch:
    """Delete at most ``batch_size`` expired rows (chats and what cascades from them first,
    then files) in the session's transaction; the caller commits. A batch that comes back
    ``full`` may have left rows behind; one that does not found nothing more to delete."""
    batch = PurgeBatch(batch_size)
    cutoff = retention_cutoff(session, now)
    if cutoff is None:
        return batch
    locked = session.execute(
        sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PURGE_LOCK_KEY}
    )
    if not locked.scalar_one():
        batch.busy = True
        return batch
    # Never wait long behind someone else's row lock while holding this batch's own locks:
    # the batch fails instead, and the next scheduled purge tries again.
    session.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": LOCK_TIMEOUT})
    _purge_chats(session, cutoff, batch)
    if not batch.full:
        _purge_files(session, cutoff, batch)
    return batch


def cascading_tables(session: Session) -> list[tuple[str, str]]:
    """(table, column) of every single-column foreign key to chats that is ON DELETE CASCADE,
    as SQL identifiers read from the catalog."""
    return [(t, c) for t, c in session.execute(CASCADING_TABLES_SQL).all()]


def _purge_chats(session: Session, cutoff: datetime, batch: PurgeBatch) -> None:
    """Expired chats a group at a time: lock the group (SKIP LOCKED: within the batch an
    unarchive cannot slip in between deleting a chat's rows and deleting the chat, and two
    purges never share chats), delete what cascades from it within the budget, then the
    chats. Groups start small and double while they fit, so a batch locks about as many chats
    as its budget covers instead of ``batch_size`` of them. A chat with more rows than one
    budget is emptied over several batches; an unarchive between those batches keeps what is
    left of it."""
    tables = cascading_tables(session)
    group = FIRST_GROUP
    while batch.remaining > 0:
        params = {"cutoff": cutoff, "limit": min(group, batch.remaining)}
        chat_ids = list(session.execute(EXPIRED_CHATS_SQL, params).scalars())
        if not chat_ids or not _purge_group(session, tables, chat_ids, batch):
            return
        group *= 2


def _purge_group(
    session: Session, tables: list[tuple[str, str]], chat_ids: list[Any], batch: PurgeBatch
) -> bool:
    """Delete these chats and their rows within the budget; False when the budget ran out
    first (rows may be left for the next batch)."""
    for table, column in tables:
        budget = batch.remaining
        deleted = session.execute(  # type: ignore[attr-defined]
            sa.text(
                f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {table} WHERE {column} = ANY(:ids) LIMIT :limit))"
            ),
            {"ids": chat_ids, "limit": budget},
        ).rowcount
        batch.add(table, deleted)
        if deleted >= budget:
            return False  # this table may hold more of these chats' rows: the next batch goes on
    # Nothing cascades from these chats any more; deleting them stays within the budget.
    doomed = chat_ids[: batch.remaining]
    deleted = session.execute(  # type: ignore[attr-defined]
        sa.text("DELETE FROM chats WHERE id = ANY(:ids)"), {"ids": doomed}
    ).rowcount
    batch.add("chats", deleted)
    return len(doomed) == len(chat_ids)


def _purge_files(session: Session, cutoff: datetime, batch: PurgeBatch) -> None:
    deleted = session.execute(  # type: ignore[attr-defined]
        EXPIRED_FILES_SQL, {"cutoff": cutoff, "limit": batch.remaining}
    ).rowcount
    batch.add("chat_files", deleted)
