"""Administrative operations behind ``agentfarm migrate``, ``admin …`` and the dev seed."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from sqlmodel import Session, select

from agentfarm.settings import Settings
from models import db, migrate
from models.crypto import SecretBox
from models.enums import SiteRole
from models.identity.bootstrap import create_user, default_organization, seed_scripted_model
from models.identity.tables import User
from models.identity.tokens import create_token, lookup_token

ADMIN_USERNAME = "admin"

log = logging.getLogger("agentfarm.admin")


def require_database(settings: Settings) -> str:
    if not settings.database_url:
        raise SystemExit("AGENTFARM_DATABASE_URL is not set (agentfarm dev starts one for you)")
    return settings.database_url


def run_migrations(settings: Settings) -> None:
    migrate.upgrade(db.normalize_url(require_database(settings)))


def add_user(settings: Settings, username: str, email: str | None, admin: bool) -> str:
    """Create a user and return a new token for them. An admin is an owner; anyone else gets
    the initial site roles (member, plus agents-access while the agents experiment is on)."""
    db.init_engine(require_database(settings))
    roles = [SiteRole.OWNER, SiteRole.MEMBER, SiteRole.AGENTS_ACCESS] if admin else None
    with db.session_scope() as session:
        user = create_user(session, username=username, email=email, roles=roles)  # type: ignore[arg-type]
        return create_token(session, user.id, name="cli")


def add_token(settings: Settings, username: str) -> str:
    db.init_engine(require_database(settings))
    with db.session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None:
            raise SystemExit(f"no user named {username!r}")
        return create_token(session, user.id, name="cli")


def _token_in(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _token_works(session: Session, token: str | None, user_id: uuid.UUID) -> bool:
    key = lookup_token(session, token) if token else None
    return key is not None and key.user_id == user_id


def write_secret_file(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only, atomically."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(fd, 0o600)
        out.write(text)
    tmp.replace(path)


def seed_dev(settings: Settings, model_base_url: str) -> str | None:
    """Migrate, then make sure the admin, its token file and the scripted model exist.

    The token file is kept while its token still signs in as the admin; a missing file, or
    one left from another database (e.g. ``postgres/`` was deleted to start afresh), gets a
    new token. Returns the admin token only when it was created by this call (it is printed
    once).
    """
    run_migrations(settings)
    db.init_engine(require_database(settings))
    token_file = Path(settings.data_dir) / "admin-token"
    created: str | None = None
    with db.session_scope() as session:
        default_organization(session)
        admin = session.exec(select(User).where(User.username == ADMIN_USERNAME)).first()
        if admin is None:
            admin = create_user(
                session,
                username=ADMIN_USERNAME,
                name="Administrator",
                roles=[SiteRole.OWNER, SiteRole.MEMBER, SiteRole.AGENTS_ACCESS],
            )
        if not _token_works(session, _token_in(token_file), admin.id):
            if token_file.exists():
                log.warning(
                    "%s does not sign in as %s; issuing a new token", token_file, admin.username
                )
            created = create_token(session, admin.id, name="dev")
        seed_scripted_model(
            session,
            SecretBox(settings.encryption_key_list),
            base_url=model_base_url,
            created_by=admin.id,
        )
    if created:
        write_secret_file(token_file, created + "\n")
    db.dispose_engine()
    return created
