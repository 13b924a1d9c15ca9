"""Browser push subscriptions (reference §3.1, §5.10), at Coder's paths and shapes:

    POST   /api/v2/users/{user}/notifications/push/subscription  {endpoint, auth_key, p256dh_key}
    DELETE /api/v2/users/{user}/notifications/push/subscription  {endpoint}
    POST   /api/v2/users/{user}/notifications/push/test          (one test notification)

each answering 204, for the caller's own subscriptions (``me``, their username or id). The
browser subscribes with the deployment's VAPID public key, served at
``GET /api/v2/notifications/push/public-key`` ([inferred] path; Coder's UI reads it from its
build info as ``webpush_public_key``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlmodel import Session

from agentfarm.integrations import webpush as push
from api_shim.deps import AppSettings, CurrentUser, DbSession, Secrets
from models import webpush
from models.crypto import SecretsUnavailable
from models.errors import NotFound, ServiceUnavailable
from models.identity.tables import User
from models.identity.user_refs import InvalidUserRef, find_user

router = APIRouter(prefix="/api/v2", tags=["notifications"])

# [inferred] the test notification's text.
TEST_NOTIFICATION = {
    "icon": "/favicon.ico",
    "title": "It's working!",
    "body": "You've subscribed to agentfarm push notifications.",
    "actions": [],
}


class SubscriptionRequest(BaseModel):
    endpoint: str | None = None
    auth_key: str | None = None
    p256dh_key: str | None = None


class UnsubscribeRequest(BaseModel):
    endpoint: str | None = None


def _self(session: Session, caller: User, ref: str) -> User:
    """Push subscriptions are the caller's own: any other user is 404."""
    try:
        target = find_user(session, caller, ref)
    except InvalidUserRef:
        target = None
    if target is None or target.id != caller.id:
        raise NotFound("Resource not found or you do not have access to this resource")
    return target


@router.get("/notifications/push/public-key", summary="The VAPID public key browsers use")
def vapid_public_key(user: CurrentUser, session: DbSession, box: Secrets) -> dict[str, Any]:
    try:
        keys = webpush.vapid_keys(session, box)
    except SecretsUnavailable:
        raise ServiceUnavailable(
            "Web push is not available: no encryption key is configured.",
            detail="Set AGENTFARM_ENCRYPTION_KEYS on the API server.",
        ) from None
    session.commit()
    return {"public_key": keys.public_key}


@router.post(
    "/users/{user}/notifications/push/subscription",
    status_code=204,
    summary="Subscribe a browser to push notifications",
)
def subscribe(
    user: str, body: SubscriptionRequest, caller: CurrentUser, session: DbSession
) -> Response:
    target = _self(session, caller, user)
    webpush.subscribe(
        session,
        target.id,
        endpoint=body.endpoint or "",
        auth_key=body.auth_key or "",
        p256dh_key=body.p256dh_key or "",
    )
    session.commit()
    return Response(status_code=204)


@router.delete(
    "/users/{user}/notifications/push/subscription",
    status_code=204,
    summary="Unsubscribe a browser",
)
def unsubscribe(
    user: str, body: UnsubscribeRequest, caller: CurrentUser, session: DbSession
) -> Response:
    target = _self(session, caller, user)
    # [inferred] idempotent: removing an unknown endpoint is not an error.
    webpush.unsubscribe(session, target.id, body.endpoint or "")
    session.commit()
    return Response(status_code=204)


@router.post(
    "/users/{user}/notifications/push/test",
    status_code=204,
    summary="Send a test notification to your browsers",
)
def test_notification(
    user: str, caller: CurrentUser, session: DbSession, box: Secrets, settings: AppSettings
) -> Response:

    target = _self(session, caller, user)
    sender = push.get_sender(box, settings)
    if isinstance(sender, push.NoopSender):
        raise ServiceUnavailable("Web push is not available.", detail=sender.reason)
    push.deliver(sender, target.id, TEST_NOTIFICATION)
    return Response(status_code=204)
