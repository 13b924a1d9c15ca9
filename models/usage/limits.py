"""Chat usage limits: spend caps per user and UTC period (reference §5.3, §1.9).

Rules
- The cap applies only while ``chat_usage_limit_config.enabled``. The effective limit of a user
  is their own override (``users.chat_spend_limit_micros``), else the strictest (lowest)
  ``groups.chat_spend_limit_micros`` among their groups, else the deployment default.
- Periods are UTC: a day from 00:00; an ISO week from Monday 00:00; a calendar month from the
  1st 00:00. Spend is the sum of ``total_cost_micros`` over every chat the user owns
  (subagents included) for messages created in [period start, period end).
- A user whose spend has reached the limit (spend >= limit) is refused with §1.9's 409 on
  create, send, edit, promote and title regeneration, and a subagent spawn fails with the
  same message as its tool result. Unpriced models cost nothing, so they never reach a cap.
- Unlike Coder, a resolver error is not ignored ("fail open"): it fails the request, since
  the point of a cap is that it holds.

Going further than Coder: the turn itself is capped, not only its start
- Coder checks only when a turn starts, so one turn may overshoot by all of its remaining
  steps. Here the take phase of *every* step (``workers.turn.run.take_chat``) calls
  :func:`exceeded` and, once the cap is reached, ends the turn in ``error`` with a message
  naming the limit (:meth:`LimitStatus.describe`) before the model is called again.
- Bound for concurrent turns of one user: they overshoot the cap by at most one step each.
  It follows from three invariants, so no per-user lock or Redis counter is needed:
  1. a chat has at most one step in flight (the take is a compare-and-set on the chat row);
  2. a step's cost is committed with its assistant message before the chat's next step can
     be sent (the persist transaction sends it after commit, or the last tool result does);
  3. every take re-reads the committed spend: each statement of a READ COMMITTED transaction
     sees every transaction committed before it started.
  Let T be the commit that first makes spend >= limit. A take whose check ran after T is
  refused. Steps admitted before T and still unpersisted at T are at most one per chat (1),
  and every earlier step of those chats is already in the spend (2). So the final spend is
  below limit + the sum, over the user's busy chats, of one step's cost. A lock would only
  serialise checks whose answers cannot change the bound; reserving an estimated cost for
  in-flight steps would refuse steps while the real spend is still under the cap.
- Costs not made by a step are out of this accounting: title generation is not billed in
  ``chat_messages`` (as in Coder) and a compaction summary is billed on its own message, which
  the following take sees.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.base import utcnow
from models.chat.wire import ts
from models.errors import Conflict
from models.identity.tables import User
from models.site import config_version
from models.usage.cost_reports import user_spend
from models.usage.limit_config import ChatUsageLimitConfig, Period, group_limits_of

EXCEEDED_MESSAGE = "Chat usage limit exceeded."


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the UTC ``period`` (day, week, month) that contains ``now``."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == Period.DAY:
        return day, day + timedelta(days=1)
    if period == Period.WEEK:
        monday = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
        return monday, monday + timedelta(days=7)
    if period == Period.MONTH:
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following
    raise ValueError(f"unknown usage limit period {period!r}")


@dataclass(frozen=True)
class EffectiveLimit:
    """The cap that applies to one user, and where it comes from."""

    limit_micros: int
    period: str
    # "user" (their override), "group" or "default" (later Coder's ``limit_source``).
    source: str
    group_name: str | None = None


@dataclass(frozen=True)
class LimitStatus:
    """A user's spend against their effective limit in the current period."""

    limit: EffectiveLimit
    spent_micros: int
    period_start: datetime
    period_end: datetime

    @property
    def exceeded(self) -> bool:
        return self.spent_micros >= self.limit.limit_micros

    def conflict(self) -> Conflict:
        """§1.9's 409: ``{message, spent_micros, limit_micros, resets_at}``."""
        return Conflict(
            EXCEEDED_MESSAGE,
            extra={
                "spent_micros": self.spent_micros,
                "limit_micros": self.limit.limit_micros,
                "resets_at": ts(self.period_end),
            },
        )

    def describe(self) -> str:
        """The message a refused spawn or a stopped turn carries: the figures and the limit."""
        whose = {
            "user": "your personal",
            "group": f"the {self.limit.group_name!r} group's",
            "default": "the deployment's default",
        }[self.limit.source]
        return (
            f"{EXCEEDED_MESSAGE} Spent {self.spent_micros} of {whose} "
            f"{self.limit.limit_micros} micro-dollar limit per {self.limit.period}; "
            f"it resets at {ts(self.period_end)}."
        )

    def turn_message(self, step_no: int) -> str:
        """The error a turn ends with when its next step is refused."""
        return f"{self.describe()} The turn was stopped before step {step_no}."

    def json(self) -> dict[str, Any]:
        """``GET /usage-limits/status`` for a limited user."""
        return {
            "is_limited": True,
            "period": self.limit.period,
            "spend_limit_micros": self.limit.limit_micros,
            "current_spend": self.spent_micros,
            "period_start": ts(self.period_start),
            "period_end": ts(self.period_end),
            # Later Coder versions name where the limit comes from.
            "limit_source": self.limit.source,
        }


