"""Cost reports (reference §1.10 "Cost", §5.4): spend per user, per model and per root chat.

Every figure is one function over one source, :func:`usage_facts`: the window's assistant
messages summed per (owner, root chat, model config). Only assistant messages carry a cost;
a message counts when it is priced (cost not NULL) or unpriced (cost NULL but some token count
present), and soft-deleted (edited-away) messages still count — the money was spent.

The sums come from the rollups (``models.usage.rollups``), never from a scan of all messages:
the day buckets of the whole UTC days inside the window, plus the messages of those days that
are not rolled up yet (the pending tail), plus the raw messages of the partial days at the
window's edges (at most two days' worth). Each report is one SQL statement, so it sees the
buckets and the tail under one snapshot: a message is in exactly one of them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from models.chat.tables import Chat, ChatMessage
from models.enums import MessageRole
from models.identity.tables import User
from models.providers.tables import ChatModelConfig
from models.usage.rollups import NO_MODEL, UsageChatDay, UsageRollupPending, UsageUserDay

_msg = ChatMessage.__table__  # type: ignore[attr-defined]
_chat = Chat.__table__  # type: ignore[attr-defined]
_user = User.__table__  # type: ignore[attr-defined]
_model = ChatModelConfig.__table__  # type: ignore[attr-defined]
_pending = UsageRollupPending.__table__  # type: ignore[attr-defined]
_chat_days = UsageChatDay.__table__  # type: ignore[attr-defined]
_user_days = UsageUserDay.__table__  # type: ignore[attr-defined]

TOKEN_COLUMNS = {
    "total_input_tokens": "input_tokens",
    "total_output_tokens": "output_tokens",
    "total_cache_read_tokens": "cache_read_tokens",
    "total_cache_creation_tokens": "cache_creation_tokens",
}
# Any of these set means the message reported usage (zero counts are stored as NULL).
USAGE_COLUMNS = (*TOKEN_COLUMNS.values(), "total_tokens", "reasoning_tokens")
# The summed columns of a facts row, in wire names.
SUM_COLUMNS = ("total_cost_micros", *TOKEN_COLUMNS, "total_runtime_ms")


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """[first, last): the UTC days that lie wholly inside [start, end), or None if none does."""
    first = datetime.combine(start.astimezone(UTC).date(), time(), UTC)
    if first < start:
        first += timedelta(days=1)
    last = datetime.combine(end.astimezone(UTC).date(), time(), UTC)
    return (first, last) if first < last else None


def _pieces(
    start: datetime, end: datetime
) -> tuple[tuple[datetime, datetime] | None, list[tuple[datetime, datetime]]]:
    """(whole days read from the rollups, [edge ranges read from the raw messages])."""
    days = whole_days(start, end)
    edges = [(start, end)] if days is None else [(start, days[0]), (days[1], end)]
    return days, [(lo, hi) for lo, hi in edges if lo < hi]


def _message_spend(
    user_id: uuid.UUID, lo: datetime, hi: datetime, *, pending_only: bool
) -> sa.ScalarSelect[Any]:
    """Micro-dollars of the user's priced messages created in [lo, hi) (any role, as Coder's
    spend query; it reads idx_chat_messages_owner_spend), optionally only pending ones."""
    source = _msg.join(_chat, _chat.c.id == _msg.c.chat_id)
    if pending_only:
        source = _pending.join(source, _msg.c.id == _pending.c.message_id)
    return (
        sa.select(sa.func.coalesce(sa.func.sum(_msg.c.total_cost_micros), 0))
        .select_from(source)
        .where(
            _chat.c.owner_id == user_id,
            _msg.c.total_cost_micros.is_not(None),
            _msg.c.created_at >= lo,
            _msg.c.created_at < hi,
        )
        .scalar_subquery()
    )


def user_spend(session: Session, user_id: uuid.UUID, start: datetime, end: datetime) -> int:
    """Micro-dollars a user spent on messages created in [start, end), children included
    (the usage-limit figure): the user's day rollups, the pending tail and the edges."""
    days, edges = _pieces(start, end)
    terms: list[sa.ColumnElement[Any]] = []
    if days is not None:
        terms.append(
            sa.select(sa.func.coalesce(sa.func.sum(_user_days.c.spend_micros), 0))
            .where(
                _user_days.c.user_id == user_id,
                _user_days.c.day >= days[0].date(),
                _user_days.c.day < days[1].date(),
            )
            .scalar_subquery()
        )
        terms.append(_message_spend(user_id, *days, pending_only=True))
    terms += [_message_spend(user_id, lo, hi, pending_only=False) for lo, hi in edges]
    if not terms:  # an empty window
        return 0
    total: sa.ColumnElement[Any] = terms[0]
    for term in terms[1:]:
        total = total + term
    return int(session.execute(sa.select(total)).scalar_one())


# The columns of one piece of :func:`usage_facts`, in this order.
_FACT_COLUMNS = (
    "total_cost_micros",
    "priced",
    "unpriced",
    "message_count",
    *TOKEN_COLUMNS,
    "total_runtime_ms",
)


