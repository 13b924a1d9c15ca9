"""Tables, the database session factory and the domain rules that need only the database."""

from models.chats import Chat, ChatMessage, ChatQueuedMessage
from models.identity import ApiKey, Organization, OrganizationMember, User
from models.providers import ChatModelConfig, ChatProvider

__all__ = [
    "ApiKey",
    "Chat",
    "ChatMessage",
    "ChatModelConfig",
    "ChatProvider",
    "ChatQueuedMessage",
    "Organization",
    "OrganizationMember",
    "User",
]
