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

:func:`purge_batch` deletes at most ``batch_size`` rows (and reads at most
``SCAN_BLOCKS`` pages) in the caller's transaction, so no lock is held long and a crash loses
only the batch in flight. Expired chats go in cycles:

1. **Doom.** One short transaction locks the expired chats (up to ``MAX_DOOMED``) and records
   them in ``chat_purges``. From then on the set is final: unarchiving a doomed chat is
   refused (``models.chat.updates.set_archived``), and whatever else changes on it, it goes.
2. **Sweep.** Every table whose foreign key to ``chats`` is ON DELETE CASCADE (read from the
   catalog, so a new table is covered too) is walked in page order, a range of pages a step
   (``FIRST_SWEEP_BLOCKS`` doubling up to ``MAX_SWEEP_BLOCKS``), deleting the doomed chats'
   rows from each range. A chat's rows are scattered over the pages among every other chat
   active at the same time; deleting chat by chat touched a page for almost every row, page
   order touches each page once per cycle. Where the doomed chats are sparse in a table (under
   one row per ``SWEEP_MIN_DENSITY`` pages: a few chats expiring in a big table), reading
   every page would cost more than their rows, so that table goes through its chat index
   instead. Where the sweep stands is kept in ``purge_sweeps``, written in the same
   transaction as the deletes, so the next batch (whoever runs it) goes on from there.
3. **Chats.** The doomed chats are deleted, children before their root (so an interrupted
   purge never leaves a child whose root is gone); the cascades find only rows written after
   the sweep passed. References that are ON DELETE SET NULL (a child's parent/root, a
   workspace process) are left to Postgres.

Then the files nothing kept references. Chats that expire during a cycle wait for the next.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from models.base import utcnow
from models.chat.tables import FILE_PARTS_PREDICATE
from models.errors import BadRequest
from models.workspaces.rules import get_setting, put_setting

RETENTION_DAYS_KEY = "retention_days"
DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 3650
DEFAULT_BATCH_SIZE = 10_000
# Transaction-level advisory lock: at most one purge batch runs at a time in the whole farm.
PURGE_LOCK_KEY = 0x61667267  # "afrg"
LOCK_TIMEOUT = "5s"

# A chat whose files (and whose own rows) the purge must keep.
_KEPT = "(NOT c.archived OR c.updated_at >= :cutoff)"

# At most this many chats are doomed per cycle (one transaction locks them all).
MAX_DOOMED = 20_000
# Pages a sweep step covers (it starts small and doubles while a step finds less than half
# the batch's remaining budget), and pages a batch may read in all (8 kB each).
FIRST_SWEEP_BLOCKS = 64
MAX_SWEEP_BLOCKS = 2048
SCAN_BLOCKS = 8192
# A table is swept page by page when the doomed chats have at least one row per this many of
# its pages; sparser (a few chats expiring in a big table), their rows are deleted through the
# table's chat index instead (``next_block`` = BY_CHAT).
SWEEP_MIN_DENSITY = 4
BY_CHAT = -1

DOOM_SQL = sa.text(
    """
    INSERT INTO chat_purges (chat_id)
    SELECT id FROM chats
     WHERE archived AND updated_at < :cutoff
     LIMIT :limit
     FOR UPDATE SKIP LOCKED
    ON CONFLICT DO NOTHING
    """
)
# Children first (a root goes after its subagents).
DOOMED_CHATS_SQL = sa.text(
    """
    SELECT c.id FROM chat_purges p JOIN chats c ON c.id = p.chat_id
     ORDER BY c.root_chat_id IS NULL
     LIMIT :limit
    """
)
# Chats are deleted this many a statement while the batch is younger than CHATS_PHASE_S:
# each delete runs the foreign-key actions of every table that references chats, which walk
# the chat's index entries to its dead rows (0.5 ms a chat on the machine's Postgres, 1.1-1.7
# ms on the embedded one), so a row budget alone would not bound the batch's time.
CHATS_PER_STATEMENT = 50
CHATS_PHASE_S = 0.3
# The sweep's table after these chat-owned tables: the doomed chats themselves.
CHATS_PHASE = "chats"

