"""Web push actor: ``push.send`` tells a chat owner's browsers that a root chat finished
(``waiting``) or failed (``error``); deferred by the transaction that made it so."""

from __future__ import annotations

import logging
import uuid

from dramatiq.middleware import CurrentMessage

from agentfarm.integrations import webpush as push
from agentfarm.tasks import catalog
from workers.runtime import get_runtime

log = logging.getLogger("agentfarm.push")


@catalog.actor(
    catalog.PUSH_SEND,
    max_retries=0,  # a notification is only useful now; failures are logged and counted
    time_limit=2 * 60 * 1000,  # each delivery has its own 10 s timeout
)
def push_send(chat_id: str, status: str) -> None:
    """Notify the owner of a root chat of its new status."""
    rt = get_runtime()
    message = CurrentMessage.get_current_message()
    if message is not None and not rt.redis.set(
        f"agentfarm:push-sent:{message.message_id}", 1, nx=True, ex=3600
    ):
        return  # a redelivered message: this notification was sent already
    sender = push.get_sender(rt.secrets, rt.settings)
    counts = push.send_for_chat(uuid.UUID(chat_id), status, sender=sender, settings=rt.settings)
    if counts and any(counts.values()):
        log.info("push notification", extra={"chat_id": chat_id, "status": status, **counts})
