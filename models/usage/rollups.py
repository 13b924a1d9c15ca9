"""Cost rollups (issue 7 §3): message cost and tokens per UTC day, per chat and per user.

How a message gets into the rollups, exactly once
- An AFTER INSERT trigger on ``chat_messages`` (migration 0012) writes the id of every message
  that can carry spend (assistant messages, and any message with a cost) into
  ``usage_rollup_pending``, in the inserting transaction. Nothing in the application has to
  remember to do it, so rows written by any path (steps, compaction, tests, imports) count.
- :func:`rollup_batch` consumes up to ``batch_size`` pending ids and adds their messages to the
  day buckets in ONE statement: the pending rows are deleted and the sums added under the same
  snapshot and in the same transaction. A message is therefore either still pending or in the
  buckets, never both and never neither — whatever commits concurrently: a message and its
  pending id become visible together, and an id not yet visible is simply consumed by a later
  batch. Re-running changes nothing (consumed ids are gone); a crashed batch rolls back whole.
  One batch runs at a time (a transaction-level advisory lock), so two never race on a bucket.
- Readers (``models.usage.cost_reports``) add the buckets of the whole days in their window, the
  pending messages of those days (the not-yet-rolled tail: at most one interval of traffic)
  and the raw messages of the partial days at the window's edges, in one statement, so they
  see one consistent snapshot.

Tables
- ``usage_chat_days``: per (chat, UTC day, model config) the figures the cost reports show:
  assistant messages that are priced or report usage. It cascades with its chat, so a chat
  removed by the retention purge leaves the reports exactly as a scan of the messages would.
- ``usage_user_days``: per (user, UTC day, model config) the same figures plus
  ``spend_micros``, the cost of every priced message (any role), which the usage-limit checks
  read. It is a ledger: purging an archived chat does not refund its spend.
- A message without a model config is counted under :data:`NO_MODEL` (the key columns are
  part of the primary key, so they cannot be NULL); readers map it back to NULL.
"""

from __future__ import annotations

import uuid
from datetime import date

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

# [inferred] internal key for "no model config" (see the module docstring).
NO_MODEL = uuid.UUID(int=0)
# Transaction-level advisory lock: at most one rollup batch runs at a time in the farm.
ROLLUP_LOCK_KEY = 0x61667275  # "afru"
DEFAULT_BATCH_SIZE = 5000

# Summed columns of both bucket tables (assistant messages that count in the cost reports).
FIGURE_COLUMNS = (
    "total_cost_micros",
    "priced_count",
    "unpriced_count",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "runtime_ms",
)


def _figure() -> sa.Column:
    return sa.Column(sa.BigInteger, nullable=False, server_default="0")


def _owner_key(target: str) -> sa.Column:
    """The leading primary-key column: a foreign key that cascades."""
    return sa.Column(sa.Uuid, sa.ForeignKey(target, ondelete="CASCADE"), primary_key=True)


class UsageRollupPending(SQLModel, table=True):
    """Ids of messages not rolled up yet (filled by the trigger, drained by the rollup)."""

    __tablename__ = "usage_rollup_pending"

    message_id: int = Field(
        sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False)
    )


class UsageChatDay(SQLModel, table=True):
    __tablename__ = "usage_chat_days"
    __table_args__ = (sa.Index("idx_usage_chat_days_day", "day"),)

    chat_id: uuid.UUID = Field(sa_column=_owner_key("chats.id"))
    day: date = Field(sa_column=sa.Column(sa.Date, primary_key=True))
    model_config_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, primary_key=True))
    total_cost_micros: int = Field(default=0, sa_column=_figure())
    priced_count: int = Field(default=0, sa_column=_figure())
    unpriced_count: int = Field(default=0, sa_column=_figure())
    input_tokens: int = Field(default=0, sa_column=_figure())
    output_tokens: int = Field(default=0, sa_column=_figure())
    cache_read_tokens: int = Field(default=0, sa_column=_figure())
    cache_creation_tokens: int = Field(default=0, sa_column=_figure())
    runtime_ms: int = Field(default=0, sa_column=_figure())


class UsageUserDay(SQLModel, table=True):
    __tablename__ = "usage_user_days"

    user_id: uuid.UUID = Field(sa_column=_owner_key("users.id"))
    day: date = Field(sa_column=sa.Column(sa.Date, primary_key=True))
    model_config_id: uuid.UUID = Field(sa_column=sa.Column(sa.Uuid, primary_key=True))
    spend_micros: int = Field(default=0, sa_column=_figure())
    total_cost_micros: int = Field(default=0, sa_column=_figure())
    priced_count: int = Field(default=0, sa_column=_figure())
    unpriced_count: int = Field(default=0, sa_column=_figure())
    input_tokens: int = Field(default=0, sa_column=_figure())
    output_tokens: int = Field(default=0, sa_column=_figure())
    cache_read_tokens: int = Field(default=0, sa_column=_figure())
    cache_creation_tokens: int = Field(default=0, sa_column=_figure())
    runtime_ms: int = Field(default=0, sa_column=_figure())