CASCADING_TABLES_SQL = sa.text(
    """
    SELECT con.conrelid::regclass::text, quote_ident(att.attname)
      FROM pg_constraint con
      JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
     WHERE con.contype = 'f' AND con.confrelid = 'chats'::regclass
       AND con.confdeltype = 'c' AND cardinality(con.conkey) = 1
       AND con.conrelid <> 'chat_purges'::regclass
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


class ChatPurge(SQLModel, table=True):
    """A chat the current purge cycle deletes (doomed: it can no longer be unarchived)."""

    __tablename__ = "chat_purges"

    chat_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
        )
    )
    doomed_at: datetime = Field(
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        )
    )


class PurgeSweep(SQLModel, table=True):
    """Where the current purge cycle's sweep stands (one row while a cycle runs)."""

    __tablename__ = "purge_sweeps"
    __table_args__ = (sa.CheckConstraint("singleton", name="ck_purge_sweeps_singleton"),)

    singleton: bool = Field(
        default=True, sa_column=sa.Column(sa.Boolean, primary_key=True, server_default=sa.true())
    )
    relation: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    next_block: int = Field(
        default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0")
    )
    started_at: datetime = Field(
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        )
    )


@dataclass
class PurgeBatch:
    """What one batch deleted, by table."""

    batch_size: int
    deleted: dict[str, int] = field(default_factory=dict)
    # Another purge batch held the lock, so this one did nothing.
    busy: bool = False
    # The batch stopped with work left (its row or page budget ran out mid-cycle).
    more: bool = False
    blocks: int = 0  # pages the sweep read
    started: float = field(default_factory=time.monotonic)
    page_order: bool | None = None  # None: chosen per table by density

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    @property
    def remaining(self) -> int:
        return max(self.batch_size - self.total, 0)

    @property
    def full(self) -> bool:
        """A budget was used up, so work may be left for another batch."""
        return self.more or self.total >= self.batch_size

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
    session: Session,
    *,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    page_order: bool | None = None,
) -> PurgeBatch:
    """Delete at most ``batch_size`` expired rows (chats and what cascades from them first,
    then files) in the session's transaction; the caller commits. A batch that comes back
    ``full`` may have left rows behind; one that does not found nothing more to delete.
    ``page_order``: sweep every table in page order (True) or through its chat index (False)
    instead of choosing by density (None, see ``SWEEP_MIN_DENSITY``)."""
    batch = PurgeBatch(batch_size, page_order=page_order)
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
    """Go on with the purge cycle (doom, sweep, chats) within the batch's budgets."""
    tables = dict(cascading_tables(session))
    sweep = session.execute(sa.text("SELECT relation, next_block FROM purge_sweeps")).first()
    if sweep is None:
        doomed = session.execute(DOOM_SQL, {"cutoff": cutoff, "limit": MAX_DOOMED}).rowcount  # type: ignore[attr-defined]
        leftover = session.execute(sa.text("SELECT EXISTS (SELECT 1 FROM chat_purges)"))
        if not doomed and not leftover.scalar_one():
            return  # nothing expired: no cycle
        relation, block = _table_after(tables, ""), 0
        session.execute(
            sa.text("INSERT INTO purge_sweeps (relation, next_block) VALUES (:r, 0)"),
            {"r": relation},
        )
    else:
        relation, block = sweep.relation, int(sweep.next_block)
    relation, block = _sweep(session, tables, relation, block, batch)
    if relation == CHATS_PHASE and batch.remaining > 0 and not batch.more:
        if not _delete_doomed(session, batch):
            session.execute(sa.text("DELETE FROM purge_sweeps"))
            return
    session.execute(
        sa.text("UPDATE purge_sweeps SET relation = :r, next_block = :b"),
        {"r": relation, "b": block},
    )
    batch.more = True


def _table_after(tables: dict[str, str], relation: str) -> str:
    """The cascading table the sweep takes after ``relation`` (by name), or the chats."""
    return min((t for t in tables if t > relation), default=CHATS_PHASE)


