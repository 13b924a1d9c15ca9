"""Web push notifications (reference §3.1 "Web push", §5.10).

When a root chat goes ``waiting`` or ``error``, the transaction that makes it so defers a
``push.send`` message (:func:`defer_notification`), sent only after the commit; the actor
sends the owner's browsers the notification: the chat title as title, "Agent has finished
running." or the chat's ``last_error`` (else "Agent encountered an error.") as body, and
``/favicon.ico`` as icon. Nothing here can block or fail a turn: the hook only buffers a
message, and a delivery failure is logged.

Delivery is pywebpush (aes128gcm payload encryption, VAPID signature) with the deployment's
VAPID keys (``models.webpush``). A subscription whose push service answers 404 or 410 is gone
for good and is removed. If push cannot be set up in this process (pywebpush missing, no
encryption key for the VAPID private key, keys unreadable), the process uses a no-op sender
and logs why once.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlmodel import Session

from agentfarm import metrics
from agentfarm.settings import Settings
from agentfarm.tasks import catalog
from agentfarm.tasks.outbox import defer
from models import db, webpush
from models.chat.tables import Chat
from models.crypto import SecretBox, SecretsUnavailable
from models.enums import ChatStatus

log = logging.getLogger("agentfarm.push")

ICON = "/favicon.ico"
FINISHED = "Agent has finished running."
FAILED = "Agent encountered an error."
TTL_S = 86_400  # [inferred] a notification waits a day for an offline browser
TIMEOUT_S = 10.0
NOTIFY_STATUSES = (ChatStatus.WAITING, ChatStatus.ERROR)


def defer_notification(
    session: Session, chat: Any, status: str, *, subscribed: bool | None = None
) -> None:
    """Buffer ``push.send`` for a root chat that just went waiting or error (sent on commit,
    dropped on rollback), if its owner has a browser subscribed. ``chat`` is a Chat or a row
    with ``id``, ``owner_id`` and ``parent_chat_id``."""
    if status not in NOTIFY_STATUSES or chat.parent_chat_id is not None:
        return
    if subscribed is None:
        subscribed = webpush.has_subscriptions(session, chat.owner_id)
    if not subscribed:
        return  # the common case: no message to send, no transaction in the actor
    defer(session, catalog.PUSH_SEND.message(str(chat.id), str(status)))


def notification(chat: Chat, status: str, access_url: str) -> dict[str, Any]:
    """Coder's PushNotification ``{icon, title, body, actions}`` for a chat's new status."""
    if status == ChatStatus.ERROR:
        body = (chat.last_error if chat.status == ChatStatus.ERROR else None) or FAILED
    else:
        body = FINISHED
    # [inferred] one action opening the chat in the web UI (Coder's agents page).
    url = f"{access_url.rstrip('/')}/agents/{chat.id}"
    return {
        "icon": ICON,
        "title": chat.title,
        "body": body,
        "actions": [{"label": "View chat", "url": url}],
    }


class Sender(Protocol):
    def send(self, subscription: Any, payload: dict[str, Any]) -> int | None:
        """Deliver one notification; the push service's HTTP status (None: no answer)."""


@dataclass
class NoopSender:
    """Push is not available in this process; ``reason`` says why. A ``transient`` reason
    (e.g. the database was unreachable) is tried again on the next notification."""

    reason: str
    transient: bool = False

    def send(self, subscription: Any, payload: dict[str, Any]) -> int | None:
        return None


class WebPushSender:
    """pywebpush with the deployment's VAPID private key."""

    def __init__(self, keys: webpush.VapidKeys, subject: str):
        from py_vapid import Vapid02

        self.vapid = Vapid02.from_raw(keys.private_key.encode())
        self.subject = subject

    def send(self, subscription: Any, payload: dict[str, Any]) -> int | None:
        import requests
        from pywebpush import WebPushException, webpush

        info = {
            "endpoint": subscription.endpoint,
            "keys": {
                "p256dh": subscription.endpoint_p256dh_key,
                "auth": subscription.endpoint_auth_key,
            },
        }
        try:
            response = webpush(
                info,
                data=json.dumps(payload),
                vapid_private_key=self.vapid,
                vapid_claims={"sub": self.subject},  # pywebpush adds aud and exp per call
                ttl=TTL_S,
                timeout=TIMEOUT_S,
            )
        except WebPushException as exc:
            return exc.response.status_code if exc.response is not None else None
        except (requests.RequestException, ValueError) as exc:
            log.warning("push delivery failed: %s", type(exc).__name__)
            return None
        return int(response.status_code)