def _message_facts(
    lo: datetime, hi: datetime, owner_id: uuid.UUID | None, *, pending_only: bool
) -> sa.Select[Any]:
    """Facts of the raw assistant messages created in [lo, hi), optionally only pending ones."""
    has_usage = sa.or_(*(_msg.c[col].is_not(None) for col in USAGE_COLUMNS))
    priced = _msg.c.total_cost_micros.is_not(None)
    unpriced = sa.and_(_msg.c.total_cost_micros.is_(None), has_usage)
    root = sa.func.coalesce(_chat.c.root_chat_id, _chat.c.id)
    where = [
        _msg.c.role == MessageRole.ASSISTANT,
        _msg.c.created_at >= lo,
        _msg.c.created_at < hi,
        sa.or_(priced, unpriced),
    ]
    if owner_id is not None:
        where.append(_chat.c.owner_id == owner_id)
    source = _msg.join(_chat, _chat.c.id == _msg.c.chat_id)
    if pending_only:
        source = _pending.join(source, _msg.c.id == _pending.c.message_id)
    return (
        sa.select(
            _chat.c.owner_id,
            root.label("root_chat_id"),
            _msg.c.model_config_id,
            sa.func.sum(_msg.c.total_cost_micros).label("total_cost_micros"),
            sa.func.count().filter(priced).label("priced"),
            sa.func.count().filter(unpriced).label("unpriced"),
            sa.func.count().label("message_count"),
            *(sa.func.sum(_msg.c[col]).label(wire) for wire, col in TOKEN_COLUMNS.items()),
            sa.func.sum(_msg.c.runtime_ms).label("total_runtime_ms"),
        )
        .select_from(source)
        .where(*where)
        .group_by(_chat.c.owner_id, root, _msg.c.model_config_id)
    )


def _rolled_facts(days: tuple[datetime, datetime], owner_id: uuid.UUID | None) -> sa.Select[Any]:
    """Facts of the day buckets of the whole days [first, last)."""
    b = _chat_days.c
    root = sa.func.coalesce(_chat.c.root_chat_id, _chat.c.id)
    model = sa.func.nullif(b.model_config_id, sa.literal(NO_MODEL, sa.Uuid))
    where = [b.day >= days[0].date(), b.day < days[1].date()]
    if owner_id is not None:
        where.append(_chat.c.owner_id == owner_id)
    return (
        sa.select(
            _chat.c.owner_id,
            root.label("root_chat_id"),
            model.label("model_config_id"),
            sa.func.sum(b.total_cost_micros),
            sa.func.sum(b.priced_count),
            sa.func.sum(b.unpriced_count),
            sa.func.sum(b.priced_count + b.unpriced_count),
            *(sa.func.sum(b[col]) for col in TOKEN_COLUMNS.values()),
            sa.func.sum(b.runtime_ms),
        )
        .select_from(_chat_days.join(_chat, _chat.c.id == b.chat_id))
        .where(*where)
        .group_by(_chat.c.owner_id, root, model)
    )


def usage_facts(start: datetime, end: datetime, owner_id: uuid.UUID | None = None) -> sa.Subquery:
    """Per (owner_id, root_chat_id, model_config_id): total_cost_micros, priced, unpriced,
    message_count, the four token totals and total_runtime_ms of the window [start, end)."""
    days, edges = _pieces(start, end)
    pieces: list[sa.Select[Any]] = []
    if days is not None:
        pieces.append(_rolled_facts(days, owner_id))
        pieces.append(_message_facts(*days, owner_id, pending_only=True))
    pieces += [_message_facts(lo, hi, owner_id, pending_only=False) for lo, hi in edges]
    if not pieces:  # an empty window: a piece that finds nothing
        pieces.append(_message_facts(start, end, owner_id, pending_only=False))
    union = (pieces[0] if len(pieces) == 1 else sa.union_all(*pieces)).subquery("pieces")
    keys = (union.c.owner_id, union.c.root_chat_id, union.c.model_config_id)
    return (
        sa.select(
            *keys,
            *(
                sa.func.coalesce(sa.func.sum(col), 0).label(name)
                for name, col in zip(_FACT_COLUMNS, list(union.c)[3:], strict=True)
            ),
        )
        .group_by(*keys)
        .subquery("facts")
    )