def _sweep(
    session: Session, tables: dict[str, str], relation: str, block: int, batch: PurgeBatch
) -> tuple[str, int]:
    """Delete doomed chats' rows from ``relation`` on (``tables``: cascading table -> its chat
    column), a range of pages at a time or through the chat index, until the tables are
    done or a budget runs out; returns where the sweep stands."""
    step = FIRST_SWEEP_BLOCKS
    size: int | None = None  # pages of ``relation``, read once per table
    while relation != CHATS_PHASE:
        if relation in tables and size is None:
            size = int(
                session.execute(
                    sa.text(
                        "SELECT pg_relation_size(CAST(:t AS regclass))"
                        " / current_setting('block_size')::bigint"
                    ),
                    {"t": relation},
                ).scalar_one()
            )
        # A table gone since the cycle began, or swept to its end: on to the next.
        if relation not in tables or size is None or block >= size:
            relation, block, size = _table_after(tables, relation), 0, None
            continue
        if batch.remaining <= 0 or batch.blocks >= SCAN_BLOCKS:
            batch.more = True
            return relation, block
        column = tables[relation]
        if block == 0 and _by_chat_index(session, batch, relation, column, size):
            block = BY_CHAT
        if block == BY_CHAT:
            if _delete_by_chat(session, relation, column, batch):
                batch.more = True
                return relation, BY_CHAT
            relation, block, size = _table_after(tables, relation), 0, None
            continue
        budget, end = batch.remaining, block + step
        deleted, last = session.execute(
            sa.text(
                f"WITH gone AS (DELETE FROM {relation} WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {relation}"
                f" WHERE ctid >= CAST(:lo AS tid) AND ctid < CAST(:hi AS tid)"
                f" AND {column} IN (SELECT chat_id FROM chat_purges)"
                f" ORDER BY ctid LIMIT :limit)) RETURNING ctid)"
                " SELECT count(*), max((ctid::text::point)[0])::bigint FROM gone"
            ),
            {"lo": f"({block},0)", "hi": f"({end},0)", "limit": budget},
        ).one()
        batch.add(relation, deleted)
        batch.blocks += min(end, size) - block
        if deleted >= budget:
            # The range may hold more: the next batch goes on from the last page this one
            # deleted on (it took the range's rows in page order).
            batch.more = True
            return relation, int(last)
        if deleted < budget // 2:
            step = min(step * 2, MAX_SWEEP_BLOCKS)
        block = end
    return relation, block


def _by_chat_index(
    session: Session, batch: PurgeBatch, relation: str, column: str, pages: int
) -> bool:
    """How this table is swept: as the caller asked (``page_order``), else by density."""
    if batch.page_order is not None:
        return not batch.page_order
    return _sparse(session, relation, column, pages)


def _sparse(session: Session, relation: str, column: str, pages: int) -> bool:
    """Whether the doomed chats have too few rows in ``relation`` to be worth reading every
    page: fewer than one per ``SWEEP_MIN_DENSITY`` pages (counted through the index, capped
    there). A cycle with a handful of chats then costs their rows, not the table's size."""
    cap = max(1, pages // SWEEP_MIN_DENSITY)
    found = session.execute(
        sa.text(
            f"SELECT count(*) FROM (SELECT 1 FROM {relation}"
            f" WHERE {column} IN (SELECT chat_id FROM chat_purges) LIMIT :cap) s"
        ),
        {"cap": cap},
    ).scalar_one()
    return bool(found < cap)


def _delete_by_chat(session: Session, relation: str, column: str, batch: PurgeBatch) -> bool:
    """Delete doomed chats' rows from ``relation`` through its index, within the row budget;
    True when the budget ran out (rows may be left)."""
    budget = batch.remaining
    deleted = session.execute(  # type: ignore[attr-defined]
        sa.text(
            f"DELETE FROM {relation} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {relation}"
            f" WHERE {column} IN (SELECT chat_id FROM chat_purges) LIMIT :limit))"
        ),
        {"limit": budget},
    ).rowcount
    batch.add(relation, deleted)
    return bool(deleted >= budget)


def _delete_doomed(session: Session, batch: PurgeBatch) -> bool:
    """The doomed chats themselves, children first, within the row budget (their cascades
    find only what was written after the sweep passed), ``CHATS_PER_STATEMENT`` at a time
    until the batch has run ``CHATS_PHASE_S``; True when some may be left."""
    while batch.remaining > 0:
        if time.monotonic() - batch.started > CHATS_PHASE_S:
            return True
        limit = min(batch.remaining, CHATS_PER_STATEMENT)
        ids = list(session.execute(DOOMED_CHATS_SQL, {"limit": limit}).scalars())
        if ids:
            deleted = session.execute(  # type: ignore[attr-defined]
                sa.text("DELETE FROM chats WHERE id = ANY(:ids)"), {"ids": ids}
            ).rowcount
            batch.add("chats", deleted)
        if len(ids) < limit:
            return False
    return True


def is_doomed(session: Session, chat_ids: list[Any]) -> bool:
    """Whether a purge cycle has doomed any of these chats."""
    return bool(
        session.execute(
            sa.text("SELECT EXISTS (SELECT 1 FROM chat_purges WHERE chat_id = ANY(:ids))"),
            {"ids": chat_ids},
        ).scalar_one()
    )


def _purge_files(session: Session, cutoff: datetime, batch: PurgeBatch) -> None:
    deleted = session.execute(  # type: ignore[attr-defined]
        EXPIRED_FILES_SQL, {"cutoff": cutoff, "limit": batch.remaining}
    ).rowcount
    batch.add("chat_files", deleted)
