"""Every queue name in one place, so a rename never orphans queued messages."""

from enum import StrEnum


class Queue(StrEnum):
    # LLM steps: latency-sensitive, never behind background work.
    CHAT = "chat"
    # Short side jobs of a chat (titles).
    DEFAULT = "default"
    # Periodic jobs sent by the scheduler (stale recovery, autostop, retention purge …).
    SCHEDULED = "scheduled"


ALL_QUEUES: tuple[str, ...] = tuple(q.value for q in Queue)