# A group's figures in FIGURE_COLUMNS order: only counted messages add to them.
_SUMS = """
    coalesce(sum(total_cost_micros) FILTER (WHERE counted), 0),
    count(*) FILTER (WHERE counted AND total_cost_micros IS NOT NULL),
    count(*) FILTER (WHERE counted AND total_cost_micros IS NULL),
    coalesce(sum(input_tokens) FILTER (WHERE counted), 0),
    coalesce(sum(output_tokens) FILTER (WHERE counted), 0),
    coalesce(sum(cache_read_tokens) FILTER (WHERE counted), 0),
    coalesce(sum(cache_creation_tokens) FILTER (WHERE counted), 0),
    coalesce(sum(runtime_ms) FILTER (WHERE counted), 0)"""


def _add_to_days(
    table: str,
    key: str,
    source: str,
    *,
    extra: dict[str, str] | None = None,
    where: str = "",
    having: str = "",
) -> str:
    """An INSERT … SELECT that adds the ``msgs`` rows, grouped by (``source``, day, model
    config), to the buckets of ``table`` keyed by ``key``: a new bucket, or its figures plus
    these. ``extra`` is more summed columns (name → aggregate over the group) before the
    figures; ``where``/``having`` choose the rows and the groups."""
    extra = extra or {}
    columns = ", ".join([*extra, *FIGURE_COLUMNS])
    values = ", ".join([*extra.values(), _SUMS])
    add = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in [*extra, *FIGURE_COLUMNS])
    return f"""
        INSERT INTO {table} ({key}, day, model_config_id, {columns})
        SELECT {source}, day, model_config_id, {values}
          FROM msgs {where} GROUP BY {source}, day, model_config_id
        {having}
        ON CONFLICT ({key}, day, model_config_id)
        DO UPDATE SET {add}
        RETURNING 1"""


# Per chat: the messages the cost reports count. Per user: also the spend of every priced
# message (any role), which the usage-limit checks read.
_PER_CHAT = _add_to_days("usage_chat_days", "chat_id", "chat_id", where="WHERE counted")
_PER_USER = _add_to_days(
    "usage_user_days",
    "user_id",
    "owner_id",
    extra={"spend_micros": "coalesce(sum(total_cost_micros), 0)"},
    having="HAVING bool_or(counted) OR bool_or(total_cost_micros IS NOT NULL)",
)

# One statement: consume a batch of pending ids and add their messages to both bucket tables.
ROLLUP_SQL = sa.text(
    f"""
    WITH batch AS (
        SELECT message_id FROM usage_rollup_pending
         ORDER BY message_id LIMIT :limit FOR UPDATE SKIP LOCKED
    ), done AS (
        DELETE FROM usage_rollup_pending p USING batch b
         WHERE p.message_id = b.message_id RETURNING p.message_id
    ), msgs AS (
        SELECT m.chat_id, c.owner_id,
               (m.created_at AT TIME ZONE 'UTC')::date AS day,
               coalesce(m.model_config_id, :no_model) AS model_config_id,
               m.total_cost_micros, m.input_tokens, m.output_tokens, m.cache_read_tokens,
               m.cache_creation_tokens, m.runtime_ms,
               m.role = 'assistant' AND (m.total_cost_micros IS NOT NULL
                   OR num_nonnulls(m.input_tokens, m.output_tokens, m.cache_read_tokens,
                                   m.cache_creation_tokens, m.total_tokens,
                                   m.reasoning_tokens) > 0) AS counted
          FROM done JOIN chat_messages m ON m.id = done.message_id
          JOIN chats c ON c.id = m.chat_id
    ), per_chat AS ({_PER_CHAT}
    ), per_user AS ({_PER_USER}
    )
    SELECT (SELECT count(*) FROM done) AS consumed,
           (SELECT count(*) FROM msgs WHERE counted) AS counted
    """
)


class RollupBatch:
    """What one batch did: pending ids consumed, of which messages counted in the reports."""

    def __init__(self, batch_size: int, consumed: int = 0, counted: int = 0, busy: bool = False):
        self.batch_size = batch_size
        self.consumed = consumed
        self.counted = counted
        self.busy = busy

    @property
    def full(self) -> bool:
        """The batch used its whole budget, so more ids may be waiting."""
        return self.consumed >= self.batch_size


def rollup_batch(session: Session, *, batch_size: int = DEFAULT_BATCH_SIZE) -> RollupBatch:
    """Roll up at most ``batch_size`` pending messages in the caller's transaction (the caller
    commits). Returns ``busy`` without doing anything while another batch holds the lock."""
    locked = session.execute(
        sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ROLLUP_LOCK_KEY}
    ).scalar_one()
    if not locked:
        return RollupBatch(batch_size, busy=True)
    row = session.execute(ROLLUP_SQL, {"limit": batch_size, "no_model": NO_MODEL}).one()
    return RollupBatch(batch_size, int(row.consumed), int(row.counted))


def pending_count(session: Session) -> int:
    """How many messages wait to be rolled up (for operators and tests)."""
    return int(session.execute(sa.text("SELECT count(*) FROM usage_rollup_pending")).scalar_one())
