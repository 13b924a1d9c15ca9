"""Browser push subscriptions and the deployment's VAPID keys (reference §3.1, §5.10).

Subscriptions follow Coder's ``webpush_subscriptions`` table (endpoint plus the browser's
p256dh and auth keys, per user). The VAPID key pair is generated once, on first use by any
process, and stored in ``site_configs``: the public key in the clear (browsers need it to
subscribe), the private key encrypted like every other secret. Two processes starting at
once both generate a pair; the first insert wins and both use the stored one.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Field, Session, SQLModel

from models.base import created_at, uuid_pk
from models.crypto import SecretBox
from models.errors import BadRequest
from models.workspaces.tables import SiteConfig

VAPID_KEY = "webpush_vapid_keys"
MAX_FIELD_BYTES = 4096


class WebpushSubscription(SQLModel, table=True):
    __tablename__ = "webpush_subscriptions"
    __table_args__ = (
        # [inferred] one row per (user, endpoint): subscribing again replaces the keys.
        sa.UniqueConstraint(
            "user_id", "endpoint", name="webpush_subscriptions_user_id_endpoint_key"
        ),
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    created_at: datetime = created_at()
    endpoint: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    endpoint_p256dh_key: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    endpoint_auth_key: str = Field(sa_column=sa.Column(sa.Text, nullable=False))


_t = WebpushSubscription.__table__  # type: ignore[attr-defined]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class VapidKeys:
    """``public_key``: the uncompressed P-256 point, base64url (the browser's
    applicationServerKey); ``private_key``: the 32-byte scalar, base64url."""

    public_key: str
    private_key: str


def generate_vapid_keys() -> VapidKeys:
    """A fresh P-256 key pair."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return VapidKeys(b64url(public), b64url(key.private_numbers().private_value.to_bytes(32)))


def vapid_keys(session: Session, box: SecretBox) -> VapidKeys:
    """The stored key pair, generated and stored first if there is none (commits nothing:
    the insert is one statement that a concurrent first start cannot duplicate). Raises
    ``SecretsUnavailable`` without an encryption key."""
    stored = session.get(SiteConfig, VAPID_KEY)
    if stored is None:
        fresh = generate_vapid_keys()
        ciphertext, key_id = box.encrypt(fresh.private_key)
        value = {"public_key": fresh.public_key, "private_key": ciphertext, "key_id": key_id}
        session.execute(
            pg_insert(SiteConfig).values(key=VAPID_KEY, value=value).on_conflict_do_nothing()
        )
        stored = session.get(SiteConfig, VAPID_KEY, populate_existing=True)
    assert stored is not None
    return VapidKeys(stored.value["public_key"], box.decrypt(stored.value["private_key"]))


def public_key(session: Session) -> str | None:
    """The stored public key, if keys exist (no secret needed to read it)."""
    stored = session.get(SiteConfig, VAPID_KEY)
    return stored.value["public_key"] if stored is not None else None


def _field(value: str | None, name: str) -> str:
    text = (value or "").strip()
    if not text:
        raise BadRequest(f"{name} is required.")
    if len(text.encode()) > MAX_FIELD_BYTES:
        raise BadRequest(f"{name} is too long.")
    return text


def subscribe(
    session: Session, user_id: uuid.UUID, *, endpoint: str, auth_key: str, p256dh_key: str
) -> None:
    """Store a browser subscription for the user (replacing the keys of the same endpoint)."""
    endpoint = _field(endpoint, "endpoint")
    if not endpoint.startswith(("https://", "http://")):
        raise BadRequest("endpoint must be an http(s) URL.")
    auth = _field(auth_key, "auth_key")
    p256dh = _field(p256dh_key, "p256dh_key")
    try:
        point = b64url_decode(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(b64url_decode(auth)) < 16:
            raise ValueError("auth secret too short")
    except (ValueError, TypeError):
        raise BadRequest("Invalid push subscription keys.") from None
    stmt = pg_insert(_t).values(
        user_id=user_id, endpoint=endpoint, endpoint_auth_key=auth, endpoint_p256dh_key=p256dh
    )
    session.execute(
        stmt.on_conflict_do_update(
            constraint="webpush_subscriptions_user_id_endpoint_key",
            set_={
                "endpoint_auth_key": stmt.excluded.endpoint_auth_key,
                "endpoint_p256dh_key": stmt.excluded.endpoint_p256dh_key,
            },
        )
    )


def unsubscribe(session: Session, user_id: uuid.UUID, endpoint: str) -> bool:
    """Remove the user's subscription with this endpoint; whether there was one."""
    result = session.execute(
        sa.delete(_t).where(_t.c.user_id == user_id, _t.c.endpoint == (endpoint or "").strip())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def subscriptions_of(session: Session, user_id: uuid.UUID) -> list[Any]:
    """The user's subscriptions (id, endpoint and keys), oldest first."""
    return list(
        session.execute(
            sa.select(_t).where(_t.c.user_id == user_id).order_by(_t.c.created_at, _t.c.id)
        ).all()
    )


def has_subscriptions(session: Session, user_id: uuid.UUID) -> bool:
    """Whether the user has any browser subscribed (one indexed look)."""
    found = session.execute(sa.select(_t.c.id).where(_t.c.user_id == user_id).limit(1)).first()
    return found is not None


def remove(session: Session, subscription_id: uuid.UUID) -> None:
    """Drop a subscription the push service says is gone (404/410)."""
    session.execute(sa.delete(_t).where(_t.c.id == subscription_id))