def get_config(session: Session) -> ChatUsageLimitConfig | None:
    """The singleton config row (seeded by the migration)."""
    return session.exec(select(ChatUsageLimitConfig)).first()


@dataclass(frozen=True)
class _Switch:
    """What every limit check needs of the config row: on or off, the default and period."""

    enabled: bool
    default_limit_micros: int
    period: str


# ((database, config version), the switch read under it): every API request checks the
# limit, and the config row changes a few times a day. One entry per process; a plain
# assignment swaps it. The engine is part of the stamp, as in the workers' ConfigCache: one
# process can talk to several databases (tests), whose versions mean nothing to each other.
_switch_cache: tuple[tuple[int, int], _Switch | None] | None = None


def _switch(session: Session) -> _Switch | None:
    """The config row's switch; from the process cache when this session's auth statement
    read a configuration version (``config_version.noted``) that the cache was filed under.
    The version is read before the row, so an entry is never older than its version."""
    global _switch_cache
    version = config_version.noted(session)
    stamp = None if version is None else (id(session.get_bind()), version)
    cached = _switch_cache
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    row = get_config(session)
    switch = None if row is None else _Switch(row.enabled, row.default_limit_micros, row.period)
    # Asked again, not redundant: get_config's autoflush may have written this session's
    # pending changes, which forgets the noted version (then the row may be uncommitted).
    if stamp is not None and config_version.noted(session) == version:
        _switch_cache = (stamp, switch)
    return switch


def enabled(session: Session) -> bool:
    """Whether usage limits are on at all (when off nobody's spend needs counting)."""
    config = _switch(session)
    return config is not None and config.enabled


def effective_limit(session: Session, user_id: uuid.UUID) -> EffectiveLimit | None:
    """User override, else the strictest group, else the default; None while disabled."""
    config = _switch(session)
    if config is None or not config.enabled:
        return None
    override = session.execute(
        sa.select(User.chat_spend_limit_micros).where(User.id == user_id)  # type: ignore[call-overload]
    ).scalar()
    if override is not None:
        return EffectiveLimit(int(override), config.period, "user")
    groups = group_limits_of(session, user_id)
    if groups:
        name, lowest = min(groups, key=lambda g: (g[1], g[0]))
        return EffectiveLimit(lowest, config.period, "group", group_name=name)
    return EffectiveLimit(config.default_limit_micros, config.period, "default")


def limit_status(
    session: Session, user_id: uuid.UUID, *, now: datetime | None = None
) -> LimitStatus | None:
    """The user's spend against their limit now (or at ``now``); None when none applies."""
    limit = effective_limit(session, user_id)
    if limit is None:
        return None
    start, end = period_bounds(limit.period, now or utcnow())
    return LimitStatus(limit, user_spend(session, user_id, start, end), start, end)


def exceeded(
    session: Session, user_id: uuid.UUID, *, now: datetime | None = None
) -> LimitStatus | None:
    """The user's status if they have reached their cap, else None."""
    status = limit_status(session, user_id, now=now)
    return status if status is not None and status.exceeded else None


def require_within_limit(session: Session, user_id: uuid.UUID) -> None:
    """Raise §1.9's 409 if the user has reached their cap (before starting any model work)."""
    status = exceeded(session, user_id)
    if status is not None:
        raise status.conflict()


def status_json(session: Session, user_id: uuid.UUID) -> dict[str, Any]:
    """``GET /usage-limits/status``: the caller's status, ``{is_limited: false, …}`` if none."""
    status = limit_status(session, user_id)
    if status is None:
        # [inferred] Go's non-omitempty int64 ``current_spend`` is always serialised.
        return {"is_limited": False, "current_spend": 0}
    return status.json()