def tree_costs(session: Session, root_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """All-time micro-dollars of each chat tree (a root and its subagents), from the rollups
    and the pending tail (PR insights join cost through the root chat, reference §7)."""
    if not root_ids:
        return {}
    root = sa.func.coalesce(_chat.c.root_chat_id, _chat.c.id)
    rolled = (
        sa.select(root.label("root"), _chat_days.c.total_cost_micros.label("cost"))
        .select_from(_chat_days.join(_chat, _chat.c.id == _chat_days.c.chat_id))
        .where(root.in_(root_ids))
    )
    tail = (
        sa.select(root.label("root"), _msg.c.total_cost_micros.label("cost"))
        .select_from(
            _pending.join(_msg, _msg.c.id == _pending.c.message_id).join(
                _chat, _chat.c.id == _msg.c.chat_id
            )
        )
        .where(root.in_(root_ids), _msg.c.role == MessageRole.ASSISTANT)
    )
    both = sa.union_all(rolled, tail).subquery("tree")
    rows = session.execute(
        sa.select(both.c.root, sa.func.coalesce(sa.func.sum(both.c.cost), 0)).group_by(both.c.root)
    ).all()
    return {r[0]: int(r[1]) for r in rows}


def _sums(facts: sa.Subquery) -> list[sa.Label[Any]]:
    return [
        sa.cast(sa.func.coalesce(sa.func.sum(facts.c[name]), 0), sa.BigInteger).label(name)
        for name in (*SUM_COLUMNS, "message_count")
    ]


def _row(row: Any) -> dict[str, Any]:
    return {name: int(getattr(row, name)) for name in (*SUM_COLUMNS, "message_count")}


def users_rollup(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    username: str = "",
    limit: int = 10,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """``GET /cost/users``: (number of matching users, one page of them), by cost descending
    then username. Users with no counted message in the window are not listed."""
    facts = usage_facts(start, end)
    stmt = (
        sa.select(
            _user.c.id,
            _user.c.username,
            _user.c.name,
            *_sums(facts),
            sa.func.count(sa.distinct(facts.c.root_chat_id)).label("chat_count"),
            sa.func.count().over().label("total_users"),
        )
        .select_from(facts.join(_user, _user.c.id == facts.c.owner_id))
        .group_by(_user.c.id, _user.c.username, _user.c.name)
        .order_by(sa.desc("total_cost_micros"), _user.c.username, _user.c.id)
        .limit(limit)
        .offset(offset)
    )
    if username:
        stmt = stmt.where(_name_matches(username))
    rows = session.execute(stmt).all()
    total = int(rows[0].total_users) if rows else _count_users(session, facts, username)
    return total, [
        {
            "user_id": str(r.id),
            "username": r.username,
            "name": r.name,
            "avatar_url": "",  # agentfarm keeps no avatars
            **_row(r),
            "chat_count": int(r.chat_count),
        }
        for r in rows
    ]


def _name_matches(text: str) -> sa.ColumnElement[bool]:
    """[inferred] ``username`` filters by a case-insensitive substring of username or name."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return sa.or_(
        _user.c.username.ilike(pattern, escape="\\"), _user.c.name.ilike(pattern, escape="\\")
    )


def _count_users(session: Session, facts: sa.Subquery, username: str) -> int:
    """The total when the requested page is past the end (the window function saw no rows)."""
    stmt = sa.select(sa.func.count(sa.distinct(facts.c.owner_id))).select_from(
        facts.join(_user, _user.c.id == facts.c.owner_id)
    )
    if username:
        stmt = stmt.where(_name_matches(username))
    return int(session.execute(stmt).scalar_one())


def user_totals(
    session: Session, user_id: uuid.UUID, start: datetime, end: datetime
) -> dict[str, Any]:
    """The top of ChatCostSummary: total cost, priced and unpriced counts, token totals."""
    facts = usage_facts(start, end, user_id)
    row = session.execute(
        sa.select(
            *_sums(facts),
            sa.cast(sa.func.coalesce(sa.func.sum(facts.c.priced), 0), sa.BigInteger).label("p"),
            sa.cast(sa.func.coalesce(sa.func.sum(facts.c.unpriced), 0), sa.BigInteger).label("u"),
        )
    ).one()
    out = _row(row)
    out.pop("message_count")
    return {**out, "priced_message_count": int(row.p), "unpriced_message_count": int(row.u)}


def user_by_model(
    session: Session, user_id: uuid.UUID, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """ChatCostSummary.by_model: per model config, by cost descending."""
    facts = usage_facts(start, end, user_id)
    rows = session.execute(
        sa.select(
            facts.c.model_config_id,
            _model.c.display_name,
            _model.c.provider,
            _model.c.model,
            *_sums(facts),
        )
        .select_from(facts.outerjoin(_model, _model.c.id == facts.c.model_config_id))
        .group_by(facts.c.model_config_id, _model.c.display_name, _model.c.provider, _model.c.model)
        .order_by(sa.desc("total_cost_micros"), _model.c.model, facts.c.model_config_id)
    ).all()
    return [
        {
            "model_config_id": str(r.model_config_id) if r.model_config_id else None,
            "display_name": r.display_name or r.model or "",
            "provider": r.provider or "",
            "model": r.model or "",
            **_row(r),
        }
        for r in rows
    ]


def user_by_chat(
    session: Session, user_id: uuid.UUID, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """ChatCostSummary.by_chat: per root chat (its subagents' spend included), by cost
    descending ([inferred] order, as by_model)."""
    facts = usage_facts(start, end, user_id)
    rows = session.execute(
        sa.select(facts.c.root_chat_id, _chat.c.title, *_sums(facts))
        .select_from(facts.outerjoin(_chat, _chat.c.id == facts.c.root_chat_id))
        .group_by(facts.c.root_chat_id, _chat.c.title)
        .order_by(sa.desc("total_cost_micros"), facts.c.root_chat_id)
    ).all()
    return [
        {"root_chat_id": str(r.root_chat_id), "chat_title": r.title or "", **_row(r)} for r in rows
    ]
