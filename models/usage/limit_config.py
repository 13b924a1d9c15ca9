"""The usage-limit settings an admin changes (reference §2.5, §1.10 "Usage limits").

``chat_usage_limit_config`` is a singleton (one row, seeded disabled by the migration); the
overrides are inline columns, ``users.chat_spend_limit_micros`` and
``groups.chat_spend_limit_micros`` (NULL = no override, else > 0). The enforcement rules are
in ``models.usage.limits``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from models.base import bool_field, created_at, updated_at, utcnow
from models.chat.wire import ts
from models.errors import BadRequest
from models.identity.tables import Group, GroupMember, OrganizationMember, User


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


PERIODS = tuple(p.value for p in Period)


class ChatUsageLimitConfig(SQLModel, table=True):
    __tablename__ = "chat_usage_limit_config"
    __table_args__ = (
        sa.CheckConstraint("singleton", name="chat_usage_limit_config_singleton_check"),
        sa.CheckConstraint(
            "default_limit_micros >= 0", name="chat_usage_limit_config_default_limit_micros_check"
        ),
        sa.CheckConstraint(
            "period IN ('day', 'week', 'month')", name="chat_usage_limit_config_period_check"
        ),
    )

    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )
    singleton: bool = Field(
        default=True,
        sa_column=sa.Column(sa.Boolean, nullable=False, unique=True, server_default="true"),
    )
    enabled: bool = bool_field(False)
    default_limit_micros: int = Field(
        default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0")
    )
    period: str = Field(
        default=Period.MONTH,
        sa_column=sa.Column(sa.Text, nullable=False, server_default=sa.text("'month'")),
    )
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


def config_row(session: Session) -> ChatUsageLimitConfig:
    """The singleton row, locked for update (re-created if someone deleted it)."""
    row = session.exec(select(ChatUsageLimitConfig).with_for_update()).first()
    if row is None:
        row = ChatUsageLimitConfig()
        session.add(row)
        session.flush()
    return row


def config_json(row: ChatUsageLimitConfig) -> dict[str, Any]:
    """ChatUsageLimitConfig: ``spend_limit_micros`` only while enabled."""
    out: dict[str, Any] = {"period": row.period, "updated_at": ts(row.updated_at)}
    if row.enabled:
        out["spend_limit_micros"] = row.default_limit_micros
    return out


def parse_period(value: str | None) -> str:
    if value in (None, ""):
        return Period.MONTH
    if value not in PERIODS:
        raise BadRequest(
            "Invalid chat usage limit period.", detail="Period must be one of: day, week, month."
        )
    return value


def set_config(
    session: Session, limit_micros: int | None, period: str | None
) -> ChatUsageLimitConfig:
    """PUT /usage-limits: a limit turns limits on (null turns them off); period defaults to
    month. The overrides are kept either way."""
    if limit_micros is not None and limit_micros <= 0:
        raise BadRequest("Spend limit must be greater than 0.")
    row = config_row(session)
    row.period = parse_period(period)
    row.enabled = limit_micros is not None
    row.default_limit_micros = limit_micros or 0
    row.updated_at = utcnow()
    session.flush()
    return row


# ---------------------------------------------------------------- user overrides


def user_override_json(user: User) -> dict[str, Any]:
    return {
        "user_id": str(user.id),
        "username": user.username,
        "name": user.name,
        "avatar_url": "",  # agentfarm keeps no avatars
        "spend_limit_micros": user.chat_spend_limit_micros,
    }


def user_overrides(session: Session) -> list[dict[str, Any]]:
    """Every user with an override, by username ([inferred] order)."""
    users = session.exec(
        select(User)
        .where(User.chat_spend_limit_micros.is_not(None))  # type: ignore[union-attr]
        .order_by(User.username)
    ).all()
    return [user_override_json(u) for u in users]


def set_user_override(session: Session, user: User, limit_micros: int) -> None:
    if limit_micros <= 0:
        # [inferred] the reference gives this message for the default limit only.
        raise BadRequest("Spend limit must be greater than 0.")
    user.chat_spend_limit_micros = limit_micros
    session.add(user)
    session.flush()


def clear_user_override(session: Session, user: User) -> None:
    if user.chat_spend_limit_micros is None:
        raise BadRequest("Chat usage limit override not found.")
    user.chat_spend_limit_micros = None
    session.add(user)
    session.flush()


# ---------------------------------------------------------------- group overrides


def _member_count(session: Session, group: Group) -> int:
    """Members of a group; the Everyone group's are its organization's members."""
    if group.is_everyone:
        stmt = select(sa.func.count()).where(
            OrganizationMember.organization_id == group.organization_id
        )
    else:
        stmt = select(sa.func.count()).where(GroupMember.group_id == group.id)
    return int(session.exec(stmt).one())


def group_override_json(session: Session, group: Group) -> dict[str, Any]:
    return {
        "group_id": str(group.id),
        "group_name": group.name,
        "group_display_name": group.display_name,
        "group_avatar_url": group.avatar_url,
        "member_count": _member_count(session, group),
        "spend_limit_micros": group.chat_spend_limit_micros,
    }


def group_overrides(session: Session) -> list[dict[str, Any]]:
    """Every group with an override, by name ([inferred] order)."""
    groups = session.exec(
        select(Group)
        .where(Group.chat_spend_limit_micros.is_not(None))  # type: ignore[union-attr]
        .order_by(Group.name, Group.id)  # type: ignore[arg-type]
    ).all()
    return [group_override_json(session, g) for g in groups]


def set_group_override(
    session: Session, group_id: uuid.UUID, limit_micros: int
) -> dict[str, Any] | None:
    """Set a group's cap; None if there is no such group."""
    group = session.get(Group, group_id, with_for_update=True)
    if group is None:
        return None
    group.chat_spend_limit_micros = limit_micros
    group.updated_at = utcnow()
    session.flush()
    return group_override_json(session, group)


def clear_group_override(session: Session, group_id: uuid.UUID) -> None:
    group = session.get(Group, group_id, with_for_update=True)
    if group is None:
        raise BadRequest("Group not found.")
    if group.chat_spend_limit_micros is None:
        raise BadRequest("Chat usage limit group override not found.")
    group.chat_spend_limit_micros = None
    group.updated_at = utcnow()
    session.flush()


def group_limits_of(session: Session, user_id: uuid.UUID) -> list[tuple[str, int]]:
    """(name, limit) of every group of the user that has a cap: the groups they were added to
    and the Everyone group (id = organization id) of each organization they belong to."""
    explicit = select(GroupMember.group_id).where(GroupMember.user_id == user_id)
    everyone = select(OrganizationMember.organization_id).where(
        OrganizationMember.user_id == user_id
    )
    rows = session.exec(
        select(Group.name, Group.chat_spend_limit_micros).where(
            Group.chat_spend_limit_micros.is_not(None),  # type: ignore[union-attr]
            sa.or_(Group.id.in_(explicit), Group.id.in_(everyone)),  # type: ignore[attr-defined]
        )
    ).all()
    return [(name, int(limit)) for name, limit in rows]  # type: ignore[arg-type]
