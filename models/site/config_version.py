"""A version number for the deployment's configuration, bumped by the database itself.

Each step of a chat needs the same few configuration rows: the model config and its provider,
the owner's key for it, whether usage limits are on, whether computer use may be offered,
whether any admin MCP server is enabled. They change a few times a day; a step runs many
times a second. Statement-level triggers on those tables (migration 0013) add one to
``config_version.version`` in the writing transaction, whatever wrote it (the API, a script,
``psql``), so a process may keep what it derived from those tables for as long as the version
it read is unchanged: one indexed read of one row instead of half a dozen queries.

The bump is transactional: a reader that sees a version also sees every change made before it.
A reader that reads the version first and the configuration after can only ever cache data as
new as or newer than the version it files it under, never older.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

# The tables whose rows feed what workers/config_cache.py keeps (each has the trigger).
VERSIONED_TABLES = (
    "chat_providers",
    "chat_model_configs",
    "user_chat_provider_keys",
    "chat_usage_limit_config",
    "site_configs",
    "mcp_server_configs",
)


class ConfigVersion(SQLModel, table=True):
    """The single row (``singleton`` is always true) holding the current version."""

    __tablename__ = "config_version"
    __table_args__ = (sa.CheckConstraint("singleton", name="ck_config_version_singleton"),)

    singleton: bool = Field(
        default=True, sa_column=sa.Column(sa.Boolean, primary_key=True, server_default=sa.true())
    )
    version: int = Field(
        default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0")
    )


def current(session: Session) -> int | None:
    """The configuration version as of this statement; None if the row is missing (then
    nothing may be cached: a re-created row starts again from 1)."""
    value = session.execute(sa.select(ConfigVersion.version)).scalar()  # type: ignore[call-overload]
    return None if value is None else int(value)


# session.info key of the version a request's own statement read (see note()).
_NOTED = "agentfarm.config_version"


def note(session: Session, version: int | None) -> None:
    """File the version that one of this session's statements read, for :func:`noted`.

    Good until the session writes anything: a flush or a Core write statement forgets it
    (``_forget_on_flush``, ``_forget_on_write``), so what a session derives from its own
    uncommitted configuration is never cached under a version other sessions see."""
    if version is None:
        session.info.pop(_NOTED, None)
    else:
        session.info[_NOTED] = int(version)


def noted(session: Session) -> int | None:
    """The version :func:`note` filed, if the session has written nothing since."""
    value = session.info.get(_NOTED)
    return value if isinstance(value, int) else None


@sa.event.listens_for(Session, "after_flush")
def _forget_on_flush(session: Session, _context: object) -> None:
    session.info.pop(_NOTED, None)


@sa.event.listens_for(Session, "do_orm_execute")
def _forget_on_write(state: sa.orm.ORMExecuteState) -> None:
    if not state.is_select and _NOTED in state.session.info:
        state.session.info.pop(_NOTED, None)