def vapid_subject(settings: Settings) -> str:
    if settings.webpush_subject:
        return settings.webpush_subject
    if settings.access_url.startswith("https://"):
        return settings.access_url.rstrip("/")
    return "mailto:agentfarm@localhost"


_sender: Sender | None = None
_lock = threading.Lock()


def get_sender(box: SecretBox, settings: Settings) -> Sender:
    """This process's sender, built once (the VAPID keys are generated on first use)."""
    global _sender
    with _lock:
        if _sender is not None:
            return _sender
        sender = build_sender(box, settings)
        if not (isinstance(sender, NoopSender) and sender.transient):
            _sender = sender
        return sender


def build_sender(box: SecretBox, settings: Settings) -> Sender:
    """A pywebpush sender, or a no-op one with the reason logged; never raises."""
    try:
        import pywebpush  # noqa: F401

        with db.session_scope() as session:
            keys = webpush.vapid_keys(session, box)
        return WebPushSender(keys, vapid_subject(settings))
    except ImportError as exc:
        reason = f"pywebpush is not installed ({exc.name})"
    except SecretsUnavailable as exc:
        reason = f"VAPID private key unavailable: {exc}"
    except Exception as exc:  # noqa: BLE001 - push never stops the farm
        log.warning("web push unavailable for now: %s: %s", type(exc).__name__, exc)
        return NoopSender(f"push setup failed: {type(exc).__name__}", transient=True)
    log.warning("web push disabled: %s", reason)
    return NoopSender(reason)


def ensure_keys(box: SecretBox) -> bool:
    """Generate and store the VAPID keys if there are none (at a process's first start);
    never raises: without keys push falls back to the no-op sender later."""
    try:
        with db.session_scope() as session:
            webpush.vapid_keys(session, box)
    except Exception as exc:  # noqa: BLE001 - push never stops a process from starting
        log.warning("web push keys not ready: %s", exc)
        return False
    return True


def deliver(sender: Sender, user_id: uuid.UUID, payload: dict[str, Any]) -> dict[str, int]:
    """Send ``payload`` to every subscription of the user; drop those that are gone.
    Returns counts by outcome (sent, gone, failed, disabled)."""
    counts = {"sent": 0, "gone": 0, "failed": 0, "disabled": 0}
    with db.session_scope() as session:
        subscriptions = webpush.subscriptions_of(session, user_id)
    for subscription in subscriptions:
        if isinstance(sender, NoopSender):
            outcome = "disabled"
        else:
            status = sender.send(subscription, payload)
            if status in (404, 410):
                outcome = "gone"
                with db.session_scope() as session:
                    webpush.remove(session, subscription.id)
            elif status is not None and 200 <= status < 300:
                outcome = "sent"
            else:
                outcome = "failed"
                log.warning("push service answered %s", status, extra={"user_id": str(user_id)})
        counts[outcome] += 1
        metrics.PUSH_NOTIFICATIONS.labels(outcome).inc()
    return counts


def send_for_chat(
    chat_id: uuid.UUID, status: str, *, sender: Sender, settings: Settings
) -> dict[str, int] | None:
    """``push.send``: notify the owner of a root chat's new status; None if the chat is gone."""
    with db.session_scope() as session:
        chat = session.get(Chat, chat_id)
        if chat is None or chat.parent_chat_id is not None:
            return None
        payload = notification(chat, status, settings.access_url)
        owner = chat.owner_id
    return deliver(sender, owner, payload)
