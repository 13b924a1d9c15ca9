"""Administrative operations behind ``agentfarm migrate``, ``admin …`` and the dev seed."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from agentfarm.settings import Settings
from models import db, migrate
from models.bootstrap import create_user, default_organization, seed_scripted_model
from models.crypto import SecretBox
from models.enums import SiteRole
from models.identity import User
from models.tokens import create_token

ADMIN_USERNAME = "admin"


def require_database(settings: Settings) -> str:
    if not settings.database_url:
        raise SystemExit("AGENTFARM_DATABASE_URL is not set (agentfarm dev starts one for you)")
    return settings.database_url


def run_migrations(settings: Settings) -> None:
    migrate.upgrade(db.normalize_url(require_database(settings)))


def add_user(settings: Settings, username: str, email: str | None, admin: bool) -> str:
    """Create a user (member + agents-access, or owner) and return a new token for them."""
    db.init_engine(require_database(settings))
    roles = [SiteRole.MEMBER, SiteRole.AGENTS_ACCESS]
    if admin:
        roles.append(SiteRole.OWNER)
    with db.session_scope() as session:
        user = create_user(session, username=username, email=email, roles=roles)
        return create_token(session, user.id, name="cli")


def add_token(settings: Settings, username: str) -> str:
    db.init_engine(require_database(settings))
    with db.session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None:
            raise SystemExit(f"no user named {username!r}")
        return create_token(session, user.id, name="cli")


def seed_dev(settings: Settings, model_base_url: str) -> str | None:
    """Migrate, then make sure the admin, its token file and the scripted model exist.

    Returns the admin token only when it was created by this call (it is printed once).
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
        if not token_file.exists():
            created = create_token(session, admin.id, name="dev")
        seed_scripted_model(
            session,
            SecretBox(settings.encryption_key_list),
            base_url=model_base_url,
            created_by=admin.id,
        )
    if created:
        token_file.write_text(created + "\n")
        token_file.chmod(0o600)
    db.dispose_engine()
    return created
